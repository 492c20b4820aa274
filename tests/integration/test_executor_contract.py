"""One contract for every executor: the same tests against the local pool, Dask on shared paths,
and Dask with an s3:// artifact store (moto). Executors are driven directly with the StageTasks
``execution.task.build_task`` makes of a real MLproject, as the engine drives them."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any, Mapping

import pytest

from orchestra.core.layout import RunLayout
from orchestra.core.records import Metric
from orchestra.execution.executors.base import StageTask, TaskOutcome
from orchestra.execution.task import TaskContext, build_task
from orchestra.mlproject import graph as graphmod
from orchestra.mlproject import params as paramsmod
from orchestra.mlproject.load import load
from tests.integration.test_kill import alive, wait_for

pytestmark = pytest.mark.integration

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
    """StageTasks as a run builds them: a real MLproject (``entry_points`` as written there,
    file order) loaded, its parameters resolved, every task made by ``build_task`` with paths
    under the run's RunLayout. Each stage's inputs are its ancestors' outputs directories."""

    def __init__(self, root: Path, entry_points: Mapping[str, Mapping[str, Any]]) -> None:
        project = root / "project"
        project.mkdir()
        (project / "data.txt").write_text("project file\n")
        # JSON is YAML: commands keep their quotes and braces as written.
        (project / "MLproject").write_text(json.dumps({"name": "contract", "entry_points": entry_points}, indent=1))
        self.spec = load(project)
        self.project = self.spec.root
        self.graph = graphmod.build(self.spec)
        self.run_id = uuid.uuid4().hex
        self.layout = RunLayout(root / "runs" / self.run_id)
        self.context = TaskContext(run_id=self.run_id, layout=self.layout, project_dir=self.project,
                                   base_env={**os.environ, "ORCHESTRA_RUN_ID": self.run_id, "PYTHONUNBUFFERED": "1"})

    def make(self, stage: str, *, attempt: int = 1,
             manifests: Mapping[str, Mapping[str, Any]] | None = None) -> StageTask:
        """The task of ``stage``'s attempt; ``manifests``: the published upstream outputs."""
        spec = self.graph.stages[stage]
        params = paramsmod.resolve(spec, (), cwd=self.project, project_root=self.project, allow_extras=False)
        inputs = {parent: str(self.layout.outputs_dir(parent)) for parent in self.graph.ancestors(stage)}
        return build_task(self.context, spec, attempt, params=params, env_spec=self.spec.env_for(spec),
                          inputs=inputs, input_manifests=manifests or {})


@pytest.fixture
def project(tmp_path):
    """``project(entry_points)``: the Tasks of a project with those entry points."""
    return lambda entry_points: Tasks(tmp_path, entry_points)


def one(executor, timeout: float = 60) -> TaskOutcome:
    outcomes = []
    deadline = time.monotonic() + timeout
    while not outcomes and time.monotonic() < deadline:
        outcomes = executor.wait_any(deadline - time.monotonic())
    assert len(outcomes) == 1, outcomes
    return outcomes[0]


def test_success_publishes_outputs_and_logs(executor, project):
    tasks = project({"make": {"command": "echo hi > {outputs}/a.txt; mkdir {outputs}/sub; echo x > {outputs}/sub/b;"
                                         " cat data.txt; echo to-err >&2; pwd > {outputs}/cwd"}})
    task = tasks.make("make")
    executor.submit(task)
    outcome = one(executor)
    assert (outcome.stage, outcome.attempt, outcome.status, outcome.exit_code) == ("make", 1, "ok", 0), outcome
    assert set(outcome.manifest) == {"a.txt", "sub/b", "cwd"}
    ran_in = Path((Path(task.outputs_dir) / "cwd").read_text().strip())
    # Through a store, the worker runs in its own copy of the project, never the driver's.
    assert (ran_in == tasks.project) == (getattr(executor, "store", None) is None)
    assert outcome.manifest_digest.startswith("sha256:")
    out = Path(task.outputs_dir)
    assert out == tasks.layout.outputs_dir("make")
    assert (out / "a.txt").read_text() == "hi\n" and (out / "sub" / "b").read_text() == "x\n"
    assert (Path(task.log_dir) / "stdout.log").read_text() == "project file\n"  # ran in the project
    assert "to-err" in (Path(task.log_dir) / "stderr.log").read_text()
    assert not Path(task.staging_dir).exists()


def test_inputs_reach_the_next_stage(executor, project):
    tasks = project({
        "up": {"command": "printf 'payload' > {outputs}/p.bin"},
        "down": {"depends_on": ["up"],
                 "command": 'cat {inputs.up}/p.bin > {outputs}/copy; test "$ORCHESTRA_INPUT_UP" = {inputs.up}'},
    })
    first = tasks.make("up")
    executor.submit(first)
    made = one(executor)
    assert made.status == "ok"
    second = tasks.make("down", manifests={"up": dict(made.manifest)})
    assert second.input_dirs == {"up": first.outputs_dir}
    executor.submit(second)
    outcome = one(executor)
    assert outcome.status == "ok", (outcome, (Path(second.log_dir) / "stderr.log").read_text())
    assert (Path(second.outputs_dir) / "copy").read_text() == "payload"


