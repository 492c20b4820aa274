"""orchestra.stage's helpers in stage code's own process: log_vars (mlflowhelper's README
example), persistent_dict across real processes, managed artifacts outside a step."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestra import stage

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def tracking(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "tracking.jsonl"
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setenv("ORCHESTRA_METRICS_FILE", str(path))
    monkeypatch.setenv("ORCHESTRA_OUTPUT_DIR", str(out))
    for var in ("ORCHESTRA_RUN_ID", "ORCHESTRA_STAGE", "ORCHESTRA_STEP_BASE"):
        monkeypatch.delenv(var, raising=False)
    return path


def params(path: Path) -> dict[str, str]:
    items = [json.loads(line) for line in path.read_text().splitlines()]
    return {item["key"]: item["value"] for item in items if item["type"] == "param"}


def test_log_vars_readme_example(tracking):
    # mlflowhelper's README: main("a", "b", something_else=6) logs param1, param2, param3 and
    # something_else; verbose is excluded.
    def main(param1, param2, param3="defaultvalue", verbose=0, *args, **kwargs):
        some_variable = "x"  # locals are not arguments: not logged
        return stage.log_vars(exclude=["verbose"])

    logged = main("a", "b", something_else=6)
    assert logged == {"param1": "a", "param2": "b", "param3": "defaultvalue", "something_else": 6}
    assert params(tracking) == {"param1": "a", "param2": "b", "param3": "defaultvalue", "something_else": "6"}


def test_log_vars_varargs_keyword_only_and_prefix(tracking):
    def fit(rate, *layers, seed=1, **extra):
        return stage.log_vars(prefix="fit.")

    assert fit(0.1, 32, 16, seed=7, note="n") == {
        "fit.rate": 0.1, "fit.seed": 7, "fit.note": "n", "fit.vararg_0": 32, "fit.vararg_1": 16}
    assert params(tracking)["fit.vararg_1"] == "16"


def test_managed_artifact_publishes_only_on_a_clean_exit(tracking):
    out = Path(os.environ["ORCHESTRA_OUTPUT_DIR"])
    with stage.managed_artifact("plots/plot.txt") as artifact:
        assert not artifact.path.is_relative_to(out / "plots")  # a private place while writing
        artifact.path.write_text("plot")
    assert (out / "plots" / "plot.txt").read_text() == "plot" and artifact.path == out / "plots" / "plot.txt"
    with pytest.raises(RuntimeError):
        with stage.managed_artifact_dir("broken") as folder:
            folder.get_path("a/b.txt").write_text("half")
            raise RuntimeError("boom")
    assert not (out / "broken").exists()
    assert sorted(p.name for p in out.iterdir()) == ["plots"]  # no scratch left behind
    with pytest.raises(ValueError):
        stage.managed_artifact("../escape.txt")


COUNTER = """
import sys
from orchestra import stage
store = stage.persistent_dict("counters")
for _ in range(int(sys.argv[1])):
    with store.locked():
        store["n"] = store.get("n", 0) + 1
    store.increment("m")
"""


def test_persistent_dict_two_processes_lose_no_update(tmp_path, orchestra_home, monkeypatch):
    env = {**os.environ, "PYTHONPATH": str(REPO), "ORCHESTRA_PROJECT_KEY": "proj1"}
    procs = [subprocess.Popen([sys.executable, "-c", COUNTER, "150"], env=env, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    for proc in procs:
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
    monkeypatch.setenv("ORCHESTRA_PROJECT_KEY", "proj1")
    store = stage.persistent_dict("counters")
    assert store["n"] == 300 and store["m"] == 300
    store["best"] = {"score": 0.9, "run": "abc"}
    again = stage.persistent_dict("counters")
    assert again["best"] == {"score": 0.9, "run": "abc"} and sorted(again) == ["best", "m", "n"]
    del again["best"]
    assert "best" not in store and len(store) == 2
    assert len(stage.persistent_dict("other")) == 0  # one dict per name
    with pytest.raises(TypeError):
        store["bad"] = object()  # JSON values only; nothing is written
    assert "bad" not in store
    monkeypatch.setenv("ORCHESTRA_PROJECT_KEY", "proj2")
    assert len(stage.persistent_dict("counters")) == 0  # one store per project
