"""Webhooks end to end with real HTTP receivers on 127.0.0.1.

The listener is driven with synthetic event sequences (tests/hooks_receiver.py), the way the
engine drives it; every body sent is validated against schemas/webhook-event.schema.json and
every signature is checked by the independent ``standardwebhooks`` implementation.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest
import standardwebhooks

from orchestra.core.options import NotificationOptions, RunOptions
from orchestra.core.errors import HooksConfigError
from orchestra.core.layout import orchestra_home
from orchestra.integrations.hooks import config as cfg
from orchestra.integrations.hooks import make_listener, outbox, resume_pending
from orchestra.integrations.hooks.deliver import Policy
from orchestra.integrations.hooks.listener import HookListener
from orchestra.source.project import ProjectDir
from tests.conftest import REPO_ROOT
from tests.hooks_receiver import Receiver, Reply, pipeline_events, wait_until

pytestmark = pytest.mark.integration

# Short retry delays; timeouts generous, so an answer slowed by a busy machine is not a failed attempt.
FAST = Policy(connect_timeout_s=10.0, total_timeout_s=30.0, retry_delays_s=(0.05,) * 5, jitter=(1.0, 1.0))
EVENT_SCHEMA = json.loads((REPO_ROOT / "schemas" / "webhook-event.schema.json").read_text())


def secret(seed: bytes) -> str:
    return "whsec_" + base64.b64encode(seed * (32 // len(seed))).decode()


def listener_for(hooks: dict, policy: Policy = FAST) -> HookListener:
    config = cfg.HooksConfig(tuple(cfg.parse(hooks, where="test")))
    cfg.check_secrets(config)
    return HookListener(config, home=orchestra_home(), policy=policy)


def deliveries() -> list[dict]:
    return outbox.log_rows(outbox.open_db(orchestra_home()))


def validate(body: dict) -> None:
    jsonschema.Draft202012Validator(EVENT_SCHEMA).validate(body)


def test_full_run_sequence_in_order_signed_and_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = secret(b"old-key!"), secret(b"new-key!")
    monkeypatch.setenv("HOOK_OLD", old)
    monkeypatch.setenv("HOOK_NEW", new)
    events = pipeline_events()
    with Receiver() as everything, Receiver() as alerts:
        listener = listener_for({
            "*": [{"url": everything.url, "name": "all", "secret_env": ["HOOK_OLD", "HOOK_NEW"]}],
            "stage_ended": [{"url": alerts.url, "name": "alerts", "statuses": ["failed"], "include": ["params"]}],
            "run_ended": [{"url": everything.url, "name": "dup"}],  # same URL: one POST, not two
        })
        for event in events:
            listener.handle(event)
        got = everything.wait_for(len(events))
        alerted = alerts.wait_for(1)
        listener.close(60)
        assert len(everything.requests) == len(events)

    bodies = [request.json for request in got]
    for request, body in zip(got, bodies):
        validate(body)
        assert request.headers["webhook-id"] == body["id"]
        assert request.headers["x-orchestra-event"] == body["event"]
        assert request.headers["x-orchestra-attempt"] == "1"
        assert request.headers["user-agent"].startswith("orchestra/")
        assert request.headers["content-type"] == "application/json"
        # Rotation: two signatures, each verifiable with its own secret alone.
        assert len(request.headers["webhook-signature"].split(" ")) == 2
        for key in (old, new):
            assert standardwebhooks.Webhook(key).verify(request.body, request.headers) == body
        with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
            standardwebhooks.Webhook(secret(b"wrong!!!")).verify(request.body, request.headers)
        assert "params" not in body["payload"]
        assert "tok3n" not in request.body.decode()
    assert [(b["event"], b["payload"].get("stage"), b["status"]) for b in bodies] == [
        ("run_started", None, "running"),
        ("stage_ended", "prepare", "loaded"),
        ("stage_started", "train", "running"),
        ("stage_retrying", "train", "failed"),
        ("stage_started", "train", "running"),
        ("stage_ended", "train", "failed"),
        ("stage_ended", "evaluate", "skipped"),
        ("run_ended", None, "failed"),
    ]
    assert [b["sequence"] for b in bodies] == list(range(1, len(events) + 1))
    assert len({b["id"] for b in bodies}) == len(events)
    assert bodies[1]["payload"]["loaded_from"] == {"run": events[1].loaded_from["run_id"], "stage": "prepare"}
    assert len(bodies[5]["payload"]["message"].encode()) <= 1024
    assert bodies[0]["payload"]["project"]["uri"] == "https://git.example/ml/wine.git"

    assert len(alerted) == 1
    alert = alerted[0].json
    validate(alert)
    assert (alert["event"], alert["status"], alert["sequence"]) == ("stage_ended", "failed", 6)
    assert alert["payload"]["params"] == {"alpha": 0.5, "rows": 1000}
    assert alert["id"] == bodies[5]["id"]  # one event, one id, whichever hook receives it
    assert "webhook-signature" not in alerted[0].headers
    assert {row["state"] for row in deliveries()} == {"delivered"}


def test_500_twice_then_200_is_retried_with_the_same_id() -> None:
    replies = [Reply(500), Reply(503), Reply(200)]
    with Receiver(lambda request, index: replies[min(index, 2)]) as receiver:
        listener = listener_for({"run_ended": [{"url": receiver.url}]})
        listener.handle(pipeline_events()[-1])
        got = receiver.wait_for(3)
        listener.close(60)
    assert [r.headers["x-orchestra-attempt"] for r in got] == ["1", "2", "3"]
    assert len({r.headers["webhook-id"] for r in got}) == 1
    assert len({r.body for r in got}) == 1
    [row] = deliveries()
    assert (row["state"], row["attempts"], row["last_status"]) == ("delivered", 3, 200)
    attempts = outbox.attempts_of(outbox.open_db(orchestra_home()), row["delivery_id"])
    assert [a["status_code"] for a in attempts] == [500, 503, 200]


def test_receiver_that_never_answers_times_out_and_ends_dead() -> None:
    policy = Policy(connect_timeout_s=10.0, total_timeout_s=0.4, retry_delays_s=(0.05,), jitter=(1.0, 1.0))
    with Receiver(lambda request, index: Reply(hang=True)) as receiver:
        listener = listener_for({"run_started": [{"url": receiver.url}]}, policy)
        listener.handle(pipeline_events()[0])
        receiver.wait_for(2)
        started = time.monotonic()
        listener.close(60)
        assert time.monotonic() - started < 30  # the attempts' timeouts ended it, not the drain's 60 s
    [row] = deliveries()
    assert (row["state"], row["attempts"], row["last_error"]) == ("dead", 2, "timeout")


def test_redirect_is_not_followed_and_counts_as_failure() -> None:
    with Receiver(lambda request, index: Reply(302, {"Location": "/elsewhere"}) if request.path == "/hook"
                  else Reply(200)) as receiver:
        listener = listener_for({"run_started": [{"url": receiver.url}]})
        listener.handle(pipeline_events()[0])
        listener.close(60)
        assert [r.path for r in receiver.requests] == ["/hook"]
    [row] = deliveries()
    assert (row["state"], row["attempts"], row["last_status"]) == ("dead", 1, 302)
    assert "not followed" in row["last_error"]


def test_410_disables_the_hook_for_later_events_and_runs(capsys: pytest.CaptureFixture[str]) -> None:
    with Receiver(lambda request, index: Reply(410)) as receiver:
        listener = listener_for({"*": [{"url": receiver.url, "name": "gone"}]})
        listener.handle(pipeline_events()[0])
        receiver.wait_for(1)
        wait_until(lambda: deliveries()[0]["state"] == "disabled")
        for event in pipeline_events()[1:3]:
            listener.handle(event)
        listener.close(60)
        assert len(receiver.requests) == 1
        assert {row["state"] for row in deliveries()} == {"disabled"}
        project = ProjectDir(path=Path("."), uri=".")
        assert make_listener({"*": [{"url": receiver.url, "name": "gone"}]}, project, RunOptions()) is None
    assert "hook 'gone'" in capsys.readouterr().err


def test_retry_after_is_honoured() -> None:
    replies = [Reply(429, {"Retry-After": "1"}), Reply(200)]
    with Receiver(lambda request, index: replies[min(index, 1)]) as receiver:
        listener = listener_for({"run_started": [{"url": receiver.url}]})
        listener.handle(pipeline_events()[0])
        first, second = receiver.wait_for(2)
        listener.close(60)
    assert second.at - first.at >= 0.9


def test_slow_receiver_never_slows_the_pipeline_or_other_receivers() -> None:
    # The slow receiver holds its first request until the test ends (no fixed delay to race).
    with Receiver(lambda request, index: Reply(hang=True)) as slow, Receiver() as fast:
        listener = listener_for({
            "*": [{"url": slow.url, "name": "slow"}, {"url": fast.url, "name": "fast"}],
        }, Policy(connect_timeout_s=10.0, total_timeout_s=120.0, retry_delays_s=(0.05,)))
        events = pipeline_events()
        timings = []
        for event in events:
            started = time.perf_counter()
            listener.handle(event)
            timings.append(time.perf_counter() - started)
        assert max(timings) < 10, timings  # never the slow receiver's 120 s (nor its hang)
        fast.wait_for(len(events), timeout=60)  # all of them while the slow one holds its first
        assert len(slow.requests) == 1, ([r.headers["x-orchestra-attempt"] for r in slow.requests], deliveries())
        started = time.monotonic()
        listener.close(0.3)
        assert time.monotonic() - started < 30  # not the slow receiver's 120 s
        pending = [row for row in deliveries() if row["hook_name"] == "slow" and row["state"] == "pending"]
        assert len(pending) >= len(events) - 1  # left for the next command, not lost


def test_deliveries_survive_a_killed_sender(orchestra_home: Path) -> None:
    up = {"value": False}
    with Receiver(lambda request, index: Reply(200 if up["value"] else 503)) as receiver:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.hooks_emitter", receiver.url], cwd=REPO_ROOT,
            stdout=subprocess.PIPE, env={**os.environ, "ORCHESTRA_HOME": str(orchestra_home)}, text=True,
        )
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "emitted"
            receiver.wait_for(2)  # the doomed process is mid-schedule
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(60)
        failed_ids = {r.headers["webhook-id"] for r in receiver.requests}
        up["value"] = True
        assert resume_pending(10, policy=FAST) == 0
        events = {r.headers["webhook-id"]: r.json for r in receiver.requests[len(failed_ids):]}
    delivered = {row["event_id"] for row in deliveries() if row["state"] == "delivered"}
    assert len(delivered) == len(pipeline_events())
    assert failed_ids <= delivered  # same webhook-id after the restart: receivers can dedupe
    assert set(events) <= delivered
    for body in events.values():
        validate(body)


def test_resume_pending_is_cheap_without_work(orchestra_home: Path) -> None:
    code = (
        "import sys, orchestra.cli as c; from orchestra.integrations.hooks import resume_pending;"
        "c.build_parser(); n = resume_pending(5);"
        "assert n == 0 and 'requests' not in sys.modules and 'jsonschema' not in sys.modules, sys.modules.keys()"
    )
    env = {**os.environ, "ORCHESTRA_HOME": str(orchestra_home)}
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True, env=env)
    assert not (orchestra_home / "hooks.sqlite").exists()
    outbox.open_db(orchestra_home)  # an outbox with nothing pending: still no delivery code loaded
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True, env=env)


def test_two_senders_on_one_outbox_send_each_attempt_once() -> None:
    from orchestra.integrations.hooks.sender import Sender

    with Receiver() as receiver:
        listener = listener_for({"*": [{"url": receiver.url + "/a"}, {"url": receiver.url + "/b"}]})
        other = Sender(orchestra_home(), FAST)
        other.start()
        for event in pipeline_events() * 3:
            listener.handle(event)
            other.wake()
        receiver.wait_for(48)
        listener.close(60)
        other.drain(60)
        other.stop()
        assert len(receiver.requests) == 48
    assert len({(r.path, r.headers["webhook-id"]) for r in receiver.requests}) == 48
    assert {row["attempts"] for row in deliveries()} == {1}


def test_make_listener_merges_every_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Receiver() as receiver:
        config_server = Receiver(lambda request, index: Reply(
            body=json.dumps({"run_ended": [{"url": receiver.url + "/get", "name": "from-get"}]}).encode()))
        (tmp_path / "hooks.json").write_text(json.dumps({"run_ended": [{"url": receiver.url + "/file"}]}))
        (tmp_path / "proj").mkdir()
        (tmp_path / "proj" / "MLproject").write_text(
            f"name: x\nhooks:\n  run_ended: [{{url: '{receiver.url}/dir', name: from-dir}}]\n")
        monkeypatch.setenv("ORCHESTRA_HOOKS_URI", config_server.url)
        monkeypatch.setenv("MLFLOW_HOOKS_URI", str(tmp_path / "hooks.json"))
        spec_hooks = {"run_ended": [{"url": receiver.url + "/spec", "name": "from-spec"}]}
        listener = make_listener(spec_hooks, ProjectDir(path=tmp_path, uri=str(tmp_path)),
                                 RunOptions(notification=NotificationOptions(hooks_uris=[str(tmp_path / "proj")])), policy=FAST)
        config_server.close()
        assert listener is not None
        listener.handle(pipeline_events()[-1])
        got = receiver.wait_for(4)
        listener.close(60)
    assert sorted(r.path for r in got) == ["/hook/dir", "/hook/file", "/hook/get", "/hook/spec"]


def test_remote_project_hooks_need_trust(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    remote = ProjectDir(path=tmp_path, uri="https://git.example/ml/wine.git", is_remote=True)
    spec_hooks = {"run_ended": [{"url": "https://hooks.example/x", "name": "theirs"}]}
    assert make_listener(spec_hooks, remote, RunOptions()) is None
    err = capsys.readouterr().err
    assert "ignoring hooks" in err and "theirs" in err and "--trust-project-hooks" in err
    assert make_listener(spec_hooks, remote, RunOptions(notification=NotificationOptions(trust_project_hooks=True))) is not None


def test_unset_secret_is_bad_input_before_anything_runs(tmp_path: Path) -> None:
    spec_hooks = {"run_ended": [{"url": "https://hooks.example/x", "secret_env": "NOT_SET_ANYWHERE"}]}
    with pytest.raises(HooksConfigError) as info:
        make_listener(spec_hooks, ProjectDir(path=tmp_path, uri="."), RunOptions())
    assert info.value.exit_code == 2
    assert "NOT_SET_ANYWHERE" in str(info.value) and "run_ended[0].secret_env" in str(info.value)


def test_cli_log_redeliver_test_and_new_secret(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fresh = cli("hooks", "new-secret").out.strip()
    standardwebhooks.Webhook(fresh)  # the verifier accepts our secret format
    assert fresh.startswith("whsec_") and len(base64.b64decode(fresh[6:])) == 32
    monkeypatch.setenv("HOOK_SECRET", fresh)
    replies = {"value": Reply(404)}
    with Receiver(lambda request, index: replies["value"]) as receiver:
        listener = listener_for({"run_ended": [{"url": receiver.url, "name": "ci", "secret_env": "HOOK_SECRET"}]})
        listener.handle(pipeline_events()[-1])
        receiver.wait_for(1)
        listener.close(60)
        [row] = deliveries()
        assert row["state"] == "dead"

        failed = cli("hooks", "log", "--failed")
        assert failed.code == 0 and row["event_id"] in failed.out and "HTTP 404" in failed.out
        [line] = cli("hooks", "log", "--json", "--run", row["run_id"][:8]).out.splitlines()
        assert json.loads(line)["attempt_log"][0]["status_code"] == 404

        replies["value"] = Reply(200)
        again = cli("hooks", "redeliver", row["event_id"])
        assert again.code == 0, again.err
        first, second = receiver.requests
        assert second.headers["webhook-id"] == first.headers["webhook-id"] == row["event_id"]
        assert second.headers["x-orchestra-attempt"] == "2"
        assert standardwebhooks.Webhook(fresh).verify(second.body, second.headers)["id"] == row["event_id"]
        assert cli("hooks", "log", "--failed").out == ""

        hooks_file = tmp_path / "hooks.yaml"
        hooks_file.write_text(f"stage_ended:\n  - {{url: '{receiver.url}', name: ci, secret_env: HOOK_SECRET}}\n")
        ping = cli("hooks", "test", "ci", "--hooks", str(hooks_file))
        assert ping.code == 0 and "HTTP 200" in ping.out, ping.err
        body = receiver.requests[-1]
        validate(body.json)
        assert body.json["event"] == "ping" and standardwebhooks.Webhook(fresh).verify(body.body, body.headers)
        assert cli("hooks", "test", receiver.url).code == 0
        replies["value"] = Reply(500)
        assert cli("hooks", "test", receiver.url).code == 1
    assert fresh not in "".join(r.body.decode() for r in receiver.requests)
    missing = cli("hooks", "redeliver", "evt_NOPE")
    assert missing.code == 2 and "no webhook event" in missing.err


def test_unmatched_events_write_nothing() -> None:
    listener = listener_for({"stage_ended": [{"url": "https://hooks.example/x", "statuses": ["killed"]}]})
    for event in pipeline_events():
        listener.handle(event)
    listener.close(1)
    assert deliveries() == []


PIPELINE = """\
name: hooked
entry_points:
  prepare:
    command: "python -c \\"print('prepared')\\""
  train:
    depends_on: [prepare]
    retries: 1
    parameters:
      code: {type: int, default: 0}
    command: "python -c \\"import sys; print('alpha too big', file=sys.stderr); sys.exit({code})\\""
  evaluate:
    depends_on: [train]
    command: "python -c \\"print('evaluated')\\""
