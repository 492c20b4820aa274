"""A sweep mirrored to a real ``mlflow server``: every member is mirrored as a normal pipeline run
(members run at once in one process, each with its own mirror), with its swept value as a param
and the sweep tags. (Nesting members under a sweep parent run is not implemented.)"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.mlflow_server import MlflowServer, mlflow_server, params, tags  # noqa: F401

pytestmark = pytest.mark.integration
QUICKSTART = Path(__file__).resolve().parents[2] / "example_projects" / "quickstart"


@pytest.fixture(autouse=True)
def _patient_sync_calls(monkeypatch):
    monkeypatch.setenv("ORCHESTRA_MLFLOW_TIMEOUT", "60")


def test_sweep_members_are_mirrored(tmp_path, mlflow_server: MlflowServer):
    root = tmp_path / "quickstart"
    shutil.copytree(QUICKSTART, root)
    experiment = f"sweep-{uuid.uuid4().hex[:8]}"
    done = run_cli("run", str(root), "--tracking-uri", mlflow_server.url, "--experiment", experiment,
                   "--env-manager", "local", "-P", "epochs=20", "--sweep", "alpha=0.1,0.5,1.0", "--json",
                   timeout=300)
    assert done.code == 0, done.err
    table = json.loads(done.out)
    runs = mlflow_server.api("runs/search", {"experiment_ids": [mlflow_server.experiment_id(experiment)],
                                             "max_results": 100})["runs"]
    parents = [r for r in runs if "mlflow.parentRunId" not in tags(r)]
    assert len(parents) == 3 and len(runs) == 3 * 5  # each member: its parent run and 4 stage runs
    assert {tags(r)["orchestra.sweep"] for r in parents} == {table["sweep_id"]}
    assert sorted(params(r)["alpha"] for r in parents) == ["0.1", "0.5", "1.0"]
