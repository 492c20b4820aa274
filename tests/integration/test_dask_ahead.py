"""Stages submitted ahead of their parent's end on a real loopback Dask cluster.

When the driver knows a chain's next stage will run (not load) whatever its parent produces, it
submits it with its parent's future as a dependency: Dask starts it the moment the parent ends.
These tests hold a parent inside its command (until the test writes a release file) and look at
the scheduler's tasks meanwhile: the child's task is there before its parent ended. Then: the
child got its parent's outputs, the store recorded the child's start after its parent's end, a
failed parent never let the child's command run, a retried parent's child ran once, after the
attempt that succeeded, and a killed run left no stage process and ran no child.

The private cluster's workers use the tests' ORCHESTRA_HOME (as workers on the driver's machine do
by default): with shared paths they publish outputs themselves, which submitting ahead needs.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

DEADLINE_S = 60


@pytest.fixture(scope="module")
def shared_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("shared-home")


@pytest.fixture(scope="module")
def ahead_cluster(shared_home: Path):
    from tests.integration.daskcluster import private_cluster

    with private_cluster((("one", None), ("two", None)), home=shared_home) as c:
        c.wait_ready_n(2)
        yield c


@pytest.fixture
def home(shared_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The driver uses the workers' ORCHESTRA_HOME."""
    from orchestra.store import db

    monkeypatch.setenv("ORCHESTRA_HOME", str(shared_home))
    db.reset_connections()
    yield shared_home
    db.reset_connections()


def _held(marker: Path, release: Path, then: str = "true") -> str:
    """A command that says it started, waits for the test's release file, then runs ``then``."""
    return (f"touch {marker}; n=0; while [ ! -e {release} ] && [ $n -lt 2400 ]; do sleep 0.05; n=$((n+1)); done; "
            f"{then}")


def _scheduler_keys(address: str) -> dict[str, str]:
    from distributed import Client

    with Client(address, timeout=10, set_as_default=False) as client:
        return client.run_on_scheduler(
            lambda dask_scheduler: {str(k): ts.state for k, ts in dask_scheduler.tasks.items()})


