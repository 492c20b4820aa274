"""``orchestra.stage.log_model`` writes a model directory the real ``mlflow.pyfunc.load_model``
loads and predicts with; ``orchestra.stage.load_model`` loads it back without mlflow.

The stage runs in the mlflow virtualenv's Python (scikit-learn is there) through a real
``orchestra run``; the stage code never imports mlflow (it checks). Under the run's tracking
endpoint the model is also a logged model of the stage's run, and the mirror recreates it on a
real ``mlflow server`` (tests/mlflow_server.py). Nothing is mocked.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import requests

from orchestra import stage
from tests.mlflow_server import MlflowServer, free_port, mlflow_server, require_venv  # noqa: F401

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

FIT = """
import json, os, sys, tempfile
from sklearn.linear_model import LinearRegression
from orchestra import stage

class Shift:
    # defined in the script: cloudpickle stores it by value, so mlflow's process can load it
    def __init__(self, by):
        self.by = by
    def predict(self, rows):
        return [row[0] + self.by for row in rows]

X = [[1.0], [2.0], [3.0], [4.0]]
estimator = LinearRegression().fit(X, [2.1, 3.9, 6.2, 7.8])
sk_dir = stage.log_model(estimator, "sk_model")
py_dir = stage.log_model(Shift(10), "py_model", flavor="pyfunc")
weights = os.path.join(tempfile.mkdtemp(), "weights.json")  # a persisted model + its loader (mlflow_client)
with open(weights, "w") as handle:
    json.dump({"slope": 2.0}, handle)
js_dir = stage.log_model(weights, "js_model", flavor="pyfunc", loader_module="json_line_loader",
                         code_paths=["json_line_loader.py"])
queries = [[0.5], [5.0]]
with stage.managed_artifact("expected.json") as expected:
    expected.path.write_text(json.dumps({"sk": list(map(float, estimator.predict(queries))),
                                         "py": Shift(10).predict(queries), "js": [2.0 * q[0] for q in queries],
                                         "queries": queries}))
assert "mlflow" not in sys.modules, "log_model imported mlflow"
"""

LOADER = """
import json

class _Line:
    def __init__(self, slope):
        self.slope = slope
    def predict(self, rows, params=None):
        values = rows.iloc[:, 0].tolist() if hasattr(rows, "iloc") else [row[0] for row in rows]
        return [self.slope * v for v in values]

def _load_pyfunc(path):
    with open(path) as handle:
        return _Line(json.load(handle)["slope"])
"""

WITH_MLFLOW = """
import json, sys
import mlflow.pyfunc
out, queries = sys.argv[1], json.loads(sys.argv[2])
print(json.dumps({name: [float(v) for v in mlflow.pyfunc.load_model(f"{out}/{name}_model").predict(queries)]
                  for name in ("sk", "py", "js")}))
"""

WITHOUT_MLFLOW = """
import json, sys
from orchestra import stage
out, queries = sys.argv[1], json.loads(sys.argv[2])
found = {name: [float(v) for v in stage.load_model(f"{out}/{name}_model").predict(queries)] for name in ("sk", "py", "js")}
assert "mlflow" not in sys.modules
print(json.dumps(found))
"""


def test_log_model_loads_with_real_mlflow_and_without_it(cli, make_project, monkeypatch):
    python = require_venv() / "bin" / "python"
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    root = make_project(f'name: models\nentry_points:\n  main:\n    command: "{python} fit_model.py"\n',
                       {"fit_model.py": FIT, "json_line_loader.py": LOADER})
    result = cli("run", str(root), "--json")
    assert result.code == 0, result.err
    out = Path(json.loads(result.out)["stages"][0]["outputs_dir"])
    mlmodel = (out / "sk_model" / "MLmodel").read_text()
    assert "loader_module: \"mlflow.sklearn\"" in mlmodel and "serialization_format: \"cloudpickle\"" in mlmodel
    assert {p.name for p in (out / "sk_model").iterdir()} >= {"MLmodel", "model.pkl", "requirements.txt",
                                                               "python_env.yaml", "conda.yaml"}
    expected = json.loads((out / "expected.json").read_text())
    queries = json.dumps(expected.pop("queries"))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for script in (WITH_MLFLOW, WITHOUT_MLFLOW):
        done = subprocess.run([str(python), "-c", script, str(out), queries], env=env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        found = json.loads(done.stdout.strip().splitlines()[-1])
        assert found.keys() == expected.keys()
        for name, values in expected.items():
            assert found[name] == pytest.approx(values)
    # and in orchestra's own environment (no scikit-learn here): the pyfunc model
    assert stage.load_model(out / "py_model").predict([[1.0]]) == [11.0]


def test_log_model_refuses_an_unknown_flavor(tmp_path, monkeypatch):
    monkeypatch.setenv("ORCHESTRA_OUTPUT_DIR", str(tmp_path))
    with pytest.raises(ValueError, match="flavor 'keras'"):
        stage.log_model(object(), "m", flavor="keras")
    assert not (tmp_path / "m").exists()  # nothing published


REGISTERED = """
import sys
from orchestra import stage

