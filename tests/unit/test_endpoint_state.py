"""The run's tracking endpoint without the mlflow client: real HTTP on 127.0.0.1, its rules."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import requests

from orchestra.integrations.endpoint import LOOPBACK, Endpoint, bind_host


def _own_address() -> str | None:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # TEST-NET: no packet is sent
            address = probe.getsockname()[0]
    except OSError:
        return None
    return None if address.startswith("127.") else address


def test_bind_host_is_loopback_unless_the_scheduler_is_elsewhere():
    assert bind_host("local") == LOOPBACK
    assert bind_host("dask://127.0.0.1:8786") == LOOPBACK and bind_host("dask://localhost:8786") == LOOPBACK
    address = _own_address()
    if address is None:
        pytest.skip("this host has no non-loopback interface")
    assert bind_host(f"dask://{address}:8786") == address  # the interface that reaches the scheduler


@pytest.fixture
def endpoint():
    made = Endpoint("Default")
    yield made
    made.stop()


def _call(env, method, path, **kwargs):
    headers = {"Authorization": f"Bearer {env['MLFLOW_TRACKING_TOKEN']}"}
    return requests.request(method, f"{env['MLFLOW_TRACKING_URI']}{path}", headers=headers, timeout=10, **kwargs)


def test_files_stay_with_their_stage_and_paths_never_escape(endpoint, tmp_path: Path):
    a = endpoint.open_stage("a", staging=tmp_path / "a-staging", outputs=tmp_path / "a-out")
    b = endpoint.open_stage("b", staging=tmp_path / "b-staging", outputs=tmp_path / "b-out")
    root = f"/api/2.0/mlflow-artifacts/artifacts/{a['MLFLOW_EXPERIMENT_ID']}/{a['MLFLOW_RUN_ID']}/artifacts"
    assert _call(a, "PUT", f"{root}/x/y.txt", data=b"hi").status_code == 200
    assert (tmp_path / "a-staging/mlflow-artifacts/x/y.txt").read_bytes() == b"hi"
    assert _call(b, "PUT", f"{root}/x/z.txt", data=b"no").status_code == 403  # not b's run
    assert _call(a, "PUT", f"{root}/../../escape.txt", data=b"no").status_code in (400, 404)
    assert not list(tmp_path.rglob("escape.txt"))
    assert _call(b, "GET", f"{root}/x/y.txt").content == b"hi"  # reads are fine
    listing = _call(a, "GET", "/api/2.0/mlflow-artifacts/artifacts",
                    params={"path": f"{a['MLFLOW_EXPERIMENT_ID']}/{a['MLFLOW_RUN_ID']}/artifacts/x"}).json()
    assert listing == {"files": [{"path": "y.txt", "is_dir": False, "file_size": 2}]}


def test_a_retry_starts_over_and_a_failed_attempt_keeps_no_models(endpoint, tmp_path: Path):
    env = endpoint.open_stage("s", staging=tmp_path / "st1", outputs=tmp_path / "out")
    run = env["MLFLOW_RUN_ID"]
    assert _call(env, "POST", "/api/2.0/mlflow/runs/log-metric", json={"run_id": run, "key": "m", "value": 1,
                                                                       "timestamp": 1, "step": 0}).ok
    assert _call(env, "POST", "/api/2.0/mlflow/logged-models", json={"experiment_id": env["MLFLOW_EXPERIMENT_ID"],
                                                                      "name": "mine"}).ok
    failed = endpoint.close_stage("s", published=False)
    assert [m.key for m in failed.metrics] == ["m"] and failed.models == ()
    again = endpoint.open_stage("s", staging=tmp_path / "st2", outputs=tmp_path / "out")
    assert again["MLFLOW_RUN_ID"] == run and again["MLFLOW_TRACKING_TOKEN"] == env["MLFLOW_TRACKING_TOKEN"]
    assert _call(again, "POST", "/api/2.0/mlflow/runs/log-parameter", json={"run_id": run, "key": "p", "value": "1"}).ok
    changed = _call(again, "POST", "/api/2.0/mlflow/runs/log-parameter", json={"run_id": run, "key": "p", "value": "2"})
    assert changed.status_code == 400 and changed.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    data = endpoint.close_stage("s", published=True)
    assert data.metrics == () and dict(data.params) == {"p": "1"}


def test_nothing_listens_until_a_stage_runs():
    idle = Endpoint("Default")
    assert idle.close_stage("s", published=True).metrics == ()
    assert idle._server is None
    idle.stop()


def test_a_chunked_upload_is_kept_whole(endpoint, tmp_path: Path):
    env = endpoint.open_stage("a", staging=tmp_path / "staging", outputs=tmp_path / "out")
    root = f"/api/2.0/mlflow-artifacts/artifacts/{env['MLFLOW_EXPERIMENT_ID']}/{env['MLFLOW_RUN_ID']}/artifacts"
    assert _call(env, "PUT", f"{root}/streamed.bin", data=iter([b"ab", b"cd" * 1000])).status_code == 200
    assert (tmp_path / "staging/mlflow-artifacts/streamed.bin").read_bytes() == b"ab" + b"cd" * 1000
