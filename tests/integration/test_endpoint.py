"""The run's own MLflow tracking endpoint, with the real mlflow client inside stages.

Stages run ``$ORCHESTRA_TEST_MLFLOW_VENV/bin/python`` (mlflow, scikit-learn): they log metrics,
params, an artifact, an autologged model and ``mlflow.sklearn.log_model``. A real ``mlflow
server`` (tests/mlflow_server.py) receives the mirror. The cold server is a small loopback proxy
that holds every request 5 s before passing it to the real server: the only stand-in here, for a
server that is slow to answer.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from orchestra.integrations.endpoint import Endpoint
from tests.conftest import run_cli
from tests.mlflow_server import MlflowServer, free_port, metrics, mlflow_server, params, require_venv, tags  # noqa: F401

pytestmark = pytest.mark.integration

PIPELINE = """
name: endpointed
entry_points:
  train:
    parameters:
      alpha: {type: float, default: 0.5}
    command: "$ORCHESTRA_TEST_MLFLOW_VENV/bin/python train_stage.py {alpha}"
  evaluate:
    depends_on: [train]
    command: "$ORCHESTRA_TEST_MLFLOW_VENV/bin/python eval_stage.py"
"""

TRAIN = """
import os, sys, tempfile
import mlflow, mlflow.sklearn
import numpy as np
from sklearn.linear_model import Ridge

mlflow.sklearn.autolog()
mlflow.log_param("alpha_given", sys.argv[1])
for step in range(3):
    mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
X = np.arange(20, dtype=float).reshape(10, 2)
model = Ridge(alpha=float(sys.argv[1])).fit(X, X.sum(axis=1))
note = os.path.join(tempfile.mkdtemp(), "note.txt")
open(note, "w").write("hello")
mlflow.log_artifact(note, artifact_path="notes")
mlflow.sklearn.log_model(model, name="ridge")
"""

EVALUATE = """
import mlflow
mlflow.log_metric("score", 0.9)
mlflow.set_tag("phase", "eval")
"""

ONE_METRIC = """
entry_points:
  main:
    command: "$ORCHESTRA_TEST_MLFLOW_VENV/bin/python -c 'import mlflow; mlflow.log_metric(\\"m\\", 7.0)'"
