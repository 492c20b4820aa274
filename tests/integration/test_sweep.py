"""Parameter sweeps: members are normal runs on one pool; stages shared by members run once.

Real CLI processes, the real quickstart project, the run store read back through the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest

from orchestra.core.layout import SCHEMAS_DIR

QUICKSTART = Path(__file__).resolve().parents[2] / "example_projects" / "quickstart"


@pytest.fixture
def quickstart(tmp_path):
    root = tmp_path / "quickstart"
    shutil.copytree(QUICKSTART, root)
    return root


def _records(cli, *args):
    return json.loads(cli("runs", "list", "--json", *args).out)


def test_quickstart_sweep_runs_shared_stages_once(cli, quickstart):
    done = cli("run", str(quickstart), "--env-manager", "local", "-P", "epochs=50", "-j", "2",
               "--sweep", "alpha=0.1,0.5,1.0", "--sort", "evaluate.rmse")
    assert done.code == 0, done.err
    first = done.err.splitlines()[0]
    assert first.startswith("orchestra: sweep ") and first.endswith(": 3 member(s)")
    sweep_id = first.split()[2].rstrip(":")
    members = _records(cli, "--sweep", sweep_id)
    assert len(members) == 3 and len(_records(cli)) == 3
    by_stage = {name: [next(s for s in m["stages"] if s["name"] == name) for m in members]
                for name in ("prepare", "features", "train", "evaluate")}
    for shared in ("prepare", "features"):  # once in total; the others loaded that run's outputs
        statuses = sorted(s["status"] for s in by_stage[shared])
        assert statuses == ["FINISHED", "LOADED", "LOADED"], (shared, statuses)
        owner = next(m["run_id"] for m, s in zip(members, by_stage[shared]) if s["status"] == "FINISHED")
        assert {s["loaded_from"]["run_id"] for s in by_stage[shared] if s["status"] == "LOADED"} == {owner}
    for own in ("train", "evaluate"):  # once per member
        assert [s["status"] for s in by_stage[own]] == ["FINISHED"] * 3
    assert {m["params"]["alpha"] for m in members} == {"0.1", "0.5", "1.0"}
    assert all(m["tags"]["orchestra.sweep"] == sweep_id for m in members)
    assert {json.loads(m["tags"]["orchestra.sweep.values"])["alpha"] for m in members} == {"0.1", "0.5", "1.0"}
    # the table, sorted by the metric, with the best named
    lines = done.out.splitlines()
    assert lines[0].split() == ["run_id", "alpha", "status", "evaluate.mae", "evaluate.rmse", "best"]
    rmse = {m["run_id"][:8]: m["metrics"]["evaluate.rmse"] for m in members}
    order = [line.split()[0] for line in lines[1:4]]
    assert order == sorted(rmse, key=rmse.__getitem__)
    assert lines[1].split()[-1] == "*" and f"best by evaluate.rmse: run " in lines[-1]
    shown = json.loads(cli("sweeps", "show", sweep_id, "--sort=-evaluate.rmse", "--json").out)
    jsonschema.validate(shown, json.loads((SCHEMAS_DIR / "sweep.schema.json").read_text()))
    assert [m["run_id"][:8] for m in shown["members"]] == order[::-1]
    assert shown["best"].startswith(order[-1]) and shown["counts"] == {"FINISHED": 3} and shown["size"] == 3
    listed = cli("sweeps", "list")
    assert listed.code == 0 and sweep_id in listed.out and "3 member(s): 3 finished" in listed.out


def test_sweep_ranges_files_and_json(cli, quickstart, tmp_path):
    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text("- {epochs: 10}\n- {epochs: 20}\n")
    done = cli("run", str(quickstart), "--env-manager", "local", "--sweep-file", str(sweep_file),
               "--sweep", "alpha=0:1:0.5", "--json", "--sort=-evaluate.rmse")
    assert done.code == 0, done.err
    table = json.loads(done.out)
    jsonschema.validate(table, json.loads((SCHEMAS_DIR / "sweep.schema.json").read_text()))
    assert sorted((m["values"]["epochs"], m["values"]["alpha"]) for m in table["members"]) == [
        ("10", "0"), ("10", "0.5"), ("10", "1"), ("20", "0"), ("20", "0.5"), ("20", "1")]
    values = [m["metrics"]["evaluate.rmse"] for m in table["members"]]
    assert values == sorted(values, reverse=True)
    members = _records(cli, "--sweep", table["sweep_id"])
    prepares = [next(s for s in m["stages"] if s["name"] == "prepare")["status"] for m in members]
    assert prepares.count("FINISHED") == 1


@pytest.mark.parametrize("args, message", [
    (["--sweep", "alpha=0.1,abc"], "abc"),
    (["--sweep", "alpha=0:1:0"], "STEP > 0"),
    (["--sweep", "alpha=0:2000:1"], "--yes"),
    (["--sweep", "alpha=1,2", "-P", "alpha=3"], "also fixed"),
    (["--sweep", "nope=1,2"], "nope"),
    (["--sweep", "alpha=1,2", "--sort", "rmse"], "STAGE.METRIC"),
    (["--sweep-file", "missing.yaml"], "cannot read sweep file"),
])
def test_bad_sweeps_are_exit_2_before_anything_runs(cli, quickstart, args, message):
    bad = cli("run", str(quickstart), "--env-manager", "local", *args)
    assert bad.code == 2, bad.err
    assert message in bad.err and "Traceback" not in bad.err
    assert _records(cli) == []


def test_a_bad_sweep_file_names_the_item(cli, quickstart, tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text("- {alpha: 0.1}\n- [1, 2]\n")
    bad = cli("run", str(quickstart), "--sweep-file", str(path))
    assert bad.code == 2 and "[1]" in bad.err and len(bad.err.strip().splitlines()) <= 2


FLAKY = """
    name: flaky
    entry_points:
      base: {command: "python -c \\"print('base')\\""}
      work:
        depends_on: [base]
        parameters: {x: {type: int, default: 1}}
        command: "python work.py {x}"
