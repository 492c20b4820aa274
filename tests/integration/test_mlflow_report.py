"""A mirrored run's self-contained HTML report lands on its parent MLflow run as
``orchestra/report.html`` (real ``mlflow server``, real CLI); a run that mirrors nothing writes none."""

from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.mlflow_server import MlflowServer, mlflow_env, mlflow_server  # noqa: F401

pytestmark = pytest.mark.integration

PIPELINE = """
name: reported
entry_points:
  prep_rows:
    command: "echo prepared"
  train_model:
    depends_on: [prep_rows]
    command: "echo trained"
"""


@pytest.fixture(autouse=True)
def _patient_sync_calls(monkeypatch):
    monkeypatch.setenv("ORCHESTRA_MLFLOW_TIMEOUT", "60")


def test_report_uploaded_to_the_parent_run(make_project, mlflow_server: MlflowServer, mlflow_env) -> None:
    project = make_project(PIPELINE, {})
    experiment = f"exp-{uuid.uuid4().hex[:8]}"
    result = run_cli("run", str(project), "--tracking-uri", mlflow_server.url, "--experiment", experiment,
                     "--env-manager", "local", "--json", env=mlflow_env, timeout=240)
    assert result.code == 0, result.err
    run_id = json.loads(result.out)["run_id"]
    parent, children = mlflow_server.runs_of(run_id, experiment)
    assert set(children) == {"prep_rows", "train_model"}

    listed = mlflow_server.api("artifacts/list", run_id=parent["info"]["run_id"], path="orchestra")
    assert "orchestra/report.html" in [f["path"] for f in listed.get("files", [])]
    html = mlflow_server.artifact(parent, "orchestra/report.html")
    assert html.status_code == 200
    text = html.text
    assert text.startswith("<!doctype html>") and 'id="orchestra-report"' in text
    assert "prep_rows" in text and "train_model" in text and run_id in text
    assert '"FINISHED"' in text  # written after the run ended
    assert not re.search(r"<script[^>]+src=[\"']https?://|<link[^>]+href=[\"']https?://", text)


def test_no_report_without_a_tracking_server(make_project) -> None:
    project = make_project(PIPELINE, {})
    result = run_cli("run", str(project), "--env-manager", "local", "--json", timeout=120)
    assert result.code == 0, result.err
    run_dir = Path(os.environ["ORCHESTRA_HOME"]) / "runs" / json.loads(result.out)["run_id"]
    assert run_dir.is_dir() and not (run_dir / "report.html").exists()
