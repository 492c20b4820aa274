"""The local pool's stages submitted ahead of their parent's end (``LocalExecutor.submit_after``):
held until the parent ended OK, then started by the thread that ran it, with the parent's
manifest as their inputs' and their step base computed from its digest. Real processes, real
MLprojects, real runs; nothing is mocked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestra.execution.executors.base import TaskOutcome
from orchestra.execution.executors.local import LocalExecutor
from orchestra.planning import fingerprint
from tests.integration.test_executor_contract import Tasks, one
from tests.integration.test_kill import wait_for

pytestmark = pytest.mark.integration

PARTS = {"entry_point": "b", "code": "c0de", "env": "local", "upstream": {"a": None}}


def _all(executor: LocalExecutor, n: int, timeout: float = 60) -> list[TaskOutcome]:
    outcomes: list[TaskOutcome] = []
    deadline = time.monotonic() + timeout
    while len(outcomes) < n and time.monotonic() < deadline:
        outcomes += executor.wait_any(deadline - time.monotonic())
    return outcomes


@pytest.fixture
def pool(tmp_path):
    executor = LocalExecutor(2, pgid_file=tmp_path / "pgids")
    yield executor
    executor.cancel()
    while executor.wait_any(1):
        pass
    executor.close()


def test_a_held_stage_runs_after_its_parent_with_its_manifest_and_step_base(pool, tmp_path):
    tasks = Tasks(tmp_path, {
        "a": {"command": "sleep 0.3; echo from-a > {outputs}/x.txt"},
        "b": {"command": "cat {inputs.a}/x.txt > {outputs}/y.txt; echo $ORCHESTRA_STEP_BASE > {outputs}/base.txt",
              "depends_on": ["a"]}})
    pool.submit(tasks.make("a"))
    pool.submit_after(tasks.make("b"), ("a",), PARTS)
    outcomes = _all(pool, 2)
    assert [(o.stage, o.status) for o in outcomes] == [("a", "ok"), ("b", "ok")]  # the parent's outcome first
    a, b = outcomes
    assert b.start_time >= a.end_time
    out = tasks.layout.outputs_dir("b")
    assert (out / "y.txt").read_text() == "from-a\n"
    expected = fingerprint.step_base({**PARTS, "upstream": {"a": a.manifest_digest}})
    assert (out / "base.txt").read_text().strip() == expected
    assert pool.pending == 0


def test_a_held_stage_checks_its_inputs_against_the_parents_manifest(pool, tmp_path):
    """Its inputs' manifests come from the parent's outcome: writing through an input's hardlink
    fails the held stage, as it fails a stage submitted after its parent's end."""
    tasks = Tasks(tmp_path, {
        "a": {"command": "echo from-a > {outputs}/x.txt"},
        "b": {"command": "echo tampered > {inputs.a}/x.txt; echo b > {outputs}/y.txt", "depends_on": ["a"]}})
    pool.submit(tasks.make("a"))
    pool.submit_after(tasks.make("b"), ("a",), None)
    a, b = _all(pool, 2)
    assert a.status == "ok"
    assert b.status == "failed" and "input a/x.txt was modified while the stage ran" in (b.message or "")
    assert not tasks.layout.outputs_dir("b").exists()  # nothing published from damaged inputs


def test_a_held_stage_whose_parent_failed_never_runs_and_is_withdrawn(pool, tmp_path):
    marker = tmp_path / "b-ran"
    tasks = Tasks(tmp_path, {"a": {"command": "exit 3"}, "b": {"command": f"touch {marker}", "depends_on": ["a"]}})
    pool.submit(tasks.make("a"))
    pool.submit_after(tasks.make("b"), ("a",), None)
    assert (one(pool).stage, pool.pending) == ("a", 1)
    assert pool.wait_any(0.5) == []  # held: it never starts
    assert (tasks.layout.stage_dir("b") / "logs").is_dir()  # made while it was held
    pool.withdraw("b")
    assert pool.pending == 0 and pool.wait_any(0.2) == [] and not marker.exists()
    assert not tasks.layout.stage_dir("b").exists()  # the directories of an attempt that never ran


