"""Hook configuration sources, validation and the wire format, without sending anything
(the GET-URL source is served by a loopback receiver)."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import jsonschema
import pytest
import standardwebhooks

from orchestra.core import events as ev
from orchestra.core.errors import HooksConfigError
from orchestra.integrations.hooks import config as cfg
from orchestra.integrations.hooks import payload
from orchestra.integrations.hooks.deliver import Policy, Target, build_headers, new_secret, sign
from tests.conftest import REPO_ROOT
from tests.hooks_receiver import Receiver, Reply, pipeline_events

MLFLOW_CLIENT_EXAMPLE = """\
name: TestModel
entry_points:
  main:
    command: "python main.py"
hooks:
  run_started:
    - url: http://localhost:8080/hooks
      name: my_hook
    - url: http://localhost:8080/hooks
      name: my_other_hook
  run_ended:
    - url: http://localhost:8080/other
"""


def load_error(*args, **kwargs) -> str:
    with pytest.raises(HooksConfigError) as info:
        cfg.load(*args, **kwargs)
    assert info.value.exit_code == 2
    text = str(info.value)
    assert "\n" not in text
    return text


# --- sources -------------------------------------------------------------------------------


def test_mlflow_client_mlproject_shape_keeps_working(tmp_path: Path) -> None:
    (tmp_path / "MLproject").write_text(MLFLOW_CLIENT_EXAMPLE)
    config = cfg.load(None, [str(tmp_path)], environ={})
    assert [(h.event, h.name, h.url) for h in config.hooks] == [
        ("run_started", "my_hook", "http://localhost:8080/hooks"),
        ("run_started", "my_other_hook", "http://localhost:8080/hooks"),
        ("run_ended", "run_ended-hook", "http://localhost:8080/other"),  # mlflow_client's default name
    ]
    # The same URL twice for one event is one POST.
    assert [h.name for h in config.matching("run_started", "running")] == ["my_hook"]


def test_json_yaml_and_file_uri_sources(tmp_path: Path) -> None:
    (tmp_path / "hooks.json").write_text(json.dumps({"run_ended": [{"url": "https://a.example/h"}]}))
    (tmp_path / "hooks.yaml").write_text("hooks:\n  stage_ended: [{url: 'https://b.example/h', statuses: [failed]}]\n")
    (tmp_path / "hooks").write_text('{"*": [{"url": "https://c.example/h"}]}')  # no suffix: YAML reads JSON
    uris = [str(tmp_path / "hooks.json"), (tmp_path / "hooks.yaml").as_uri(), str(tmp_path / "hooks")]
    config = cfg.load(None, uris, environ={})
    assert [h.url for h in config.hooks] == ["https://a.example/h", "https://b.example/h", "https://c.example/h"]
    assert [h.where.rsplit(": hooks", 1)[0] for h in config.hooks] == [f"--hooks {u}" for u in uris]


def test_get_url_source_and_merge_order(tmp_path: Path) -> None:
    document = {"hooks": {"run_ended": [{"url": "https://from-get.example/h", "name": "get"}]}}
    with Receiver(lambda request, index: Reply(body=json.dumps(document).encode())) as server:
        (tmp_path / "mlflow.json").write_text(json.dumps({"run_started": [{"url": "https://mlflow.example/h"}]}))
        (tmp_path / "cli.yaml").write_text("run_ended: [{url: 'https://cli.example/h'}]\n")
        config = cfg.load(
            {"stage_ended": [{"url": "https://spec.example/h"}]}, [str(tmp_path / "cli.yaml")],
            environ={"ORCHESTRA_HOOKS_URI": server.url, "MLFLOW_HOOKS_URI": str(tmp_path / "mlflow.json")},
        )
        assert server.requests[0].method == "GET"
    assert [h.url.split("//")[1].split(".")[0] for h in config.hooks] == ["spec", "cli", "from-get", "mlflow"]
    assert config.hooks[2].where.startswith("ORCHESTRA_HOOKS_URI=http://127.0.0.1")


def test_filters_all_events_and_statuses() -> None:
    config = cfg.HooksConfig(tuple(cfg.parse({
        "*": [{"url": "https://all.example/h"}],
        "stage_ended": [{"url": "https://fail.example/h", "statuses": ["failed", "killed"]}],
    }, where="t")))
    names = lambda event, status: [h.url.split("//")[1].split(".")[0] for h in config.matching(event, status)]
    assert names("stage_ended", "failed") == ["all", "fail"]
    assert names("stage_ended", "loaded") == ["all"]
    assert names("run_started", "running") == ["all"]


def test_project_hooks_reads_a_directory(tmp_path: Path) -> None:
    assert cfg.project_hooks(tmp_path) is None
    (tmp_path / "mlproject").write_text("name: x\n")  # matched case-insensitively, like MLflow
    assert cfg.project_hooks(tmp_path) is None
    (tmp_path / "mlproject").write_text(MLFLOW_CLIENT_EXAMPLE)
    assert list(cfg.project_hooks(tmp_path) or {}) == ["run_started", "run_ended"]


# --- bad configuration: one line, source + key path + what is allowed ------------------------


def test_unreadable_sources_are_errors(tmp_path: Path) -> None:
    (tmp_path / "empty-project").mkdir()
    (tmp_path / "empty-project" / "MLproject").write_text("name: x\n")
    (tmp_path / "bad.json").write_text("{nope")
    (tmp_path / "bad.yaml").write_text("a: [b\n")
    assert "no such file" in load_error(None, [str(tmp_path / "missing.json")], environ={})
    assert "holds no MLproject" in load_error(None, [str(tmp_path)], environ={})
    assert "no 'hooks' mapping" in load_error(None, [str(tmp_path / "empty-project")], environ={})
    assert "invalid JSON" in load_error(None, [str(tmp_path / "bad.json")], environ={})
    assert "invalid YAML in bad.yaml at line" in load_error(None, [str(tmp_path / "bad.yaml")], environ={})
    assert "unsupported URI scheme 'ftp'" in load_error(None, ["ftp://x/y"], environ={})
    text = load_error(None, [], environ={"MLFLOW_HOOKS_URI": str(tmp_path / "gone.yaml")})
    assert text.startswith(f"MLFLOW_HOOKS_URI={tmp_path / 'gone.yaml'}: ")


def test_get_url_failures_are_errors() -> None:
    with Receiver(lambda request, index: Reply(404) if request.path == "/404" else Reply(body=b"<html>")) as server:
        assert "HTTP 404" in load_error(None, [cfg.CONFIG_PREFIX + server.base + "/404"], environ={})
        assert "not JSON" in load_error(None, [cfg.CONFIG_PREFIX + server.base + "/html"], environ={})
        assert load_error(None, [cfg.CONFIG_PREFIX + server.base + "/404"], environ={}).startswith(
            f"--hooks-config {server.base}/404: ")
        closed = server.base
    text = load_error(None, [], environ={"ORCHESTRA_HOOKS_URI": "http://user:pw@" + closed[7:] + "/x"})
    assert "cannot fetch hooks: ConnectionError" in text and "pw" not in text


@pytest.mark.parametrize("hooks, expected", [
    ({"run_finished": [{"url": "https://x.example"}]}, "hooks: unknown event 'run_finished' (allowed: *, run_started"),
    ({"run_ended": [{"name": "n"}]}, "hooks.run_ended[0]: missing required key 'url'"),
    ({"run_ended": {"url": "https://x.example"}}, "hooks.run_ended: expected a list"),
    ({"run_ended": [{"url": "https://x.example", "statuses": ["done"]}]},
     "hooks.run_ended[0].statuses[0]: 'done' is not allowed (allowed: running, success, failed"),
    ({"run_ended": [{"url": "https://x.example", "secret": "s3cr3t"}]},
     "hooks.run_ended[0]: unknown key 'secret' (allowed: url, name, statuses, secret_env, allow_http, include; "
     "secrets go in an environment variable named by secret_env)"),
    ({"run_ended": [{"url": "https://x.example", "secret_env": ["A", "B", "C"]}]},
     "hooks.run_ended[0].secret_env: [\"A\", \"B\", \"C\"] is not allowed (allowed: one environment variable"),
    ({"run_ended": [{"url": "https://x.example", "include": ["logs"]}]},
     "hooks.run_ended[0].include[0]: 'logs' is not allowed (allowed: params)"),
    ({"run_ended": [{"url": "http://hooks.example/x"}]},
     "hooks.run_ended[0].url: plain http to hooks.example refused"),
    ({"run_ended": [{"url": "https://169.254.169.254/latest"}]}, "hooks.run_ended[0].url: link-local address"),
    (["https://x.example"], "hooks: expected a mapping"),
])
def test_invalid_hooks_name_the_key_path(hooks: object, expected: str) -> None:
    text = load_error(hooks, environ={})
    assert text.startswith("MLproject: "), text
    assert expected in text, text


def test_plain_http_allowed_to_loopback_or_when_asked() -> None:
    config = cfg.load({"run_ended": [{"url": "http://127.0.0.1:9/x"}, {"url": "http://localhost/x"},
                                     {"url": "http://ci.internal/x", "allow_http": True}]}, environ={})
    assert len(config.hooks) == 3


def test_secrets_are_checked_and_never_shown() -> None:
    config = cfg.load({"run_ended": [{"url": "https://x.example", "secret_env": ["OLD", "NEW"]}]}, environ={})
    good = new_secret()
    cfg.check_secrets(config, {"OLD": good, "NEW": good})
    with pytest.raises(HooksConfigError, match=r"MLproject: hooks.run_ended\[0\].secret_env: environment variable NEW"):
        cfg.check_secrets(config, {"OLD": good})
    with pytest.raises(HooksConfigError) as info:
        cfg.check_secrets(config, {"OLD": good, "NEW": "whsec_!!not base64!!"})
    assert "does not hold a valid secret" in str(info.value) and "not base64!!" not in str(info.value)


# --- wire format -----------------------------------------------------------------------------


def test_every_body_matches_the_schema() -> None:
    validator = jsonschema.Draft202012Validator(
        json.loads((REPO_ROOT / "schemas" / "webhook-event.schema.json").read_text()))
    for sequence, event in enumerate(pipeline_events(), 1):
        for include in (False, True):
            validator.validate(payload.build_body(event, payload.new_event_id(), sequence, include_params=include))
    validator.validate(payload.ping_body("ci"))
    bad = payload.build_body(pipeline_events()[0], payload.new_event_id(), 1)
    bad["payload"]["stage"] = "train"  # run events carry no stage
    assert not validator.is_valid(bad)


def test_body_details() -> None:
    assert payload.iso_utc(0.5) == "1970-01-01T00:00:00.500Z"
    ids = {payload.new_event_id() for _ in range(1000)}
    assert len(ids) == 1000 and all(len(i) == 30 and "." not in i for i in ids)
    assert payload.cap_message("é" * 2000).encode().__len__() <= 1024
    big = ev.Event(ev.RUN_STARTED, "f" * 32, "e", params={"p": "x" * 30_000})
    body = payload.build_body(big, payload.new_event_id(), 1, include_params=True)
    assert body["payload"]["params_truncated"] is True and len(payload.encode(body)) < payload.BODY_CAP_BYTES
    assert payload.event_status(ev.Event(ev.RUN_ENDED, "r", "e", status="FINISHED")) == "success"
    assert payload.event_status(ev.Event(ev.STAGE_RETRYING, "r", "e")) == "failed"


def test_signature_matches_standard_webhooks() -> None:
    secret = new_secret()
    key = cfg.decode_secret(secret)
    body = payload.encode(payload.ping_body("ci"))
    now = int(time.time())
    from datetime import datetime, timezone

    expected = standardwebhooks.Webhook(secret).sign("evt_1", datetime.fromtimestamp(now, tz=timezone.utc), body.decode())
    assert sign(key, "evt_1", now, body) == expected
    headers = build_headers(Target("https://x.example", "ci", ("S",)), "evt_1", "ping", 1, body,
                            timestamp=now, environ={"S": secret})
    assert headers["webhook-signature"] == expected
    # Secrets without the whsec_ prefix decode the same way as in standardwebhooks.
    assert cfg.decode_secret(secret[6:]) == key == base64.b64decode(secret[6:])


def test_retry_schedule_and_retry_after() -> None:
    policy = Policy(retry_delays_s=(5, 30), jitter=(0.5, 1.0), retry_after_cap_s=60)
    assert 2.5 <= policy.next_delay(1) <= 5
    assert 15 <= policy.next_delay(2) <= 30
    assert policy.next_delay(3) is None  # out of retries: dead
    assert policy.next_delay(1, retry_after_s=40) == 40
    assert policy.next_delay(1, retry_after_s=4000) == 60


def test_a_plain_url_is_a_target_for_every_event() -> None:
    """``--hooks URL`` (no GET: nothing listens on the port) posts every event to the URL itself."""
    config = cfg.load(None, ["http://127.0.0.1:9/h", "https://user:pw@hooks.example/h"], environ={})
    assert [(h.event, h.url) for h in config.hooks] == [("*", "http://127.0.0.1:9/h"),
                                                         ("*", "https://user:pw@hooks.example/h")]
    assert config.hooks[1].where == "--hooks https://hooks.example/h"
    assert [h.url for h in config.matching("stage_ended", "failed")] == ["http://127.0.0.1:9/h",
                                                                         "https://user:pw@hooks.example/h"]
    assert "plain http" in load_error(None, ["http://hooks.example/h"], environ={})
