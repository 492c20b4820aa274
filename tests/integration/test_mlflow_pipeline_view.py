"""What a mirrored pipeline looks like on a real ``mlflow server``: params as the text given on
parent and child, `<stage>.<metric>` on the parent, rejections said once, loaded stages with their
metrics. Real server, real mlflow client inside the stage, real CLI."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.mlflow_server import MlflowServer, metrics, mlflow_env, mlflow_server, params  # noqa: F401

pytestmark = pytest.mark.integration

LONG = "k" * 300  # MLflow refuses metric keys over 250 characters

PIPELINE = """
name: view
entry_points:
  prep:
    parameters:
      rows: {type: int, default: 3}
    command: "python prep.py {rows}"
  train:
    depends_on: [prep]
    parameters:
      alpha: {type: float, default: 0.5}
    command: "python train.py {alpha}"
"""

FILES = {
    # orchestra's own metrics file: a metric, and the param with other text than was given.
    "prep.py": f"""
        import json, os, sys
        with open(os.environ["ORCHESTRA_METRICS_FILE"], "a") as f:
            f.write(json.dumps({{"type": "metric", "key": "rows", "value": int(sys.argv[1]), "step": 0}}) + "\\n")
            f.write(json.dumps({{"type": "metric", "key": "{LONG}", "value": 1, "step": 0}}) + "\\n")
    """,
    # The real mlflow client, straight into the stage's child run, plus orchestra's metrics file.
    "train.py": """
        import json, os, sys
        import mlflow
        alpha = float(sys.argv[1])
        with mlflow.start_run():
            for step in range(3):
                mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        with open(os.environ["ORCHESTRA_METRICS_FILE"], "a") as f:
            f.write(json.dumps({"type": "metric", "key": "score", "value": alpha * 2, "step": 0}) + "\\n")
            f.write(json.dumps({"type": "param", "key": "alpha", "value": str(alpha)}) + "\\n")
    """,
}


@pytest.fixture(autouse=True)
def _patient_sync_calls(monkeypatch):
    monkeypatch.setenv("ORCHESTRA_MLFLOW_TIMEOUT", "60")  # a loaded CI machine: child runs may take seconds


def _run(project: Path, server: MlflowServer, experiment: str, env: dict[str, str], *extra: str):
    result = run_cli("run", str(project), "--tracking-uri", server.url, "--experiment", experiment,
                     "--env-manager", "local", "--json", *extra, env=env, timeout=240)
    assert result.code == 0, result.err
    return result, json.loads(result.out)


def test_pipeline_view_on_the_server(make_project, mlflow_server: MlflowServer, mlflow_env) -> None:
    project = make_project(PIPELINE, FILES)
    experiment = f"exp-{uuid.uuid4().hex[:8]}"
    first, record = _run(project, mlflow_server, experiment, mlflow_env, "-P", "alpha=5")
    parent, children = mlflow_server.runs_of(record["run_id"], experiment)
    train = children["train"]

    # Params are the text given: "5" on the parent and on the child (declared before the stage ran).
    assert params(parent)["alpha"] == "5" and params(train) == {"alpha": "5"}
    # Every refusal is said once, with its key and value; the rest of that batch landed.
    warnings = [line for line in first.err.splitlines() if line.startswith("orchestra: warning: MLflow rejected")]
    conflict = [w for w in warnings if "param alpha=5.0" in w]
    assert len(conflict) == 1 and train["info"]["run_id"] in conflict[0] and "stage train" in conflict[0], first.err
    assert sum(f"metric {LONG}=" in w for w in warnings) == 1  # the prep child's
    assert sum(f"metric prep.{LONG}=" in w for w in warnings) == 1  # the parent's copy
    assert metrics(children["prep"])["rows"] == 3 and metrics(train)["score"] == 10.0
    assert metrics(train)["loss"] == pytest.approx(1 / 3)

    # Pipeline metrics: each stage's last values as <stage>.<metric>, locally and on the parent.
    assert record["metrics"]["prep.rows"] == 3 and record["metrics"]["train.score"] == 10.0
    assert metrics(parent)["prep.rows"] == 3 and metrics(parent)["train.score"] == 10.0
    listed = json.loads(run_cli("runs", "list", "--json").out)
    assert listed[0]["metrics"]["train.score"] == 10.0
    shown = run_cli("runs", "show", record["run_id"])
    assert "metrics: " in shown.out and "train.score=10" in shown.out

    # Refused operations are not retried: a sync sends nothing and says nothing more.
    sync = run_cli("runs", "sync", record["run_id"], "--tracking-uri", mlflow_server.url)
    assert sync.code == 0 and "0 operation(s) sent" in sync.out and "MLflow rejected" not in sync.err

    # Run again: both stages load; their children carry the metrics, also those the stage's own
    # mlflow client logged straight to the server, and the parent the pipeline metrics.
    again, record2 = _run(project, mlflow_server, experiment, mlflow_env, "-P", "alpha=5")
    assert [s["status"] for s in record2["stages"]] == ["LOADED", "LOADED"], again.err
    parent2, children2 = mlflow_server.runs_of(record2["run_id"], experiment)
    assert metrics(children2["prep"])["rows"] == 3
    assert metrics(children2["train"])["score"] == 10.0
    assert metrics(children2["train"])["loss"] == pytest.approx(1 / 3)
    assert params(children2["train"])["alpha"] == "5" and params(parent2)["alpha"] == "5"
    assert metrics(parent2)["train.score"] == 10.0 and record2["metrics"]["prep.rows"] == 3


def test_mlflow_tutorial_alpha_is_the_same_on_parent_and_child(mlflow_server: MlflowServer, mlflow_env) -> None:
    """mlflow/mlflow-example's shape: train.py logs float(alpha) itself; ``-P alpha=5`` must read
    ``5`` on the parent and on the child, and the refusal of the stage's ``5.0`` is said once."""
    project = Path(__file__).resolve().parents[2] / "example_projects" / "mlflow_tutorial"
    experiment = f"exp-{uuid.uuid4().hex[:8]}"
    result = run_cli("run", str(project), "--tracking-uri", mlflow_server.url, "--experiment", experiment,
                     "--env-manager", "local", "--json", "-P", "alpha=5", env=mlflow_env, timeout=240)
    assert result.code == 0, result.err
    record = json.loads(result.out)
    parent, children = mlflow_server.runs_of(record["run_id"], experiment)
    assert params(parent)["alpha"] == params(children["main"])["alpha"] == "5"
    assert result.err.count("MLflow rejected param alpha=5.0") == 1
