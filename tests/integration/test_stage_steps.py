"""Steps inside one entry point: ``orchestra.stage.managed_artifact_dir(..., step="load_data")``.

One script, one stage: an expensive ``load_data`` step (it appends to a counter file outside the
project, so the test sees when it really ran), then a cheap part that uses ``alpha``. Real
``orchestra run`` processes, a real object store; nothing is mocked.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

MLPROJECT = """
name: steps
entry_points:
  main:
    parameters:
      alpha: {type: float, default: 0.5}
    command: "python one_script.py {alpha}"
"""

SCRIPT = """
import json, os, pathlib, sys, time
from orchestra import stage

alpha = float(sys.argv[1])
probe = pathlib.Path(os.environ["STEP_PROBE"])
with stage.managed_artifact_dir("data", step="load_data") as data:
    with probe.open("a") as handle:
        handle.write(json.dumps({"path": str(data.path), "loaded": data.loaded, "alpha": alpha,
                                 "dir_mode": data.path.stat().st_mode & 0o777}) + "\\n")
    barrier = os.environ.get("STEP_BARRIER")
    if barrier:  # wait until every parallel run is inside its step (generous deadline)
        deadline = time.time() + 60
        while len(probe.read_text().splitlines()) < int(barrier) and time.time() < deadline:
            time.sleep(0.05)
    if not data.loaded:
        with open(os.environ["STEP_COUNTER"], "a") as counter:
            counter.write("load_data\\n")
        data.get_path("rows.csv").write_text("1\\n2\\n3\\n")
        data.get_path("nested/more.txt").write_text("more")
        if os.environ.get("STEP_FAIL"):
            raise SystemExit("failing inside the step")
    rows = [int(x) for x in data.get_path("rows.csv").read_text().split()]
with stage.managed_artifact("result.txt") as result:
    result.path.write_text(str(sum(rows) * alpha))
