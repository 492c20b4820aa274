"""``orchestra.stage.log_model`` writes a model directory the real ``mlflow.pyfunc.load_model``
loads and predicts with; ``orchestra.stage.load_model`` loads it back without mlflow.

The stage runs in the mlflow virtualenv's Python (scikit-learn is there) through a real
``orchestra run``; the stage code never imports mlflow (it checks). Nothing is mocked.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from orchestra import stage
from tests.mlflow_server import require_venv

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
