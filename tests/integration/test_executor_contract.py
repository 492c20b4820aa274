"""One contract for every executor: the same tests against the local pool, Dask on shared paths,
and Dask with an s3:// artifact store (moto). Executors are driven directly with StageTasks,
as the engine drives them."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import pytest

from orchestra.execution.executors.base import StageTask, TaskOutcome
from tests.integration.test_kill import alive, wait_for

KINDS = ["local", "dask", "dask-s3"]


@pytest.fixture(params=KINDS)
def executor(request, tmp_path, monkeypatch):
    if request.param == "local":
        from orchestra.execution.executors.local import LocalExecutor

        ex = LocalExecutor(2, pgid_file=tmp_path / "pgids")
    else:
        from tests.integration.daskcluster import cluster

        c = cluster()
        from orchestra.execution.executors.dask import DaskExecutor

        store = None
        if request.param == "dask-s3":
            for key, value in c.s3_env(f"contract-{uuid.uuid4().hex}").items():
                monkeypatch.setenv(key, value)
            store = os.environ["ORCHESTRA_ARTIFACTS"]
        ex = DaskExecutor(c.address, store_url=store)
    yield ex
    ex.cancel()
    while ex.wait_any(30):
        pass
    ex.close()


class Tasks:
    """Builds StageTasks the way RunDriver does: paths under a run dir, ORCHESTRA_* variables."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.project = root / "project"
        self.project.mkdir()
        (self.project / "data.txt").write_text("project file\n")
        self.run_id = uuid.uuid4().hex

    def make(self, stage: str, command: str, *, attempt: int = 1, timeout: float | None = None,
             declared: tuple[str, ...] = (), inputs: dict[str, tuple[str, dict]] | None = None) -> StageTask:
        sdir = self.root / "runs" / stage
        staging = sdir / f".staging-{attempt}"
        overlay = {"ORCHESTRA_RUN_ID": self.run_id, "ORCHESTRA_STAGE": stage, "ORCHESTRA_OUTPUT_DIR": str(staging),
                   "ORCHESTRA_ATTEMPT": str(attempt), "ORCHESTRA_METRICS_FILE": str(sdir / "tracking.jsonl")}
        inputs = inputs or {}
        for name, (path, _manifest) in inputs.items():
            overlay[f"ORCHESTRA_INPUT_{name.upper()}"] = path
        command = command.replace("OUT", str(staging))
        for name, (path, _manifest) in inputs.items():
            command = command.replace(f"IN_{name}", path)
        return StageTask(
            run_id=self.run_id, stage=stage, attempt=attempt, command=command, cwd=str(self.project),
            env={**os.environ, **overlay}, log_dir=str(sdir / "logs"), staging_dir=str(staging),
            outputs_dir=str(sdir / "out"), metrics_file=str(sdir / "tracking.jsonl"), declared_outputs=declared,
            timeout=timeout, overlay_env=overlay, input_dirs={n: p for n, (p, _m) in inputs.items()},
            input_manifests={n: m for n, (_p, m) in inputs.items()},
        )


@pytest.fixture
def tasks(tmp_path):
    return Tasks(tmp_path)


def one(executor, timeout: float = 60) -> TaskOutcome:
    outcomes = []
    deadline = time.monotonic() + timeout
    while not outcomes and time.monotonic() < deadline:
        outcomes = executor.wait_any(deadline - time.monotonic())
    assert len(outcomes) == 1, outcomes
    return outcomes[0]


def test_success_publishes_outputs_and_logs(executor, tasks):
    task = tasks.make("make", "echo hi > OUT/a.txt; mkdir OUT/sub; echo x > OUT/sub/b; cat data.txt; echo to-err >&2;"
                              " pwd > OUT/cwd")
    executor.submit(task)
    outcome = one(executor)
    assert (outcome.stage, outcome.attempt, outcome.status, outcome.exit_code) == ("make", 1, "ok", 0), outcome
    assert set(outcome.manifest) == {"a.txt", "sub/b", "cwd"}
    ran_in = Path((Path(task.outputs_dir) / "cwd").read_text().strip())
    # Through a store, the worker runs in its own copy of the project, never the driver's.
    assert (ran_in == tasks.project) == (getattr(executor, "store", None) is None)
    assert outcome.manifest_digest.startswith("sha256:")
    out = Path(task.outputs_dir)
    assert (out / "a.txt").read_text() == "hi\n" and (out / "sub" / "b").read_text() == "x\n"
    assert (Path(task.log_dir) / "stdout.log").read_text() == "project file\n"  # ran in the project
    assert "to-err" in (Path(task.log_dir) / "stderr.log").read_text()
    assert not Path(task.staging_dir).exists()


def test_inputs_reach_the_next_stage(executor, tasks):
    first = tasks.make("up", "printf 'payload' > OUT/p.bin")
    executor.submit(first)
    made = one(executor)
    assert made.status == "ok"
    second = tasks.make("down", "cat IN_up/p.bin > OUT/copy; test \"$ORCHESTRA_INPUT_UP\" = IN_up",
                        inputs={"up": (first.outputs_dir, dict(made.manifest))})
    executor.submit(second)
    outcome = one(executor)
    assert outcome.status == "ok", (outcome, (Path(second.log_dir) / "stderr.log").read_text())
    assert (Path(second.outputs_dir) / "copy").read_text() == "payload"


def test_failure_reports_exit_code_and_stderr_tail(executor, tasks):
    executor.submit(tasks.make("bad", "echo boom >&2; exit 3"))
    outcome = one(executor)
    assert (outcome.status, outcome.exit_code) == ("failed", 3)
    assert "boom" in outcome.last_stderr and outcome.manifest is None
    assert "exited with code 3" in outcome.message


def test_timeout_kills_the_stage(executor, tasks):
    executor.submit(tasks.make("late", "sleep 30", timeout=0.5))
    outcome = one(executor)
    assert outcome.status == "timeout" and "timed out after 0.5s" in outcome.message


def test_metrics_and_missing_declared_output(executor, tasks):
    metric = json.dumps({"type": "metric", "key": "loss", "value": 0.25, "step": 1})
    executor.submit(tasks.make("m", f"echo '{metric}' >> $ORCHESTRA_METRICS_FILE; echo ok > OUT/present",
                               declared=("present", "absent")))
    outcome = one(executor)
    assert outcome.status == "failed" and "declared output 'absent' was not written" in outcome.message
    assert [(k, v, s) for k, v, s, _ts in outcome.metrics] == [("loss", 0.25, 1)]


def test_wait_any_is_first_completed_and_cancel_kills_the_group(executor, tasks, tmp_path):
    pidfile = tmp_path / "child.pid"
    executor.submit(tasks.make("slow", f"sleep 300 & echo $! > {pidfile}; wait"))
    executor.submit(tasks.make("fast", "true"))
    assert one(executor).stage == "fast"
    wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), what="slow stage's child")
    child = int(pidfile.read_text())
    assert alive(child)
    executor.cancel()
    outcome = one(executor)
    assert (outcome.stage, outcome.status) == ("slow", "killed")
    wait_for(lambda: not alive(child), timeout=15, what="the cancelled stage's group to die")
    assert executor.wait_any(0.2) == []
