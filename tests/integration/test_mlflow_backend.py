"""``mlflow run URI -b orchestra``: the real mlflow CLI and ``mlflow.projects.run`` load orchestra's
backend plugin and run the pipeline against a real ``mlflow server``.

The plugin is registered the way an install of ``orchestra[mlflow]`` registers it — an
``entry_points.txt`` in a ``.dist-info`` directory on the path — written into tmp_path, so the
shared mlflow virtualenv is not modified. mlflow runs in that virtualenv; the pipeline runs in
orchestra's own Python (``ORCHESTRA_BACKEND_PYTHON``), as when the two live in separate
environments. Nothing is mocked.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES
from tests.mlflow_server import metrics, mlflow_server, require_venv, tags  # noqa: F401

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def backend_env(tmp_path, mlflow_server) -> dict[str, str]:
    plugin = tmp_path / "plugin" / "orchestra_backend_under_test-0.dist-info"
    plugin.mkdir(parents=True)
    (plugin / "METADATA").write_text("Metadata-Version: 2.1\nName: orchestra-backend-under-test\nVersion: 0\n")
    (plugin / "entry_points.txt").write_text(
        "[mlflow.project_backend]\norchestra = orchestra.app.mlflow_backend.backend:OrchestraBackend\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(plugin.parent)]),
            "MLFLOW_TRACKING_URI": mlflow_server.url, "ORCHESTRA_BACKEND_PYTHON": sys.executable}


def mlflow_run(env, *args, timeout=600):
    return subprocess.run([str(require_venv() / "bin" / "mlflow"), "run", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def children_of(server, parent_id: str, experiment_id: str) -> dict[str, dict]:
    runs = server.api("runs/search", {"experiment_ids": [experiment_id], "max_results": 1000,
                                      "filter": f"tags.`mlflow.parentRunId` = '{parent_id}'"}).get("runs", [])
    return {tags(r)["orchestra.stage"]: r for r in runs}


def parent_id_of(output: str) -> str:
    found = re.search(r"as MLflow run ([0-9a-f]{32})", output)
    assert found, output
    return found.group(1)


def test_mlflow_run_with_orchestra_backend_runs_the_dag_then_loads_it(backend_env, mlflow_server, tmp_path):
    project = tmp_path / "quickstart"
    shutil.copytree(EXAMPLES / "quickstart", project)
    experiment = mlflow_server.api("experiments/create", {"name": "backend-quickstart"})["experiment_id"]
    first = mlflow_run(backend_env, str(project), "-b", "orchestra", "-P", "alpha=0.3",
                       "--experiment-id", experiment)
    assert first.returncode == 0, first.stderr
    parent = parent_id_of(first.stderr)
    run = mlflow_server.api("runs/get", run_id=parent)["run"]
    assert run["info"]["status"] == "FINISHED" and run["info"]["experiment_id"] == experiment
    assert tags(run)["mlflow.project.backend"] == "orchestra"
    stages = children_of(mlflow_server, parent, experiment)
    assert set(stages) == {"prepare", "features", "train", "evaluate"}
    assert all(s["info"]["status"] == "FINISHED" for s in stages.values())
    assert metrics(stages["evaluate"])  # the stages' metrics reached MLflow
    second = mlflow_run(backend_env, str(project), "-b", "orchestra", "-P", "alpha=0.3",
                        "--experiment-id", experiment)
    assert second.returncode == 0, second.stderr
    again = children_of(mlflow_server, parent_id_of(second.stderr), experiment)
    assert {tags(s).get("orchestra.loaded_from") is not None for s in again.values()} == {True}, \
        [tags(s) for s in again.values()]


def test_bad_param_and_unknown_stage_are_mlflow_execution_errors(backend_env, tmp_path):
    project = tmp_path / "quickstart"
    shutil.copytree(EXAMPLES / "quickstart", project)
    bad = mlflow_run(backend_env, str(project), "-b", "orchestra", "-P", "alpha=notanumber")
    assert bad.returncode != 0
    # mlflow's CLI prints an ExecutionException as "=== message ===" (no traceback)
    assert "=== orchestra: error: stage 'train': parameter 'alpha'" in bad.stderr and "Traceback" not in bad.stderr
    unknown = mlflow_run(backend_env, str(project), "-b", "orchestra", "-e", "nosuchstage")
    assert unknown.returncode != 0 and "=== orchestra: error:" in unknown.stderr and "nosuchstage" in unknown.stderr
    config = mlflow_run(backend_env, str(project), "-b", "orchestra", "--backend-config", '{"jobz": 2}')
    assert config.returncode != 0 and "=== orchestra: error: --backend-config: unknown key 'jobz'" in config.stderr


CANCEL = """
import json, sys, time
import mlflow.projects
submitted = mlflow.projects.run(sys.argv[1], backend="orchestra", synchronous=False, env_manager="local")
marker = sys.argv[2]
deadline = time.time() + 120
while not __import__("os").path.exists(marker) and time.time() < deadline:
    time.sleep(0.1)
status_before = submitted.get_status()
submitted.cancel()
print(json.dumps({"run_id": submitted.run_id, "before": status_before, "after": submitted.get_status()}))
"""


def test_async_run_then_cancel_kills_the_stages(backend_env, mlflow_server, make_project, tmp_path):
    marker = tmp_path / "started"
    pidfile = tmp_path / "sleeper.pid"
    root = make_project(f"""
        name: slow
        entry_points:
          main:
            command: "bash -c 'sleep 300 & echo $! > {pidfile}; touch {marker}; wait'"
        """)
    done = subprocess.run([str(require_venv() / "bin" / "python"), "-c", CANCEL, str(root), str(marker)],
                          env=backend_env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["before"] == "RUNNING" and result["after"] == "KILLED"
    sleeper = int(pidfile.read_text())
    deadline = time.time() + 60
    while time.time() < deadline and Path(f"/proc/{sleeper}").exists():
        time.sleep(0.1)
    assert not Path(f"/proc/{sleeper}").exists(), "the stage's process survived cancel()"
    parent = mlflow_server.api("runs/get", run_id=result["run_id"])["run"]
    experiment = parent["info"]["experiment_id"]
    deadline = time.time() + 60
    statuses: dict[str, str] = {}
    while time.time() < deadline:
        parent = mlflow_server.api("runs/get", run_id=result["run_id"])["run"]
        statuses = {"parent": parent["info"]["status"],
                    **{name: r["info"]["status"] for name, r in children_of(mlflow_server, result["run_id"], experiment).items()}}
        if statuses == {"parent": "KILLED", "main": "KILLED"}:
            break
        time.sleep(0.2)
    assert statuses == {"parent": "KILLED", "main": "KILLED"}