"""
WORK = {"work.py": """
    import sys, time
    x = int(sys.argv[1])
    if x == 2:
        sys.exit("two is bad")
    time.sleep(0.5 if x > 2 else 0)
"""}


def test_a_failing_member_does_not_stop_the_others_unless_fail_fast(cli, make_project):
    root = make_project(FLAKY, WORK)
    done = cli("run", str(root), "--env-manager", "local", "--sweep", "x=1,2,3,4", "-j", "2")
    assert done.code == 1
    sweep_id = done.err.splitlines()[0].split()[2].rstrip(":")
    statuses = {m["params"]["x"]: m["status"] for m in _records(cli, "--sweep", sweep_id)}
    assert statuses == {"1": "FINISHED", "2": "FAILED", "3": "FINISHED", "4": "FINISHED"}
    fast = cli("run", str(root), "--env-manager", "local", "--sweep", "x=2,3,5,6,7,8,9,10,11,12", "-j", "1",
               "--fail-fast")
    assert fast.code != 0 and "--fail-fast" in fast.err
    sweep_id = fast.err.splitlines()[0].split()[2].rstrip(":")
    statuses = [m["status"] for m in _records(cli, "--sweep", sweep_id)]
    assert "FAILED" in statuses and statuses.count("FINISHED") < 9


def test_sweep_started_and_ended_webhooks(cli, quickstart, tmp_path):
    from tests.hooks_receiver import Receiver

    schema = json.loads((SCHEMAS_DIR / "webhook-event.schema.json").read_text())
    with Receiver() as receiver:
        hooks = tmp_path / "hooks.json"
        hooks.write_text(json.dumps({"sweep_started": [{"url": receiver.url}], "sweep_ended": [{"url": receiver.url}]}))
        done = cli("run", str(quickstart), "--env-manager", "local", "--hooks", str(hooks), "-q",
                   "--sweep", "alpha=0.1,0.5", "--sort", "evaluate.rmse")
        assert done.code == 0, done.err
        got = receiver.wait_for(2, timeout=60)
    bodies = [request.json for request in got]
    for body in bodies:
        jsonschema.validate(body, schema)
    assert [b["event"] for b in bodies] == ["sweep_started", "sweep_ended"]
    sweep_id = done.err.splitlines()[0].split()[2].rstrip(":")
    started, ended = (b["payload"]["sweep"] for b in bodies)
    assert started == {"id": sweep_id, "size": 2}
    assert ended["counts"] == {"FINISHED": 2} and ended["sort"] == "evaluate.rmse" and bodies[1]["status"] == "success"
    assert ended["best"] == json.loads(cli("sweeps", "show", sweep_id, "--sort", "evaluate.rmse", "--json").out)["best"]


def test_a_failed_member_resumes_alone(cli, make_project):
    root = make_project(FLAKY, WORK)
    done = cli("run", str(root), "--env-manager", "local", "--sweep", "x=1,2")
    assert done.code == 1 and "to resume a member: orchestra runs resume " in done.out
    failed = done.out.split("to resume a member: orchestra runs resume ")[1].split()[0]
    printed = cli("runs", "resume", failed, "--print").out.strip()
    assert "--sweep" not in printed and printed.endswith(f"-P x=2 --load-from {failed}")
    again = cli("runs", "resume", failed)
    assert again.code == 1 and "two is bad" in again.err  # x=2 fails again, alone, its base stage loaded
    record = json.loads(cli("runs", "list", "--json", "--limit", "1").out)[0]
    assert record["params"]["x"] == "2" and record["stages"][0]["status"] == "LOADED"
    assert "orchestra.sweep" not in record["tags"]


DIAMOND = """
    name: diamond
    entry_points:
      a: {command: "python -c \\"import time; time.sleep(0.3)\\""}
      b: {command: "python -c \\"import time; time.sleep(0.3)\\""}
      c:
        depends_on: [a, b]
        parameters: {x: {type: int, default: 1}}
        command: "python -c \\"print({x})\\""
