"""The MLflow mirror: runs mirrored to a real ``mlflow server`` and read back through its REST API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.mlflow_server import MlflowServer, metrics, mlflow_env, mlflow_server, params, require_venv, tags  # noqa: F401

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _patient_sync_calls(monkeypatch):
    """On a loaded 2-core CI machine the server may take seconds to create a run; these tests
    check where runs land, so the synchronous calls may wait (the default is 3 s, then the
    breaker opens and the stage runs without MLFLOW_RUN_ID: see test_mlflow_cli)."""
    monkeypatch.setenv("ORCHESTRA_MLFLOW_TIMEOUT", "60")

PIPELINE = """
name: mirrored
entry_points:
  prep:
    parameters:
      rows: {type: int, default: 3}
    command: "python prep.py {rows} {outputs}"
  train:
    depends_on: [prep]
    parameters:
      alpha: {type: float, default: 0.5}
    command: "python train.py {alpha} {inputs.prep} {outputs}"
  report:
    depends_on: [train]
    command: "python report.py {inputs.train}"
"""

FILES = {
    # Logs through orchestra's own metrics file (no mlflow import).
    "prep.py": """
        import json, os, sys
        rows, out = int(sys.argv[1]), sys.argv[2]
        with open(os.path.join(out, "data.txt"), "w") as f:
            f.write("".join(f"{i}\\n" for i in range(rows)))
        with open(os.environ["ORCHESTRA_METRICS_FILE"], "a") as f:
            f.write(json.dumps({"type": "metric", "key": "rows", "value": rows, "step": 0}) + "\\n")
        print(f"prepared {rows} rows")
    """,
    # Logs through the real mlflow client, into the run named by MLFLOW_RUN_ID.
    "train.py": """
        import os, sys
        seen = {k: os.environ.get(k) for k in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_TRACKING_URI",
                                               "MLFLOW_TRACKING_USERNAME")}
        import mlflow
        alpha, data, out = float(sys.argv[1]), sys.argv[2], sys.argv[3]
        with mlflow.start_run() as run:
            mlflow.log_param("alpha", alpha)
            for step in range(3):
                mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
            mlflow.set_tag("trained_by", "train.py")
            seen["active"] = run.info.run_id
        n = len(open(os.path.join(data, "data.txt")).read().split())
        with open(os.path.join(out, "model.txt"), "w") as f:
            f.write(f"alpha={alpha} n={n}\\n")
        import json
        with open(os.path.join(out, "env.json"), "w") as f:
            json.dump(seen, f)
        print("training done")
    """,
    "report.py": """
        import sys
        print("report:", open(sys.argv[1] + "/model.txt").read().strip())
        print("a warning on stderr", file=sys.stderr)
    """,
}


def _run(project: Path, server: MlflowServer, experiment: str, *extra: str, env: dict[str, str] | None = None,
         uri: str | None = None):
    result = run_cli("run", str(project), "--tracking-uri", uri or server.url, "--experiment", experiment,
                     "--env-manager", "local", "--json", *extra, env=env, timeout=240)
    record = json.loads(result.out) if result.out.strip() else None
    return result, record


def _experiment() -> str:
    return f"exp-{uuid.uuid4().hex[:8]}"


def test_three_stage_pipeline_is_mirrored(make_project, mlflow_server: MlflowServer, mlflow_env):
    project = make_project(PIPELINE, FILES)
    experiment = _experiment()
    # Credentials in the URI are used (basic auth) but never shown or stored.
    uri = mlflow_server.url.replace("http://", "http://alice:s3cret-pw@")
    result, record = _run(project, mlflow_server, experiment, "-P", "alpha=0.25", env=mlflow_env, uri=uri)
    assert result.code == 0, result.err
    assert "s3cret-pw" not in result.err + result.out
    parent, children = mlflow_server.runs_of(record["run_id"], experiment)

    # Parent: one per orchestra run, with the run's params, its mlflow.* and orchestra.* tags, status and times.
    assert parent["info"]["status"] == "FINISHED"
    assert parent["info"]["end_time"] >= parent["info"]["start_time"] >= int(record["start_time"] * 1000) - 1000
    ptags = tags(parent)
    assert ptags["orchestra.run_id"] == record["run_id"]
    assert ptags["mlflow.source.type"] == "PROJECT" and ptags["mlflow.source.name"] == str(project)
    assert ptags["mlflow.project.entryPoint"] == "prep,train,report"
    assert "mlflow.parentRunId" not in ptags
    assert params(parent) == {"rows": "3", "alpha": "0.25"}
    assert f"MLflow run {parent['info']['run_id']}" in result.err

    # Children: one nested run per stage.
    assert set(children) == {"prep", "train", "report"}
    local = {s["name"]: s for s in record["stages"]}
    for name, child in children.items():
        ctags = tags(child)
        assert ctags["mlflow.parentRunId"] == parent["info"]["run_id"]
        assert ctags["orchestra.run_id"] == record["run_id"] and ctags["orchestra.stage"] == name
        assert ctags["orchestra.cache_key"] == local[name]["cache_key"]
        assert ctags["mlflow.runName"] == name and ctags["mlflow.project.entryPoint"] == name
        assert child["info"]["status"] == "FINISHED" and child["info"]["end_time"] >= child["info"]["start_time"]
        assert ctags["orchestra.exit_code"] == "0"
        assert all("s3cret-pw" not in v for v in ctags.values())

    # The stage talked to the run's own endpoint (its local run, on loopback, no credentials of
    # the server), and everything its mlflow client logged landed in its child run on the server
    # through the mirror (metric history included).
    seen = json.loads((Path(local["train"]["outputs_dir"]) / "env.json").read_text())
    train = children["train"]
    assert seen["MLFLOW_RUN_ID"] == seen["active"] != train["info"]["run_id"], (seen, result.err)
    assert seen["MLFLOW_TRACKING_URI"].startswith("http://127.0.0.1:") and not seen["MLFLOW_TRACKING_USERNAME"]
    assert params(train) == {"alpha": "0.25"}
    assert tags(train)["trained_by"] == "train.py"
    assert [(m["step"], m["value"]) for m in sorted(mlflow_server.metric_history(train, "loss"), key=lambda m: m["step"])] \
        == [(0, 1.0), (1, 0.5), (2, 1 / 3)]
    # Metrics logged through orchestra's metrics file are forwarded; declared params too.
    assert metrics(children["prep"]) == {"rows": 3.0}
    assert params(children["prep"]) == {"rows": "3"}

    # Logs are artifacts of the child run; outputs are not uploaded without --mlflow-artifacts,
    # but the manifest is.
    assert "prepared 3 rows" in mlflow_server.artifact(children["prep"], "logs/stdout.log").text
    assert "a warning on stderr" in mlflow_server.artifact(children["report"], "logs/stderr.log").text
    manifest = mlflow_server.artifact(children["train"], "orchestra/manifest.json").json()
    assert manifest["outputs"] is False and set(manifest["manifest"]) == {"model.txt", "env.json"}
    assert manifest["cache_key"] == local["train"]["cache_key"]
    assert mlflow_server.artifact(children["train"], "outputs/model.txt").status_code == 404


FAILING = """
entry_points:
  a:
    command: "python -c 'print(1)'"
  b:
    depends_on: [a]
    retries: 1
    command: "python -c 'import sys; print(\\"bad input row 7\\", file=sys.stderr); sys.exit(3)'"
  c:
    depends_on: [b]
    command: "python -c 'print(3)'"