"""


@pytest.fixture
def venv_env() -> dict[str, str]:
    return {"ORCHESTRA_TEST_MLFLOW_VENV": str(require_venv())}


def _files(project: Path) -> set[str]:
    return {p.relative_to(project).as_posix() for p in project.rglob("*")}


def _show(run_id: str) -> dict:
    result = run_cli("runs", "show", run_id, "--json")
    assert result.code == 0, result.err
    return json.loads(result.out)


def test_stages_log_to_the_endpoint_through_a_down_server_then_sync(make_project, venv_env, mlflow_server: MlflowServer):
    """No reachable server: the run finishes, keeps everything locally, and `runs sync` delivers it once."""
    project = make_project(PIPELINE, {"train_stage.py": TRAIN, "eval_stage.py": EVALUATE})
    before = _files(project)
    closed = f"http://127.0.0.1:{free_port()}"
    experiment = f"endpoint-{time.time_ns()}"
    started = time.monotonic()
    result = run_cli("run", str(project), "-e", "evaluate", "--tracking-uri", closed, "--experiment", experiment,
                     "--json", env=venv_env, timeout=300)
    elapsed = time.monotonic() - started
    assert result.code == 0, result.err
    record = json.loads(result.out)
    assert record["status"] == "FINISHED"
    assert _files(project) == before  # no mlruns/, no mlflow.db: the client used the endpoint
    stages = {s["name"]: s for s in record["stages"]}
    # A down server costs no stage anything: the run's time beyond its stages' is small (generous
    # for a loaded CI machine; the mlflow client's own retries against a down server take 248 s).
    work = sum(s["end_time"] - s["start_time"] for s in stages.values())
    assert elapsed - work < 30, (elapsed, work, result.err)
    assert "not sent" in result.err and "orchestra runs sync" in result.err

    shown = {s["name"]: s for s in _show(record["run_id"])["stages"]}
    train, evaluate = shown["train"], shown["evaluate"]
    assert train["metrics"]["loss"] == pytest.approx(1 / 3) and "training_score" in train["metrics"]
    assert train["params"]["alpha_given"] == "0.5" and train["params"]["alpha"] == "0.5"
    assert train["tags"]["estimator_name"] == "Ridge"
    assert "notes/note.txt" in train["artifacts"] and "mlflow-artifacts/notes/note.txt" in train["manifest"]
    assert (Path(train["outputs_dir"]) / "mlflow-artifacts/notes/note.txt").read_text() == "hello"
    names = sorted(m["name"] for m in train["models"])
    assert "ridge" in names and len(names) == 2  # autolog's and log_model's
    ridge = next(m for m in train["models"] if m["name"] == "ridge")
    assert any(rel.startswith(ridge["files"]) and rel.endswith("MLmodel") for rel in train["manifest"])
    assert evaluate["metrics"] == {"score": 0.9} and evaluate["tags"]["phase"] == "eval"

    # A second run loads both stages and keeps what they logged.
    again = run_cli("run", str(project), "-e", "evaluate", "--json", env=venv_env, timeout=120)
    assert again.code == 0, again.err
    loaded = {s["name"]: s for s in _show(json.loads(again.out)["run_id"])["stages"]}
    assert {s["status"] for s in loaded.values()} == {"LOADED"}
    assert loaded["train"]["metrics"] == train["metrics"] and loaded["evaluate"]["metrics"] == {"score": 0.9}
    assert loaded["train"]["artifacts"] == train["artifacts"] and len(loaded["train"]["models"]) == 2
    diff = run_cli("runs", "diff", record["run_id"], json.loads(again.out)["run_id"])
    assert "metric train.loss" in diff.out and "param train.alpha_given" in diff.out and "metric evaluate.score" in diff.out, diff.out

    # The server comes up: sync delivers parent and children, with everything, once.
    for _ in range(2):  # the second sync sends nothing again
        synced = run_cli("runs", "sync", record["run_id"], "--tracking-uri", mlflow_server.url, timeout=240)
        assert synced.code == 0, synced.err
    parent, children = mlflow_server.runs_of(record["run_id"], experiment)
    assert parent["info"]["status"] == "FINISHED" and set(children) == {"train", "evaluate"}
    child = children["train"]
    assert [m["value"] for m in sorted(mlflow_server.metric_history(child, "loss"), key=lambda m: m["step"])] \
        == [1.0, 0.5, pytest.approx(1 / 3)]
    assert params(child)["alpha_given"] == "0.5" and metrics(children["evaluate"]) == {"score": 0.9}
    assert mlflow_server.artifact(child, "notes/note.txt").text == "hello"
    found = mlflow_server.api("logged-models/search", {"experiment_ids": [mlflow_server.experiment_id(experiment)]})
    remote = [m for m in found.get("models", []) if m["info"].get("source_run_id") == child["info"]["run_id"]]
    assert sorted(m["info"]["name"] for m in remote) == names
    ridge_remote = next(m for m in remote if m["info"]["name"] == "ridge")
    assert ridge_remote["info"]["status"] == "LOGGED_MODEL_READY"
    root = ridge_remote["info"]["artifact_uri"].removeprefix("mlflow-artifacts:/").strip("/")
    assert requests.get(f"{mlflow_server.url}/api/2.0/mlflow-artifacts/artifacts/{root}/MLmodel", timeout=10).ok


class _SlowProxy(ThreadingHTTPServer):
    """Holds every request ``delay`` seconds, then passes it to ``target`` (a cold server)."""

    daemon_threads = True

    def __init__(self, target: str, delay: float) -> None:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # noqa: ANN002
                pass

            def _pass(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                time.sleep(proxy.delay)
                request = urllib.request.Request(target + self.path, data=body or None, method=self.command,
                                                 headers={k: v for k, v in self.headers.items() if k.lower() != "host"})
                try:
                    with urllib.request.urlopen(request, timeout=60) as answer:
                        status, data, kind = answer.status, answer.read(), answer.headers.get("Content-Type", "")
                except urllib.error.HTTPError as exc:
                    status, data, kind = exc.code, exc.read(), exc.headers.get("Content-Type", "")
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = _pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.delay = delay

    def __enter__(self) -> str:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __exit__(self, *exc) -> None:  # noqa: ANN002
        self.shutdown()
        self.server_close()


def test_cold_server_metrics_land_in_the_stages_own_child_run(make_project, venv_env, mlflow_server: MlflowServer):
    project = make_project(ONE_METRIC)
    experiment = f"cold-{time.time_ns()}"
    with _SlowProxy(mlflow_server.url, 5.0) as cold:
        result = run_cli("run", str(project), "--tracking-uri", cold, "--experiment", experiment, "--json",
                         env=venv_env, timeout=300)
        assert result.code == 0, result.err
        run_id = json.loads(result.out)["run_id"]
        synced = run_cli("runs", "sync", run_id, "--tracking-uri", cold, timeout=300)
        assert synced.code == 0, synced.err
    parent, children = mlflow_server.runs_of(run_id, experiment)
    assert metrics(children["main"]) == {"m": 7.0}
    assert tags(children["main"])["mlflow.parentRunId"] == parent["info"]["run_id"]
    assert not metrics(parent).get("m")


def test_token_unknown_paths_and_passthrough_reads(tmp_path: Path, mlflow_server: MlflowServer):
    """The endpoint itself, over real HTTP: 401 without the stage's token, MLflow's error JSON for
    an unknown path, and a run that exists only on the server read through it."""
    from orchestra.core.tracking_uri import parse

    experiment_id = mlflow_server.experiment_id("Default")
    remote_run = mlflow_server.api("runs/create", {"experiment_id": experiment_id, "start_time": 0})["run"]["info"]
    endpoint = Endpoint("Default", remote=parse(mlflow_server.url))
    try:
        env = endpoint.open_stage("s", staging=tmp_path / "staging", outputs=tmp_path / "out")
        base, auth = env["MLFLOW_TRACKING_URI"], {"Authorization": f"Bearer {env['MLFLOW_TRACKING_TOKEN']}"}
        assert base.startswith("http://127.0.0.1:")
        own = f"{base}/api/2.0/mlflow/runs/get?run_id={env['MLFLOW_RUN_ID']}"
        assert requests.get(own, timeout=10).status_code == 401
        assert requests.get(own, headers={"Authorization": "Bearer wrong"}, timeout=10).status_code == 401
        assert requests.get(own, headers=auth, timeout=10).json()["run"]["info"]["run_id"] == env["MLFLOW_RUN_ID"]
        unknown = requests.post(f"{base}/api/2.0/mlflow/no/such/thing", json={}, headers=auth, timeout=10)
        assert unknown.status_code == 404 and unknown.json()["error_code"] == "ENDPOINT_NOT_FOUND"
        theirs = requests.get(f"{base}/api/2.0/mlflow/runs/get", params={"run_id": remote_run["run_id"]},
                              headers=auth, timeout=30)
        assert theirs.status_code == 200 and theirs.json()["run"]["info"]["run_id"] == remote_run["run_id"]
        missing = requests.get(f"{base}/api/2.0/mlflow/runs/get", params={"run_id": "0" * 32}, headers=auth, timeout=30)
        assert missing.status_code == 404 and missing.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    finally:
        endpoint.stop()
    alone = Endpoint("Default")  # no server configured: MLflow's error answer
    try:
        env = alone.open_stage("s", staging=tmp_path / "s2", outputs=tmp_path / "o2")
        answer = requests.get(f"{env['MLFLOW_TRACKING_URI']}/api/2.0/mlflow/runs/get",
                              params={"run_id": remote_run["run_id"]},
                              headers={"Authorization": f"Bearer {env['MLFLOW_TRACKING_TOKEN']}"}, timeout=10)
        assert answer.status_code == 404 and answer.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    finally:
        alone.stop()





DASK_STAGE = """
entry_points:
  main:
    command: "bash writes_an_output.sh {outputs} && $ORCHESTRA_TEST_MLFLOW_VENV/bin/python logs_on_a_worker.py"