def test_a_cancel_ends_held_stages_as_killed_without_running_them(pool, tmp_path):
    marker = tmp_path / "b-ran"
    tasks = Tasks(tmp_path, {"a": {"command": "sleep 300"},
                             "b": {"command": f"touch {marker}", "depends_on": ["a"]}})
    pool.submit(tasks.make("a"))
    pool.submit_after(tasks.make("b"), ("a",), None)
    wait_for(lambda: pool.registry.pids(), what="the parent's process")
    pool.cancel()
    outcomes = _all(pool, 2)
    assert sorted((o.stage, o.status) for o in outcomes) == [("a", "killed"), ("b", "killed")]
    assert pool.pending == 0 and not marker.exists() and not tasks.layout.stage_dir("b").exists()


def test_a_stage_held_for_a_parent_that_already_ended_starts_at_once(pool, tmp_path):
    """The engine may submit a stage ahead of a parent whose outcome is queued but not yet read."""
    tasks = Tasks(tmp_path, {"a": {"command": "echo a > {outputs}/x.txt"},
                             "b": {"command": "cat {inputs.a}/x.txt > {outputs}/y.txt", "depends_on": ["a"]}})
    pool.submit(tasks.make("a"))
    wait_for(lambda: tasks.layout.outputs_dir("a").exists() and not pool.registry.pids(), what="a's end")
    time.sleep(0.2)
    pool.submit_after(tasks.make("b"), ("a",), None)
    assert [(o.stage, o.status) for o in _all(pool, 2)] == [("a", "ok"), ("b", "ok")]


def _chain(root: Path, n: int) -> Path:
    root.mkdir()
    lines = ["name: chain", "entry_points:", "  s0:", "    command: \"echo s0 > {outputs}/me.txt\""]
    for i in range(1, n):
        lines += [f"  s{i}:", f"    command: \"cat {{inputs.s{i - 1}}}/me.txt > {{outputs}}/me.txt && "
                              f"echo $ORCHESTRA_STEP_BASE > {{outputs}}/base.txt\"", f"    depends_on: [s{i - 1}]"]
    (root / "MLproject").write_text("\n".join(lines) + "\n")
    return root


def test_a_cold_chain_goes_ahead_and_keeps_its_records_in_order(tmp_path):
    """A cold chain run with the local pool: every stage's start is recorded after its parent's
    end, its outputs are its parent's plus its own, and the step base a stage started ahead was
    given is the one its recorded key components give."""
    project = _chain(tmp_path / "proj", 8)
    env = {**os.environ, "ORCHESTRA_HOME": str(tmp_path / "home")}

    def cli(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "orchestra", *args], env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    cli("run", str(project), "-e", "s7", "-j", "2", "-q")
    run_id = json.loads(cli("runs", "list", "--json"))[0]["run_id"]
    stages = {stage["name"]: stage for stage in json.loads(cli("runs", "show", run_id, "--json"))["stages"]}
    for i in range(1, 8):
        me, parent = stages[f"s{i}"], stages[f"s{i - 1}"]
        assert me["status"] == parent["status"] == "FINISHED"
        assert me["start_time"] >= parent["end_time"]
        out = Path(me["outputs_dir"])
        assert (out / "me.txt").read_text() == "s0\n"
        base = (out / "base.txt").read_text().strip()
        assert base and base == fingerprint.step_base(me["components"])


def test_the_published_objects_tokens_are_recorded_before_the_outcome_is_handed_on(pool, tmp_path):
    """The pool records the stat tokens of what a stage published (its parent's too, when a held
    child started first) before the driver gets the outcome: a later check of the files reads
    them instead of hashing."""
    from orchestra.core.digest import stat_token
    from orchestra.store import artifacts
    from orchestra.store import runs as runstore

    tasks = Tasks(tmp_path, {"a": {"command": "echo from-a > {outputs}/x.txt"},
                             "b": {"command": "cat {inputs.a}/x.txt > {outputs}/y.txt; echo b >> {outputs}/y.txt",
                                   "depends_on": ["a"]}})
    pool.submit(tasks.make("a"))
    pool.submit_after(tasks.make("b"), ("a",), None)
    outcomes = []
    deadline = time.monotonic() + 60
    while len(outcomes) < 2 and time.monotonic() < deadline:
        for outcome in pool.wait_any(deadline - time.monotonic()):
            sha = outcome.manifest[next(iter(outcome.manifest))]["sha256"]  # as the driver would read it now
            outcomes.append((outcome.stage, runstore.object_stats([sha]).get(sha),
                             stat_token(os.stat(artifacts.object_file(sha)))))
    assert [stage for stage, _r, _t in outcomes] == ["a", "b"]
    assert all(recorded == token for _s, recorded, token in outcomes)