stage.log_metric("score", sum(rows) * alpha)
"""


@pytest.fixture
def steps_project(make_project, tmp_path, monkeypatch):
    counter, probe = tmp_path / "counter.txt", tmp_path / "probe.jsonl"
    counter.touch()
    probe.touch()
    monkeypatch.setenv("STEP_COUNTER", str(counter))
    monkeypatch.setenv("STEP_PROBE", str(probe))
    return make_project(MLPROJECT, {"one_script.py": SCRIPT}), counter, probe


def computed(counter: Path) -> int:
    return len(counter.read_text().split())


def run(cli, root, *args, code=0):
    result = cli("run", str(root), "--json", *args)
    assert result.code == code, result.err
    return json.loads(result.out) if result.out.strip() else None


def probes(probe: Path) -> list[dict]:
    return [json.loads(line) for line in probe.read_text().splitlines()]


def stage_of(record) -> dict:
    return record["stages"][0]


def test_second_run_with_another_param_loads_the_step(cli, steps_project, orchestra_home):
    root, counter, probe = steps_project
    first = run(cli, root, "-P", "alpha=0.5")
    assert computed(counter) == 1
    first_out = Path(stage_of(first)["outputs_dir"])
    assert (first_out / "data" / "rows.csv").read_text() == "1\n2\n3\n"
    assert (first_out / "result.txt").read_text() == "3.0"
    assert stage_of(first)["tags"]["orchestra.steps"] == "load_data"
    before = {p.relative_to(first_out).as_posix(): p.read_bytes() for p in first_out.rglob("*") if p.is_file()}
    planned = cli("plan", str(root), "-P", "alpha=2")
    assert f"step load_data (data) may load from run {first['run_id'][:8]}" in planned.out, planned.out
    assert "may load" not in cli("plan", str(root), "-P", "alpha=2", "--no-cache").out

    second = run(cli, root, "-P", "alpha=2")
    assert computed(counter) == 1  # the step was loaded, not computed
    stage = stage_of(second)
    assert stage["status"] == "FINISHED"  # the stage itself ran: its param changed
    assert stage["tags"]["orchestra.loaded_steps"] == "load_data"
    assert stage["tags"]["orchestra.step.load_data.loaded_from"] == f"{first['run_id']}/main"
    out = Path(stage["outputs_dir"])
    assert (out / "result.txt").read_text() == "12.0"
    assert (out / "data" / "nested" / "more.txt").read_text() == "more"  # loaded steps are outputs too
    loaded = probes(probe)[-1]
    assert loaded["loaded"] is True and loaded["dir_mode"] == 0o555  # a read-only copy
    after = {p.relative_to(first_out).as_posix(): p.read_bytes() for p in first_out.rglob("*") if p.is_file()}
    assert after == before  # the first run's copy is untouched
    assert not any(first_out.glob(".orchestra-tmp*")) and not any(out.glob(".orchestra-tmp*"))
    shown = cli("runs", "show", second["run_id"])
    assert "loaded steps: load_data" in shown.out


def test_load_steps_from_a_run_whose_key_differs(cli, steps_project):
    root, counter, probe = steps_project
    first = run(cli, root)
    # Changing the code changes every step key: the next run computes the step again ...
    (root / "one_script.py").write_text(SCRIPT + "\n# edited\n")
    run(cli, root, "-P", "alpha=1")
    assert computed(counter) == 2
    (root / "one_script.py").write_text(SCRIPT + "\n# edited again\n")
    # ... unless the user trusts an earlier run's step, as mlflowhelper's set_load did.
    planned = cli("plan", str(root), "-P", "alpha=3", "--load-from", first["run_id"], "--load-steps", "load_data")
    assert f"step load_data (data) loads from run {first['run_id'][:8]} (--load-steps)" in planned.out, planned.out
    third = run(cli, root, "-P", "alpha=3", "--load-from", first["run_id"], "--load-steps", "load_data")
    assert computed(counter) == 2
    assert stage_of(third)["tags"]["orchestra.step.load_data.loaded_from"] == f"{first['run_id']}/main"
    assert probes(probe)[-1]["loaded"] is True


def test_no_cache_and_force_compute_the_step(cli, steps_project):
    root, counter, _ = steps_project
    run(cli, root)
    run(cli, root, "-P", "alpha=1", "--no-cache")
    assert computed(counter) == 2
    run(cli, root, "-P", "alpha=1.5", "--force", "main")
    assert computed(counter) == 3
    run(cli, root, "-P", "alpha=1.75")
    assert computed(counter) == 3


def test_a_failing_step_publishes_nothing(cli, steps_project, orchestra_home, monkeypatch):
    root, counter, _ = steps_project
    monkeypatch.setenv("STEP_FAIL", "1")
    run(cli, root, code=1)
    assert not (orchestra_home / "steps").exists() or not any((orchestra_home / "steps").rglob("*.json"))
    monkeypatch.delenv("STEP_FAIL")
    run(cli, root)
    assert computed(counter) == 2  # nothing from the failed attempt was loadable


def test_parallel_runs_never_share_a_temporary_path(steps_project, monkeypatch):
    root, counter, probe = steps_project
    monkeypatch.setenv("STEP_BARRIER", "2")
    procs = [subprocess.Popen([sys.executable, "-m", "orchestra", "run", str(root), "-q", "-P", f"alpha={a}"],
                              env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for a in (1, 2)]
    for proc in procs:
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
    seen = probes(probe)
    assert len(seen) == 2 and seen[0]["path"] != seen[1]["path"]
    assert computed(counter) == 2  # both computed: neither had published when the other started
    assert all(not p["loaded"] for p in seen)


def test_example_project_reuses_its_load_data_step(cli, tmp_path):
    from tests.conftest import EXAMPLES

    root = tmp_path / "one_script"
    shutil.copytree(EXAMPLES / "one_script", root)
    first = run(cli, root, "-P", "alpha=0.1")
    second = run(cli, root, "-P", "alpha=0.5")
    assert stage_of(second)["tags"]["orchestra.step.load_data.loaded_from"] == f"{first['run_id']}/main"
    assert stage_of(second)["params"] == {"alpha": "0.5", "rows": "200", "seed": "7"}  # log_vars
    third = run(cli, root, "-P", "alpha=0.5", "-P", "rows=50")  # rows is in the step's key=
    assert "orchestra.loaded_steps" not in stage_of(third)["tags"]
    assert (Path(stage_of(third)["outputs_dir"]) / "model" / "MLmodel").exists()


def test_gc_of_the_run_removes_its_step_records(cli, steps_project, orchestra_home):
    root, counter, _ = steps_project
    run(cli, root)
    assert any((orchestra_home / "steps").rglob("*.json"))
    assert cli("gc", "--keep-last", "0").code == 0
    assert not any((orchestra_home / "steps").rglob("*.json"))
    run(cli, root, "-P", "alpha=3")
    assert computed(counter) == 2


def test_a_corrupt_step_object_is_a_miss_not_a_wrong_answer(cli, steps_project, orchestra_home):
    root, counter, probe = steps_project
    run(cli, root)
    record = json.loads(next((orchestra_home / "steps" / "by-key").rglob("*.json")).read_text())
    sha = record["files"]["data/rows.csv"]["sha256"]
    obj = orchestra_home / "objects" / sha[:2] / sha[2:]
    obj.chmod(0o644)
    obj.write_text("9\n9\n9\n")  # same size, other bytes
    result = cli("run", str(root), "--json", "-P", "alpha=2")
    assert result.code == 0, result.err
    assert "cannot load" in result.err and "sha256" in result.err
    assert computed(counter) == 2 and probes(probe)[-1]["loaded"] is False
    out = Path(stage_of(json.loads(result.out))["outputs_dir"])
    assert (out / "result.txt").read_text() == "12.0"
    assert (out / "data" / "rows.csv").read_text() == "1\n2\n3\n"  # the corrupt object was not reused
    assert run(cli, root, "-P", "alpha=3") and computed(counter) == 2  # and the new step loads