"""

WORKER_OUTPUT = 'echo "from the stage" > "$1/mine.txt"\n'

ON_WORKER = """
import os, tempfile, mlflow
mlflow.log_metric("worker_metric", 3.0)
note = os.path.join(tempfile.mkdtemp(), "where.txt")
open(note, "w").write("worker")
mlflow.log_artifact(note)
"""


@pytest.mark.parametrize("store", [False, True], ids=["shared-paths", "file-store"])
def test_stage_on_a_dask_worker_reaches_the_endpoint(make_project, venv_env, store, tmp_path):
    """The local 2-worker cluster: a stage on a worker logs through the driver's endpoint (token
    required). With an artifact store the worker runs in its own scratch directory: the artifact
    the endpoint received on this machine still joins the stage's published outputs."""
    from tests.integration.daskcluster import cluster

    dask = cluster()
    project = make_project(DASK_STAGE, {"logs_on_a_worker.py": ON_WORKER, "writes_an_output.sh": WORKER_OUTPUT})
    env = {**venv_env, "ORCHESTRA_ARTIFACTS": f"file://{tmp_path / 'shared-store'}"} if store else venv_env
    result = run_cli("run", str(project), "--executor", dask.url, "--json", env=env, timeout=300)
    assert result.code == 0, result.err
    stage = _show(json.loads(result.out)["run_id"])["stages"][0]
    assert stage["metrics"] == {"worker_metric": 3.0} and stage["artifacts"] == ["where.txt"]
    assert set(stage["manifest"]) == {"mine.txt", "mlflow-artifacts/where.txt"}
    outputs = Path(stage["outputs_dir"])
    assert (outputs / "mlflow-artifacts" / "where.txt").read_text() == "worker"
    assert (outputs / "mine.txt").read_text() == "from the stage\n"
    assert not [p for p in outputs.parent.iterdir() if p.name.startswith(".staging-")]