def _wait_for(predicate, what: str, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the run ended before {what}: {proc.communicate()}")
        time.sleep(0.1)
    raise AssertionError(f"not within {DEADLINE_S} s: {what}")


def _start(root: Path, address: str, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "orchestra", "run", str(root), "--executor",
                             "dask://" + address.removeprefix("tcp://"), "--json", "-q", *extra],
                            env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def _ahead_of(address: str, child: str) -> str:
    """The state of ``child``'s task on the scheduler, once it is there."""
    return _wait_for(lambda: next((state for key, state in _scheduler_keys(address).items()
                                   if key.startswith(f"orchestra-{child}-")), None), f"{child}'s task on the scheduler")


def _released_after_b_is_ahead(root: Path, address: str, marker: Path, release: Path, *,
                               env: dict[str, str] | None = None, timeout: float = 120) -> tuple[subprocess.Popen, str, str]:
    """Run ``root``, whose stage a holds until ``release``; release it once b's task waits on the
    scheduler, and return the finished process with its stdout and stderr."""
    proc = _start(root, address, env=env)
    try:
        _wait_for(marker.exists, "a started", proc)
        _ahead_of(address, "b")
    finally:
        release.touch()
    out, err = proc.communicate(timeout=timeout)
    return proc, out, err


def _records(home: Path, run_id: str) -> dict[str, sqlite3.Row]:
    conn = sqlite3.connect(home / "runs.sqlite")
    conn.row_factory = sqlite3.Row
    try:
        return {row["name"]: row for row in conn.execute("SELECT * FROM stages WHERE run_id = ?", (run_id,))}
    finally:
        conn.close()


@pytest.mark.parametrize("store", [False, True], ids=["shared-paths", "file-store"])
def test_a_chained_child_is_submitted_before_its_parent_ends(make_project, ahead_cluster, home, tmp_path, store):
    marker, release = tmp_path / "a-started", tmp_path / "release"
    root = make_project(f"""
        entry_points:
          a:
            command: "{_held(marker, release, 'echo from-a > {outputs}/a.txt')}"
          b:
            depends_on: [a]
            command: "cat {{inputs.a}}/a.txt > {{outputs}}/b.txt; echo \\"$ORCHESTRA_STEP_BASE\\" > {{outputs}}/base.txt"
          c:
            depends_on: [b]
            command: "cat {{inputs.b}}/b.txt {{inputs.a}}/a.txt > {{outputs}}/c.txt"
    """)
    env = {"ORCHESTRA_ARTIFACTS": f"file://{tmp_path / 'store'}"} if store else {}
    proc = _start(root, ahead_cluster.address, env=env)
    try:
        _wait_for(marker.exists, "a started", proc)
        # a is held in its command: b (and c behind it) already wait on the scheduler.
        assert _ahead_of(ahead_cluster.address, "b") in ("waiting", "processing", "no-worker", "queued")
        _ahead_of(ahead_cluster.address, "c")
    finally:
        release.touch()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    record = json.loads(out)
    stages = {s["name"]: s for s in record["stages"]}
    assert {n: s["status"] for n, s in stages.items()} == {"a": "FINISHED", "b": "FINISHED", "c": "FINISHED"}
    outputs = {n: Path(s["outputs_dir"]) for n, s in stages.items()}
    assert (outputs["c"] / "c.txt").read_text() == "from-a\nfrom-a\n"
    rows = _records(home, record["run_id"])
    # Recorded in order: a child's start never before its parent's end.
    assert rows["a"]["end_time"] <= rows["b"]["start_time"] <= rows["b"]["end_time"] <= rows["c"]["start_time"]
    # The step base the worker computed from a's outcome is the one of b's recorded key.
    from orchestra.planning import fingerprint

    components = json.loads(rows["b"]["components"])
    assert components["upstream"] == {"a": rows["a"]["manifest_digest"]}
    assert (outputs["b"] / "base.txt").read_text().strip() == fingerprint.step_base(components)


def test_a_failing_parent_never_runs_the_child_submitted_ahead(make_project, ahead_cluster, home, tmp_path):
    marker, release, ran = tmp_path / "a-started", tmp_path / "release", tmp_path / "b-ran"
    root = make_project(f"""
        entry_points:
          a:
            command: "{_held(marker, release, 'exit 3')}"
          b:
            depends_on: [a]
            command: "touch {ran}"
    """)
    proc, out, err = _released_after_b_is_ahead(root, ahead_cluster.address, marker, release)
    assert proc.returncode != 0
    stages = {s["name"]: s for s in json.loads(out)["stages"]}
    assert stages["a"]["status"] == "FAILED"
    assert stages["b"]["status"] == "SKIPPED" and "upstream a failed" in stages["b"]["message"]
    assert stages["b"]["start_time"] is None
    time.sleep(1)  # the task submitted ahead has ended on its worker by now; it must not have run
    assert not ran.exists()


def test_a_retried_parent_runs_its_child_once_after_the_attempt_that_succeeded(make_project, ahead_cluster, home,
                                                                              tmp_path):
    counter, marker = tmp_path / "a-attempts", tmp_path / "a-started"
    release, runs = tmp_path / "release", tmp_path / "b-runs"
    first_fails = f"echo x >> {counter}; [ $(wc -l < {counter}) -ge 2 ] || exit 1; echo ok > {{outputs}}/a.txt"
    root = make_project(f"""
        entry_points:
          a:
            retries: 1
            command: "{_held(marker, release, first_fails)}"
          b:
            depends_on: [a]
            command: "echo run >> {runs}; cat {{inputs.a}}/a.txt > {{outputs}}/b.txt"
    """)
    proc, out, err = _released_after_b_is_ahead(root, ahead_cluster.address, marker, release)
    assert proc.returncode == 0, err
    stages = {s["name"]: s for s in json.loads(out)["stages"]}
    assert stages["a"]["attempts"] == 2 and stages["b"]["status"] == "FINISHED"
    assert runs.read_text() == "run\n"
    assert (Path(stages["b"]["outputs_dir"]) / "b.txt").read_text() == "ok\n"


def test_a_killed_run_leaves_no_stage_process_and_runs_no_child(make_project, ahead_cluster, home, tmp_path):
    proc, pid, ran = _held_parent_with_child_ahead(make_project, ahead_cluster, tmp_path)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    stages = {s["name"]: s for s in json.loads(out)["stages"]}
    assert stages["a"]["status"] == "KILLED" and stages["b"]["status"] == "KILLED"
    assert stages["b"]["start_time"] is None
    _no_stage_process_left(ahead_cluster, pid, ran)


LOGS_AN_ARTIFACT = """
import os, tempfile, mlflow
note = os.path.join(tempfile.mkdtemp(), "where.txt")
open(note, "w").write("endpoint")
mlflow.log_artifact(note)
"""


def test_a_child_ahead_of_a_parent_whose_outputs_grew_on_the_driver_is_submitted_again(make_project, ahead_cluster,
                                                                                      home, tmp_path):
    """With an artifact store, what the parent logged through the driver's tracking endpoint joins
    its outputs on the driver, after the worker sent its manifest: the child submitted ahead with
    that manifest is taken back and submitted again, and reads the artifact."""
    from tests.mlflow_server import require_venv

    marker, release = tmp_path / "a-started", tmp_path / "release"
    root = make_project(f"""
        entry_points:
          a:
            command: "{_held(marker, release, '$ORCHESTRA_TEST_MLFLOW_VENV/bin/python logs.py')}"
          b:
            depends_on: [a]
            command: "cat {{inputs.a}}/mlflow-artifacts/where.txt > {{outputs}}/b.txt"
    """, {"logs.py": LOGS_AN_ARTIFACT})
    env = {"ORCHESTRA_TEST_MLFLOW_VENV": str(require_venv()), "ORCHESTRA_ARTIFACTS": f"file://{tmp_path / 'store'}"}
    proc, out, err = _released_after_b_is_ahead(root, ahead_cluster.address, marker, release, env=env, timeout=300)
    assert proc.returncode == 0, (err, out)
    stages = {s["name"]: s for s in json.loads(out)["stages"]}
    assert (Path(stages["b"]["outputs_dir"]) / "b.txt").read_text() == "endpoint"


def test_a_driver_killed_with_sigkill_leaves_no_stage_process_and_runs_no_child(make_project, ahead_cluster, home,
                                                                                tmp_path):
    """The scheduler forgets a lost client's tasks: the running parent's group is killed by its
    worker's supervisor, and the child waiting ahead never starts."""
    proc, pid, ran = _held_parent_with_child_ahead(make_project, ahead_cluster, tmp_path)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    _no_stage_process_left(ahead_cluster, pid, ran)


def _held_parent_with_child_ahead(make_project, ahead_cluster, tmp_path):
    """A run whose stage ``a`` sleeps (its pid written) while ``b`` waits ahead of it on the cluster."""
    pidfile, ran = tmp_path / "a-pid", tmp_path / "b-ran"
    root = make_project(f"""
        entry_points:
          a:
            command: "echo $$ > {pidfile}.tmp && mv {pidfile}.tmp {pidfile}; sleep 120; echo x > {{outputs}}/a.txt"
          b:
            depends_on: [a]
            command: "touch {ran}"
    """)
    proc = _start(root, ahead_cluster.address)
    _wait_for(pidfile.exists, "a started", proc)
    _ahead_of(ahead_cluster.address, "b")
    return proc, int(pidfile.read_text()), ran


def _no_stage_process_left(ahead_cluster, pid: int, ran: Path) -> None:
    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    _wait_for(gone, "a's process killed")
    _wait_for(lambda: not any(k.startswith("orchestra-") for k in _scheduler_keys(ahead_cluster.address)),
              "no orchestra task left on the scheduler")
    assert not ran.exists()
