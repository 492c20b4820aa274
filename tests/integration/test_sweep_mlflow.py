"""A sweep mirrored to a real ``mlflow server``: one MLflow run for the sweep, each member's
pipeline run nested under it (members run at once in one process, each with its own mirror) with
its swept value as a param, and the stages' runs nested under their member; the sweep run ends
with the best member's metrics (by ``--sort``) and a tag naming it."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.mlflow_server import (MlflowServer, free_port, metrics, mlflow_server, params,  # noqa: F401
                                 require_venv, tags)

pytestmark = pytest.mark.integration
QUICKSTART = Path(__file__).resolve().parents[2] / "example_projects" / "quickstart"


@pytest.fixture(autouse=True)
def _patient_sync_calls(monkeypatch):
    monkeypatch.setenv("ORCHESTRA_MLFLOW_TIMEOUT", "60")


def test_sweep_members_nest_under_the_sweep_run(tmp_path, mlflow_server: MlflowServer):
    root = tmp_path / "quickstart"
    shutil.copytree(QUICKSTART, root)
    experiment = f"sweep-{uuid.uuid4().hex[:8]}"
    done = run_cli("run", str(root), "--tracking-uri", mlflow_server.url, "--experiment", experiment,
                   "--env-manager", "local", "-P", "epochs=20", "--sweep", "alpha=0.1,0.5,1.0",
                   "--sort", "evaluate.rmse", "--json", timeout=300)
    assert done.code == 0, done.err
    table = json.loads(done.out)
    runs = mlflow_server.api("runs/search", {"experiment_ids": [mlflow_server.experiment_id(experiment)],
                                             "max_results": 100})["runs"]
    assert len(runs) == 1 + 3 + 3 * 4, done.err  # the sweep run, each member's parent run and its 4 stage runs
    top = [r for r in runs if "mlflow.parentRunId" not in tags(r)]
    assert len(top) == 1, done.err
    sweep = top[0]
    sweep_id = sweep["info"]["run_id"]
    assert tags(sweep)["orchestra.sweep.run"] == table["sweep_id"]
    assert sweep["info"]["run_name"] == f"sweep {table['sweep_id'][:8]}"
    assert sweep["info"]["status"] == "FINISHED"
    assert params(sweep) == {"epochs": "20"}  # the fixed params; the swept ones are the members'
    members = [r for r in runs if tags(r).get("mlflow.parentRunId") == sweep_id]
    assert len(members) == 3
    assert {tags(r)["orchestra.sweep"] for r in members} == {table["sweep_id"]}
    assert sorted(params(r)["alpha"] for r in members) == ["0.1", "0.5", "1.0"]
    member_ids = {r["info"]["run_id"] for r in members}
    stages = [r for r in runs if tags(r).get("mlflow.parentRunId") in member_ids]
    assert len(stages) == 12 and {tags(r)["orchestra.stage"] for r in stages} == {"prepare", "features", "train",
                                                                                     "evaluate"}
    best = next(m for m in table["members"] if m["run_id"] == table["best"])
    best_mlflow = next(r for r in members if tags(r)["orchestra.run_id"] == table["best"])
    assert tags(sweep)["orchestra.sweep.best_run"] == table["best"], done.err
    assert tags(sweep)["orchestra.sweep.best_mlflow_run"] == best_mlflow["info"]["run_id"]
    assert metrics(sweep)["evaluate.rmse"] == pytest.approx(best["metrics"]["evaluate.rmse"]), done.err
    assert metrics(sweep)["evaluate.rmse"] == min(metrics(r)["evaluate.rmse"] for r in members)


def test_sweep_without_sort_has_no_best(tmp_path, mlflow_server: MlflowServer):
    root = tmp_path / "quickstart"
    shutil.copytree(QUICKSTART, root)
    experiment = f"sweep-{uuid.uuid4().hex[:8]}"
    done = run_cli("run", str(root), "--tracking-uri", mlflow_server.url, "--experiment", experiment,
                   "--env-manager", "local", "--sweep", "alpha=0.1,0.5", timeout=300)
    assert done.code == 0, done.err
    runs = mlflow_server.api("runs/search", {"experiment_ids": [mlflow_server.experiment_id(experiment)],
                                             "max_results": 100})["runs"]
    sweep = [r for r in runs if "mlflow.parentRunId" not in tags(r)]
    assert len(sweep) == 1 and sweep[0]["info"]["status"] == "FINISHED"
    assert "orchestra.sweep.best_run" not in tags(sweep[0]) and not metrics(sweep[0])
    members = [r for r in runs if tags(r).get("mlflow.parentRunId") == sweep[0]["info"]["run_id"]]
    assert len(members) == 2 and len(runs) == 1 + 2 + 2 * 4


def test_sweep_with_the_server_down_is_finished_by_runs_sync(tmp_path):
    """The server is down for the whole sweep (nothing listens on its port): the sweep is not
    blocked, and `runs sync` of the members and of the sweep id builds the same nested tree once
    a real server answers on that port."""
    root = tmp_path / "quickstart"
    shutil.copytree(QUICKSTART, root)
    server = MlflowServer(require_venv(), tmp_path / "server", free_port())
    done = run_cli("run", str(root), "--tracking-uri", server.url, "--env-manager", "local",
                   "--sweep", "alpha=0.1,0.5", "--sort", "evaluate.rmse", "--json", timeout=300)
    assert done.code == 0, done.err
    table = json.loads(done.out)
    assert f"orchestra runs sync {table['sweep_id']} --tracking-uri {server.url}" in done.err
    server.start()
    try:
        for member in table["members"]:
            synced = run_cli("runs", "sync", member["run_id"], "--tracking-uri", server.url, timeout=120)
            assert synced.code == 0, synced.err
        synced = run_cli("runs", "sync", table["sweep_id"], "--tracking-uri", server.url, timeout=120)
        assert synced.code == 0, synced.err
        runs = server.api("runs/search", {"experiment_ids": [server.experiment_id("Default")],
                                          "max_results": 100})["runs"]
        [sweep] = [r for r in runs if "mlflow.parentRunId" not in tags(r)]
        assert tags(sweep)["orchestra.sweep.run"] == table["sweep_id"] and sweep["info"]["status"] == "FINISHED"
        assert tags(sweep)["orchestra.sweep.best_run"] == table["best"]
        members = [r for r in runs if tags(r).get("mlflow.parentRunId") == sweep["info"]["run_id"]]
        assert len(members) == 2 and len(runs) == 1 + 2 + 2 * 4
    finally:
        server.stop()
