"""The MLflow mirror, pure parts: tracking URI checks and redaction, what a stage's end sends, artifact paths."""

from __future__ import annotations

import pytest

from orchestra.core import tracking_uri as urimod
from orchestra.integrations.tracking import ops
from orchestra.integrations.tracking.rest import RestClient


@pytest.mark.parametrize("text, base", [
    ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
    ("HTTPS://Example.org/mlflow/", "https://example.org/mlflow"),
    ("http://u:p%40ss@host:80/x", "http://host:80/x"),
    ("http://[::1]:5000", "http://[::1]:5000"),
])
def test_parse_accepts_http_servers(text, base):
    parsed = urimod.parse(text)
    assert parsed.base == parsed.display == base
    assert parsed.raw == text


def test_parse_takes_credentials_from_the_uri_or_the_mlflow_variables(monkeypatch):
    assert (urimod.parse("http://u:p%40ss@host").username, urimod.parse("http://u:p%40ss@host").password) == ("u", "p@ss")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "env-user")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "env-pw")
    parsed = urimod.parse("http://host")
    assert (parsed.username, parsed.password) == ("env-user", "env-pw")


@pytest.mark.parametrize("text", ["file:///tmp/mlruns", "sqlite:///db", "databricks", "mlruns", "http://", "ftp://h",
                                  "http://h:notaport"])
def test_parse_refuses_anything_else(text):
    with pytest.raises(urimod.TrackingURIError) as info:
        urimod.parse(text)
    assert info.value.exit_code == 2 and "\n" not in str(info.value)


def test_redact_strips_userinfo_everywhere():
    text = "clone https://tok:x-oauth@github.example/r.git then http://a:b@h:1/p and ssh://git@h/r"
    assert urimod.redact(text) == "clone https://github.example/r.git then http://h:1/p and ssh://h/r"


def test_configured_prefers_the_flag_then_the_environment(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://from-env:5000")
    assert urimod.configured(None).base == "http://from-env:5000"
    assert urimod.configured("http://flag:1").base == "http://flag:1"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://h:notaport")
    with pytest.raises(urimod.TrackingURIError, match="MLFLOW_TRACKING_URI"):
        urimod.configured(None)
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert urimod.configured(None) is None


@pytest.mark.parametrize("text", ["sqlite:///x.db", "file:///tmp/mlruns", "./mlruns", "databricks",
                                  "postgresql://bob:hunter2@db/mlflow"])
def test_a_store_uri_is_no_server_and_the_notice_says_how_to_mirror(monkeypatch, text):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", text)
    assert urimod.configured(None) is None
    store, where = urimod.configured_store(None)
    assert where == "MLFLOW_TRACKING_URI" and "hunter2" not in store
    notice = urimod.store_notice(None, "r" * 32)
    assert "\n" not in notice and "hunter2" not in notice and f"orchestra runs sync {'r' * 32} --tracking-uri" in notice
    if text != "databricks":
        assert "mlflow server --backend-store-uri" in notice
    # --tracking-uri wins over the environment, both ways.
    assert urimod.configured_store("http://h:1") is None and urimod.configured("http://h:1").base == "http://h:1"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://h:1")
    assert urimod.configured_store(text) == (urimod.redact(text), "--tracking-uri")


def _stage(**extra):
    return {"name": "train", "status": "FINISHED", "exit_code": 0, "attempts": 1, "params": {"logged": "1"},
            "tags": {"t": "https://u:pw@h/x"}, "log_dir": "/logs", "cache_key": "k1", "components": {"c": 1},
            "env_key": "e", "manifest": {"b.txt": {"sha256": "bb", "size": 1, "mode": 0o644},
                                         "a.sh": {"sha256": "aa", "size": 2, "mode": 0o755}},
            "manifest_digest": "sha256:d", "metrics": {"m": 1.0}, **extra}


def test_stage_end_ops_upload_outputs_before_the_manifest_and_end_with_the_status():
    sent = ops.stage_end_ops(_stage(), metrics=[("m", 1.0, 0, 10.0)], declared_params={"alpha": "0.5"},
                             run_id="r" * 32, upload_outputs=True, end_time=20.0)
    kinds = [(kind, payload.get("artifact")) for kind, payload in sent]
    assert kinds == [("batch", None), ("upload", "logs/stdout.log"), ("upload", "logs/stderr.log"),
                     ("upload", "outputs/a.sh"), ("upload", "outputs/b.txt"), ("upload", "orchestra/manifest.json"),
                     ("status", None)]
    batch = sent[0][1]
    assert batch["params"] == {"alpha": "0.5", "logged": "1"}
    assert batch["tags"]["t"] == "https://h/x" and batch["tags"]["orchestra.cache_key"] == "k1"
    assert sent[3][1]["executable"] is True and sent[4][1]["executable"] is False
    manifest = sent[5][1]["json"]
    assert manifest["outputs"] is True and manifest["cache_key"] == "k1" and set(manifest["manifest"]) == {"a.sh", "b.txt"}
    assert sent[-1][1] == {"status": "FINISHED", "end_time": 20.0}


def test_failed_stage_sends_no_manifest_and_ends_failed():
    sent = ops.stage_end_ops(_stage(status="FAILED", manifest=None, exit_code=3), metrics=[], declared_params={},
                             run_id="r" * 32, upload_outputs=True, end_time=1.0)
    assert [p.get("artifact") for k, p in sent if k == "upload"] == ["logs/stdout.log", "logs/stderr.log"]
    assert sent[0][1]["tags"]["orchestra.exit_code"] == "3"
    assert sent[-1][1]["status"] == "FAILED"


def test_child_tags_name_the_stage_and_drop_run_only_tags():
    tags = ops.child_tags({"mlflow.user": "me", "mlflow.source.name": "https://t:x@h/r.git", "custom": "1"},
                          "r" * 32, "train", env_kind="conda", cache_key="k", loaded_from="s" * 32 + "/train")
    assert tags == {"mlflow.user": "me", "mlflow.source.name": "https://h/r.git", "mlflow.project.entryPoint": "train",
                    "mlflow.project.env": "conda", "orchestra.run_id": "r" * 32, "orchestra.stage": "train",
                    "orchestra.cache_key": "k", "orchestra.loaded_from": "s" * 32 + "/train"}


@pytest.mark.parametrize("artifact_uri, expected", [
    ("mlflow-artifacts:/0/abc/artifacts", "api/2.0/mlflow-artifacts/artifacts/0/abc/artifacts/logs/x.log"),
    ("mlflow-artifacts://host:5000/0/abc/artifacts", "api/2.0/mlflow-artifacts/artifacts/0/abc/artifacts/logs/x.log"),
])
def test_artifact_paths_go_through_the_proxy(artifact_uri, expected):
    client = RestClient(urimod.parse("http://h"))
    assert client._artifact_path(artifact_uri, "logs/x.log") == expected


def test_artifacts_outside_the_proxy_are_refused():
    from orchestra.integrations.tracking.rest import Rejected

    with pytest.raises(Rejected, match="serve-artifacts"):
        RestClient(urimod.parse("http://h"))._artifact_path("s3://bucket/0/abc/artifacts", "x")