"""


def test_end_to_end_through_orchestra_run(cli, make_project, tmp_path: Path) -> None:
    project = make_project(PIPELINE)
    key = secret(b"e2e-key!")
    hooks_file = tmp_path / "hooks.json"
    with Receiver() as receiver:
        hooks_file.write_text(json.dumps({"*": [{"url": receiver.url, "name": "ci", "secret_env": "E2E_SECRET"}]}))
        args = ("run", str(project), "--env-manager", "local", "--hooks", str(hooks_file))
        first = cli(*args, env={"E2E_SECRET": key})
        assert first.code == 0, first.err
        second = cli(*args, "-P", "code=3", env={"E2E_SECRET": key})
        assert second.code == 1, second.err
        got = receiver.wait_for(16)  # both CLI runs waited for their deliveries (drain)
    bodies = [standardwebhooks.Webhook(key).verify(r.body, r.headers) for r in got]
    for body in bodies:
        validate(body)
    run2 = [b for b in bodies if b["payload"]["run"] == bodies[-1]["payload"]["run"]]
    assert [(b["event"], b["payload"].get("stage"), b["status"]) for b in run2] == [
        ("run_started", None, "running"),
        ("stage_ended", "prepare", "loaded"),
        ("stage_started", "train", "running"),
        ("stage_retrying", "train", "failed"),
        ("stage_started", "train", "running"),
        ("stage_ended", "train", "failed"),
        ("stage_ended", "evaluate", "skipped"),
        ("run_ended", None, "failed"),
    ]
    assert [b["sequence"] for b in run2] == list(range(1, 9))
    assert run2[1]["payload"]["loaded_from"]["run"] == bodies[0]["payload"]["run"]
    assert "alpha too big" in run2[5]["payload"]["message"]


def test_run_exits_with_its_own_code_when_receivers_hang(cli, make_project, tmp_path: Path) -> None:
    project = make_project(PIPELINE)
    hang = {"value": True}
    with Receiver(lambda request, index: Reply(hang=True) if hang["value"] else Reply()) as receiver:
        (tmp_path / "hooks.yaml").write_text(f"run_ended: [{{url: '{receiver.url}', name: slowpoke}}]\n")
        result = cli("run", str(project), "--env-manager", "local", "--hooks", str(tmp_path / "hooks.yaml"),
                     "--hooks-drain", "2")
        assert result.code == 0, result.err
        assert "1 webhook delivery still pending" in result.err
        [row] = deliveries()
        # The run ended at its drain, not at the attempt's 15 s timeout: no attempt has finished.
        assert outbox.attempts_of(outbox.open_db(orchestra_home()), row["delivery_id"]) == []
        hang["value"] = False
        retried = cli("hooks", "retry")  # the ended run's claim (if it made one) is taken over at once
        assert retried.code == 0, retried.err
        wait_until(lambda: deliveries()[0]["state"] == "delivered")
        assert receiver.requests[-1].headers["x-orchestra-attempt"] == str(row["attempts"] + 1)
    assert cli("hooks", "log", "--failed").out == ""