class Shift:
    def __init__(self, by):
        self.by = by
    def predict(self, rows):
        return [row[0] + self.by for row in rows]

stage.log_model(Shift(3), "shift", flavor="pyfunc")
assert "mlflow" not in sys.modules
"""


def _registered_run(cli, make_project, monkeypatch, *args: str) -> tuple[dict, dict]:
    """Run a stage that logs one pyfunc model; its ``runs show`` record and its model entry."""
    python = require_venv() / "bin" / "python"
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    root = make_project(f'name: registered\nentry_points:\n  main:\n    command: "{python} fit_shift.py"\n',
                       {"fit_shift.py": REGISTERED})
    result = cli("run", str(root), "--json", *args, timeout=300)
    assert result.code == 0, result.err
    assert "not registered" not in result.err, result.err
    shown = cli("runs", "show", json.loads(result.out)["run_id"], "--json")
    assert shown.code == 0, shown.err
    record = json.loads(shown.out)
    main = record["stages"][0]
    models = [m for m in main["models"] if m["name"] == "shift"]
    assert len(models) == 1, main["models"]
    return record, models[0]


def test_log_model_registers_a_logged_model_of_the_stage_run(cli, make_project, monkeypatch):
    record, model = _registered_run(cli, make_project, monkeypatch)
    main = record["stages"][0]
    assert model["status"] == "LOGGED_MODEL_READY" and model["tags"]["orchestra.flavor"] == "pyfunc"
    files = {rel[len(model["files"]):] for rel in main["manifest"] if rel.startswith(model["files"])}
    assert {"MLmodel", "model.pkl", "requirements.txt", "python_env.yaml", "conda.yaml",
            "code/_orchestra_pyfunc_loader.py"} <= files
    out = Path(main["outputs_dir"])
    for rel in files:  # the registered files are the model directory's files
        assert (out / model["files"] / rel).read_bytes() == (out / "shift" / rel).read_bytes()


def test_log_model_appears_on_the_tracking_server(cli, make_project, monkeypatch, mlflow_server: MlflowServer):
    monkeypatch.setenv("ORCHESTRA_MLFLOW_TIMEOUT", "60")
    experiment = f"stage-model-{os.getpid()}-{free_port()}"
    record, _ = _registered_run(cli, make_project, monkeypatch, "--tracking-uri", mlflow_server.url,
                                "--experiment", experiment)
    _, children = mlflow_server.runs_of(record["run_id"], experiment)
    child = children["main"]
    found = mlflow_server.api("logged-models/search", {"experiment_ids": [mlflow_server.experiment_id(experiment)]})
    remote = [m for m in found.get("models", []) if m["info"].get("source_run_id") == child["info"]["run_id"]]
    assert [m["info"]["name"] for m in remote] == ["shift"]
    assert remote[0]["info"]["status"] == "LOGGED_MODEL_READY"
    root = remote[0]["info"]["artifact_uri"].removeprefix("mlflow-artifacts:/").strip("/")
    mlmodel = requests.get(f"{mlflow_server.url}/api/2.0/mlflow-artifacts/artifacts/{root}/MLmodel", timeout=10)
    assert mlmodel.ok and "_orchestra_pyfunc_loader" in mlmodel.text


def test_a_failed_registration_warns_and_keeps_the_model(tmp_path, monkeypatch, capsys):
    """The tracking variables point at a closed port: log_model still returns the directory."""
    monkeypatch.setenv("ORCHESTRA_OUTPUT_DIR", str(tmp_path))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "secret-token-value")
    monkeypatch.setenv("MLFLOW_RUN_ID", "r1")
    folder = stage.log_model({"a": 1}, "m", flavor="pyfunc")
    assert (folder / "MLmodel").is_file()
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "'m' is in the outputs but was not registered" in err
    assert "secret-token-value" not in err