def test_failure_reports_exit_code_and_stderr_tail(executor, project):
    executor.submit(project({"bad": {"command": "echo boom >&2; exit 3"}}).make("bad"))
    outcome = one(executor)
    assert (outcome.status, outcome.exit_code) == ("failed", 3)
    assert "boom" in outcome.last_stderr and outcome.manifest is None
    assert "exited with code 3" in outcome.message


def test_timeout_kills_the_stage(executor, project):
    executor.submit(project({"late": {"command": "sleep 30", "timeout": 0.5}}).make("late"))
    outcome = one(executor)
    assert outcome.status == "timeout" and "timed out after 0.5s" in outcome.message


def test_metrics_and_missing_declared_output(executor, project):
    metric = json.dumps({"type": "metric", "key": "loss", "value": 0.25, "step": 1})
    template = metric.replace("{", "{{").replace("}", "}}")  # literal braces in a command template
    tasks = project({"m": {"command": f"echo '{template}' >> $ORCHESTRA_METRICS_FILE; echo ok > {{outputs}}/present",
                           "outputs": ["present", "absent"]}})
    executor.submit(tasks.make("m"))
    outcome = one(executor)
    assert outcome.status == "failed" and "declared output 'absent' was not written" in outcome.message
    assert all(isinstance(m, Metric) for m in outcome.metrics)
    assert [(m.key, m.value, m.step) for m in outcome.metrics] == [("loss", 0.25, 1)]


def test_wait_any_is_first_completed_and_cancel_kills_the_group(executor, project, tmp_path):
    pidfile = tmp_path / "child.pid"
    tasks = project({"slow": {"command": f"sleep 300 & echo $! > {pidfile}; wait"}, "fast": {"command": "true"}})
    executor.submit(tasks.make("slow"))
    executor.submit(tasks.make("fast"))
    assert one(executor).stage == "fast"
    wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), what="slow stage's child")
    child = int(pidfile.read_text())
    assert alive(child)
    executor.cancel()
    outcome = one(executor)
    assert (outcome.stage, outcome.status) == ("slow", "killed")
    wait_for(lambda: not alive(child), timeout=60, what="the cancelled stage's group to die")
    assert executor.wait_any(0.2) == []


def test_local_pool_runs_jobs_at_once_and_cancel_ends_queued_attempts(project, tmp_path):
    """Past its ``jobs`` slots the local pool queues attempts; a cancel ends the queued ones as
    killed without running their commands, and every submitted attempt is answered once."""
    from orchestra.execution.executors.local import LocalExecutor

    executor = LocalExecutor(1, pgid_file=tmp_path / "pgids")
    marker = tmp_path / "queued-ran"
    tasks = project({"slow": {"command": "sleep 300"}, "queued": {"command": f"touch {marker}"}})
    try:
        executor.submit(tasks.make("slow"))
        executor.submit(tasks.make("queued"))
        assert executor.pending == 2
        wait_for(lambda: executor.registry.pids(), what="the slow stage's process")  # (its slot is taken)
        executor.cancel()
        outcomes: list[TaskOutcome] = []
        deadline = time.monotonic() + 60
        while len(outcomes) < 2 and time.monotonic() < deadline:
            outcomes += executor.wait_any(deadline - time.monotonic())
        assert sorted((o.stage, o.status) for o in outcomes) == [("queued", "killed"), ("slow", "killed")]
        assert not marker.exists() and executor.pending == 0 and executor.wait_any(0.2) == []
    finally:
        executor.close()


def test_local_pool_runs_two_at_once_after_an_earlier_attempt(project, tmp_path):
    """Two slots run two attempts at once, also when the first slot's thread has just finished
    an attempt (it is idle, and only one attempt can go to it): each waits for the other's file."""
    from orchestra.execution.executors.local import LocalExecutor

    a, b = tmp_path / "a", tmp_path / "b"
    meet = "touch {mine}; n=0; while [ ! -e {other} ] && [ $n -lt 3000 ]; do sleep 0.01; n=$((n+1)); done; test -e {other}"
    tasks = project({"first": {"command": "true"},
                     "left": {"command": meet.format(mine=a, other=b)},
                     "right": {"command": meet.format(mine=b, other=a)}})
    executor = LocalExecutor(2, pgid_file=tmp_path / "pgids")
    try:
        executor.submit(tasks.make("first"))
        assert one(executor).status == "ok"
        executor.submit(tasks.make("left"))
        executor.submit(tasks.make("right"))
        outcomes: list[TaskOutcome] = []
        deadline = time.monotonic() + 90
        while len(outcomes) < 2 and time.monotonic() < deadline:
            outcomes += executor.wait_any(deadline - time.monotonic())
        assert sorted((o.stage, o.status) for o in outcomes) == [("left", "ok"), ("right", "ok")]
    finally:
        executor.close()