"""


def test_one_slot_for_many_members_with_parallel_shared_stages(cli, make_project):
    """-j 1: a member decides b while a holds the only slot, then decides it again later (still
    its own); every other member waits for a and b and loads them. Nothing hangs."""
    root = make_project(DIAMOND, {})
    done = cli("run", str(root), "--env-manager", "local", "--sweep", "x=1:6:1", "-j", "1", timeout=180)
    assert done.code == 0, done.err
    sweep_id = done.err.splitlines()[0].split()[2].rstrip(":")
    members = _records(cli, "--sweep", sweep_id)
    assert len(members) == 6
    for name in ("a", "b"):
        statuses = [next(s for s in m["stages"] if s["name"] == name)["status"] for m in members]
        assert statuses.count("FINISHED") == 1 and statuses.count("LOADED") == 5, (name, statuses)
    assert all(next(s for s in m["stages"] if s["name"] == "c")["status"] == "FINISHED" for m in members)


SLOW = """
    name: slow
    entry_points:
      base: {command: "python -c \\"print('base')\\""}
      work:
        depends_on: [base]
        parameters: {x: {type: int, default: 1}}
        command: "python work.py {x}"
"""
SLOW_WORK = {"work.py": """
    import os, sys, time, pathlib
    pathlib.Path(os.environ["STARTED_DIR"], sys.argv[1]).write_text(str(os.getpid()))
    time.sleep(120)
"""}


def test_interrupting_a_sweep_kills_every_member(make_project, tmp_path):
    """SIGINT to orchestra: running members are killed, members whose attempts wait in the shared
    pool end KILLED without running, the exit code is 130 and no stage process is left."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import run_cli

    root = make_project(SLOW, SLOW_WORK)
    started = tmp_path / "started"
    started.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "orchestra", "run", str(root), "--env-manager", "local",
                             "--sweep", "x=1:5:1", "-j", "2"], env={**os.environ, "STARTED_DIR": str(started)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(list(started.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(list(started.iterdir())) == 2  # two slots: two members' work stages run, three wait
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    records = json.loads(run_cli("runs", "list", "--json").out)  # a member never started has no run
    assert len(records) >= 2 and {r["status"] for r in records} == {"KILLED"}, [r["status"] for r in records]
    assert f"{len(records)} killed" in out
    for pid_file in started.iterdir():
        pid = int(pid_file.read_text())
        assert not os.path.exists(f"/proc/{pid}") or "zombie" in open(f"/proc/{pid}/status").read().lower()