"""


def test_failed_stage(make_project, mlflow_server: MlflowServer):
    project = make_project(FAILING)
    experiment = _experiment()
    result, record = _run(project, mlflow_server, experiment)
    assert result.code == 1
    parent, children = mlflow_server.runs_of(record["run_id"], experiment)
    assert parent["info"]["status"] == "FAILED"
    assert children["a"]["info"]["status"] == "FINISHED"
    assert children["b"]["info"]["status"] == "FAILED"
    assert tags(children["b"])["orchestra.exit_code"] == "3"
    assert tags(children["b"])["orchestra.attempts"] == "2"  # both attempts in one child run
    assert "bad input row 7" in mlflow_server.artifact(children["b"], "logs/stderr.log").text
    assert "c" not in children  # skipped: it never started, so it has no run (as in the local record: SKIPPED)


SLOW = """
entry_points:
  quick:
    command: "python -c 'print(1)'"
  slow:
    depends_on: [quick]
    command: "python slow.py"
"""


def test_killed_run(make_project, mlflow_server: MlflowServer, tmp_path: Path):
    marker = tmp_path / "slow-started"
    project = make_project(SLOW, {"slow.py": f"""
        import pathlib, time
        pathlib.Path({str(marker)!r}).write_text("x")
        time.sleep(120)
    """})
    experiment = _experiment()
    proc = subprocess.Popen([sys.executable, "-m", "orchestra", "run", str(project), "--tracking-uri", mlflow_server.url,
                             "--experiment", experiment, "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the slow stage never started"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    record = json.loads(out)
    assert record["status"] == "KILLED"
    parent, children = mlflow_server.runs_of(record["run_id"], experiment)
    assert parent["info"]["status"] == "KILLED" and parent["info"].get("end_time")
    assert children["quick"]["info"]["status"] == "FINISHED"
    assert children["slow"]["info"]["status"] == "KILLED"


def _wait_for_child(server: MlflowServer, experiment: str, stage: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = server.api("runs/search", {"experiment_ids": [server.experiment_id(experiment)],
                                               "filter": f"tags.`orchestra.stage` = '{stage}'"}).get("runs")
        except AssertionError:  # the experiment is not there yet
            found = None
        if found:
            return
        time.sleep(0.2)
    raise AssertionError(f"no child run of {stage} on the server after {timeout:g}s")


def test_sigkilled_orchestra_is_closed_by_sync(make_project, mlflow_server: MlflowServer, tmp_path: Path):
    """orchestra itself SIGKILLed: no end events at all. The next command marks the run KILLED
    locally, and sync closes its MLflow runs from the run store instead of leaving them RUNNING."""
    marker = tmp_path / "slow-started"
    project = make_project(SLOW, {"slow.py": f"""
        import pathlib, time
        pathlib.Path({str(marker)!r}).write_text("x")
        time.sleep(120)
    """})
    experiment = _experiment()
    proc = subprocess.Popen([sys.executable, "-m", "orchestra", "run", str(project), "--tracking-uri", mlflow_server.url,
                             "--experiment", experiment], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the slow stage never started"
            time.sleep(0.05)
        _wait_for_child(mlflow_server, experiment, "slow")  # created by the mirror's sender, not the stage
        proc.kill()
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    run_id = err.split("orchestra: run ", 1)[1].split()[0]
    running = mlflow_server.runs_of(run_id, experiment)[1]["slow"]
    assert running["info"]["status"] == "RUNNING"
    synced = run_cli("runs", "sync", run_id, "--tracking-uri", mlflow_server.url)
    assert synced.code == 0, synced.err
    parent, children = mlflow_server.runs_of(run_id, experiment)
    assert parent["info"]["status"] == "KILLED"
    assert {k: c["info"]["status"] for k, c in children.items()} == {"quick": "FINISHED", "slow": "KILLED"}
    assert children["slow"]["info"]["end_time"] >= children["slow"]["info"]["start_time"]


def test_server_stopped_mid_run_then_synced(make_project, tmp_path: Path):
    server = MlflowServer(require_venv(), tmp_path / "own-server").start()
    try:
        go = tmp_path / "go"
        project = make_project("""
            entry_points:
              first:
                command: "python first.py"
              second:
                depends_on: [first]
                command: "python -c 'print(\\"second ran\\")'"
              third:
                depends_on: [second]
                command: "python -c 'print(\\"third ran\\")'"
        """, {"first.py": f"""
            import os, pathlib, time
            print("first waits")
            deadline = time.monotonic() + 120
            while not pathlib.Path({str(go)!r}).exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        """})
        experiment = _experiment()
        proc = subprocess.Popen([sys.executable, "-m", "orchestra", "run", str(project), "--tracking-uri", server.url,
                                 "--experiment", experiment, "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        try:
            # Wait until the first stage's child run exists on the server, then take the server down.
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None and time.monotonic() < deadline
                try:
                    runs = server.api("runs/search", {"experiment_ids": [server.experiment_id(experiment)],
                                                      "filter": "tags.`orchestra.stage` = 'first'"}).get("runs")
                    if runs:
                        break
                except AssertionError:
                    pass  # the experiment is being created
                time.sleep(0.05)
            server.stop()
            go.write_text("go")
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
        # The pipeline is unaffected: every stage ran, the run finished, exit 0.
        assert proc.returncode == 0, err
        record = json.loads(out)
        assert record["status"] == "FINISHED" and [s["status"] for s in record["stages"]] == ["FINISHED"] * 3
        assert f"orchestra runs sync {record['run_id']}" in err
        assert err.count("MLflow tracking server") <= 1  # the breaker: found down once, then no stage waits on it

        # Nothing reaches a dead server: sync says so (exit 1, one line) and keeps the queue.
        dead = run_cli("runs", "sync", record["run_id"], "--tracking-uri", server.url)
        assert dead.code == 1 and len(dead.err.strip().splitlines()) == 1, dead.err
        assert "not sent" in dead.err

        server.start()  # same port, same database
        synced = run_cli("runs", "sync", record["run_id"], "--tracking-uri", server.url)
        assert synced.code == 0, synced.err
        parent, children = server.runs_of(record["run_id"], experiment)
        assert parent["info"]["status"] == "FINISHED"
        assert {k: c["info"]["status"] for k, c in children.items()} == {"first": "FINISHED", "second": "FINISHED",
                                                                        "third": "FINISHED"}
        assert all(tags(c)["mlflow.parentRunId"] == parent["info"]["run_id"] for c in children.values())
        assert "third ran" in server.artifact(children["third"], "logs/stdout.log").text
        # A second sync has nothing left to send and creates no duplicate.
        again = run_cli("runs", "sync", record["run_id"], "--tracking-uri", server.url)
        assert again.code == 0 and "0 operation(s) sent" in again.out
        assert len(server.runs_of(record["run_id"], experiment)[1]) == 3
    finally:
        server.stop()


def test_a_later_run_sends_what_an_earlier_run_left_pending(make_project, tmp_path: Path):
    """Like webhook deliveries, a mirror left pending while the server was down goes out with the
    next tracked run once the server answers, without an explicit `runs sync`."""
    server = MlflowServer(require_venv(), tmp_path / "late-server")  # not started yet: down
    project = make_project("""
        entry_points:
          main: {command: "python -c 'print(1)'"}
    """)
    experiment = _experiment()
    try:
        down = run_cli("run", str(project), "--tracking-uri", server.url, "--experiment", experiment, "--json")
        assert down.code == 0, down.err
        earlier = json.loads(down.out)["run_id"]
        assert f"orchestra runs sync {earlier}" in down.err
        server.start()
        later = run_cli("run", str(project), "--tracking-uri", server.url, "--experiment", experiment, "--json")
        assert later.code == 0, later.err
        assert f"also sent the pending mirror of earlier run {earlier}" in later.err
        parent, children = server.runs_of(earlier, experiment)
        assert parent["info"]["status"] == "FINISHED" and children["main"]["info"]["status"] == "FINISHED"
        assert server.runs_of(json.loads(later.out)["run_id"], experiment)[0]["info"]["status"] == "FINISHED"
    finally:
        server.stop()


def test_sync_replays_a_run_that_was_never_mirrored(make_project, mlflow_server: MlflowServer):
    project = make_project(PIPELINE, {"prep.py": FILES["prep.py"], "report.py": "print('r')\n", "train.py": """
        import sys
        open(sys.argv[3] + "/model.txt", "w").write(sys.argv[1])
    """})
    local = run_cli("run", str(project), "--json", "-P", "alpha=0.7")
    assert local.code == 0, local.err
    run_id = json.loads(local.out)["run_id"]
    experiment = _experiment()
    synced = run_cli("runs", "sync", run_id[:10], "--tracking-uri", mlflow_server.url, "--experiment", experiment)
    assert synced.code == 0, synced.err
    assert "replayed" in synced.out
    parent, children = mlflow_server.runs_of(run_id, experiment)
    assert parent["info"]["status"] == "FINISHED" and params(parent)["alpha"] == "0.7"
    assert set(children) == {"prep", "train", "report"}
    assert metrics(children["prep"]) == {"rows": 3.0}
    # Each child has its stage's params as given, also those every stage agrees on (kept unprefixed).
    assert params(children["train"]) == {"alpha": "0.7"} and params(children["prep"]) == {"rows": "3"}
    assert metrics(parent) == {"prep.rows": 3.0}  # the pipeline metrics
    assert "prepared 3 rows" in mlflow_server.artifact(children["prep"], "logs/stdout.log").text


def test_load_from_an_mlflow_run_in_another_home(make_project, mlflow_server: MlflowServer, tmp_path: Path,
                                                 mlflow_env):
    project = make_project(PIPELINE, FILES)
    experiment = _experiment()
    first, record = _run(project, mlflow_server, experiment, "--mlflow-artifacts", env=mlflow_env)
    assert first.code == 0, first.err
    parent, children = mlflow_server.runs_of(record["run_id"], experiment)
    assert mlflow_server.artifact(children["train"], "outputs/model.txt").text == "alpha=0.5 n=3\n"
    mlflow_id = parent["info"]["run_id"]

    # The same machine again: every stage loads; its MLflow runs point at the outputs uploaded
    # by the first run instead of uploading them once more.
    again, record_again = _run(project, mlflow_server, experiment, "--mlflow-artifacts", env=mlflow_env)
    assert again.code == 0 and [s["status"] for s in record_again["stages"]] == ["LOADED"] * 3
    parent_again, children_again = mlflow_server.runs_of(record_again["run_id"], experiment)
    assert mlflow_server.artifact(children_again["train"], "outputs/model.txt").status_code == 404
    pointer = mlflow_server.artifact(children_again["train"], "orchestra/manifest.json").json()
    assert pointer["outputs"] is True
    assert pointer["outputs_artifact_uri"] == children["train"]["info"]["artifact_uri"]

    # Another machine: a fresh ORCHESTRA_HOME that has never seen either run; it loads from the
    # second MLflow run, whose outputs live in the first one's artifacts.
    other = {**mlflow_env, "ORCHESTRA_HOME": str(tmp_path / "other-home")}
    # A plan writes nothing, so it does not download: it says how to import instead.
    planned = run_cli("plan", str(project), "--tracking-uri", mlflow_server.url,
                      "--load-from", parent_again["info"]["run_id"], env=other)
    assert planned.code == 2 and "plans write nothing" in planned.err and len(planned.err.strip().splitlines()) == 1
    assert not (tmp_path / "other-home" / "objects").exists() or not any((tmp_path / "other-home" / "objects").iterdir())
    second, record2 = _run(project, mlflow_server, experiment, "--load-from", parent_again["info"]["run_id"], env=other)
    assert second.code == 0, second.err
    assert [s["status"] for s in record2["stages"]] == ["LOADED"] * 3
    assert all(s["loaded_from"]["run_id"] == record_again["run_id"] for s in record2["stages"])
    stage = {s["name"]: s for s in record2["stages"]}
    assert (Path(stage["train"]["outputs_dir"]) / "model.txt").read_text() == "alpha=0.5 n=3\n"
    # The loading run is mirrored too: its children say where their outputs came from.
    _, children2 = mlflow_server.runs_of(record2["run_id"], experiment)
    assert tags(children2["train"])["orchestra.loaded_from"] == f"{record_again['run_id']}/train"

    # Downloads are verified against the manifest: a tampered artifact is never used; that stage
    # runs again (and so does its downstream), the intact one still loads.
    artifact_root = children["train"]["info"]["artifact_uri"].removeprefix("mlflow-artifacts:/").strip("/")
    tampered = mlflow_server.artifacts / artifact_root / "outputs" / "model.txt"
    tampered.write_text("alpha=9 n=9\n")
    third_home = {**mlflow_env, "ORCHESTRA_HOME": str(tmp_path / "third-home")}
    third, record3 = _run(project, mlflow_server, experiment, "--load-from", mlflow_id, env=third_home)
    assert third.code == 0, third.err
    assert "does not match its manifest" in third.err
    assert [s["status"] for s in record3["stages"]] == ["LOADED", "FINISHED", "FINISHED"]
    assert (Path({s["name"]: s for s in record3["stages"]}["train"]["outputs_dir"]) / "model.txt").read_text() \
        == "alpha=0.5 n=3\n"


def test_load_from_mlflow_run_needs_uploaded_outputs(make_project, mlflow_server: MlflowServer, tmp_path: Path):
    project = make_project(FAILING.replace("sys.exit(3)", "sys.exit(0)"))
    experiment = _experiment()
    first, record = _run(project, mlflow_server, experiment)
    assert first.code == 0, first.err
    parent, _ = mlflow_server.runs_of(record["run_id"], experiment)
    other = {"ORCHESTRA_HOME": str(tmp_path / "other")}
    result = run_cli("run", str(project), "--tracking-uri", mlflow_server.url, "--load-from", parent["info"]["run_id"],
                     env=other)
    assert result.code == 2
    assert result.err.strip().splitlines()[-1].startswith("orchestra: error: --load-from")
    assert "--mlflow-artifacts" in result.err
    missing = run_cli("run", str(project), "--tracking-uri", mlflow_server.url, "--load-from", "ab" * 16, env=other)
    assert missing.code == 2 and "nor on the tracking server" in missing.err


def test_mlflow_tutorial_project_runs_unchanged(mlflow_server: MlflowServer, mlflow_env):
    project = Path(__file__).resolve().parents[2] / "example_projects" / "mlflow_tutorial"
    experiment = _experiment()
    result, record = _run(project, mlflow_server, experiment, "-P", "alpha=0.4", env=mlflow_env)
    assert result.code == 0, result.err
    parent, children = mlflow_server.runs_of(record["run_id"], experiment)
    main = children["main"]
    assert main["info"]["status"] == "FINISHED"
    assert set(metrics(main)) >= {"rmse", "r2", "mae"}
    assert params(main) == {"alpha": "0.4", "l1_ratio": "0.1"}
    assert params(parent) == {"alpha": "0.4", "l1_ratio": "0.1"}
    assert "Elasticnet model (alpha=0.400000" in mlflow_server.artifact(main, "logs/stdout.log").text
    # The model the stage logged (through the run's endpoint) is a logged model of its child run.
    found = mlflow_server.api("logged-models/search", {"experiment_ids": [mlflow_server.experiment_id(experiment)]})
    assert [m for m in found.get("models", []) if m["info"].get("source_run_id") == main["info"]["run_id"]]
