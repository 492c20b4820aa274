"""The engine's scheduling logic: ``drive()`` over a real StageGraph (loaded from an MLproject).

These are unit tests of the ready-set loop alone, so the two parts around it are fakes on
purpose: a Driver that records every call and answers from a script, and an in-process
Executor that "runs" a task by handing back the outcome scripted for it (first submitted, first
done). Real processes and real executors are covered by tests/integration (the executor
contract, the CLI runs).
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, Callable, Mapping

import pytest

from orchestra.core.status import AttemptStatus, RunStatus, StageStatus
from orchestra.execution.engine import EngineResult, drive
from orchestra.execution.executors.base import StageTask, TaskOutcome
from orchestra.mlproject import graph as graphmod
from orchestra.mlproject.graph import StageGraph
from orchestra.mlproject.load import load
from orchestra.planning.plan import LOAD, RUN, StagePlan
from orchestra.store.runs import Candidate


def make_graph(tmp_path: Path, stages: Mapping[str, tuple[str, ...]]) -> StageGraph:
    """The graph of an MLproject with one no-op entry point per stage (file order = ``stages``)."""
    lines = ["name: engine-test", "entry_points:"]
    for name, parents in stages.items():
        lines.append(f"  {name}:")
        lines.append('    command: "true"')
        if parents:
            lines.append(f"    depends_on: [{', '.join(parents)}]")
    (tmp_path / "MLproject").write_text(textwrap.dedent("\n".join(lines)) + "\n")
    return graphmod.build(load(tmp_path))


def digest(name: str) -> str:
    return f"sha256:{name}"


def candidate(name: str) -> Candidate:
    return Candidate(run_id="0123456789abcdef", stage=name, cache_key=f"key-{name}", components={},
                     manifest={}, manifest_digest=f"sha256:loaded-{name}", outputs_dir="/nowhere", metrics={},
                     end_time=0.0)


class FakeDriver:
    """Records every call in ``calls``; ``plans`` scripts decisions, ``load_problems`` loads."""

    def __init__(self, plans: Mapping[str, StagePlan] | None = None,
                 load_problems: Mapping[str, str] | None = None) -> None:
        self.plans = dict(plans or {})
        self.load_problems = dict(load_problems or {})
        self.calls: list[tuple[Any, ...]] = []
        self.decided: dict[str, list[Mapping[str, str]]] = {}
        self.task_decisions: dict[tuple[str, int], StagePlan] = {}
        self.outcomes: dict[str, TaskOutcome | None] = {}
        self.messages: dict[str, str | None] = {}

    def decide(self, name: str, upstream: Mapping[str, str]) -> StagePlan:
        self.calls.append(("decide", name))
        self.decided.setdefault(name, []).append(dict(upstream))
        return self.plans.get(name) or StagePlan(name, RUN, f"key-{name}", {"stage": name}, ("new",))

    def task(self, name: str, attempt: int, decision: StagePlan) -> StageTask:
        self.calls.append(("task", name, attempt))
        self.task_decisions[(name, attempt)] = decision
        return StageTask(run_id="run", stage=name, attempt=attempt, command="true", cwd="/", env={},
                         log_dir="/logs", staging_dir="/staging", outputs_dir="/out", metrics_file="/metrics")

    def load(self, decision: StagePlan) -> str | None:
        self.calls.append(("load", decision.name))
        return self.load_problems.get(decision.name)

    def started(self, name: str, attempt: int, decision: StagePlan) -> None:
        self.calls.append(("started", name, attempt))

    def retrying(self, name: str, outcome: TaskOutcome) -> None:
        self.calls.append(("retrying", name, outcome.attempt, outcome.status))

    def ended(self, name: str, status: StageStatus, decision: StagePlan | None, outcome: TaskOutcome | None,
              message: str | None) -> None:
        assert isinstance(status, StageStatus)
        self.calls.append(("ended", name, status))
        self.outcomes[name] = outcome
        self.messages[name] = message
        self.task_decisions.setdefault((name, 0), decision)  # type: ignore[arg-type]

    def of(self, kind: str) -> list[tuple[Any, ...]]:
        return [call[1:] for call in self.calls if call[0] == kind]

    def ended_status(self) -> dict[str, StageStatus]:
        return {name: status for name, status in self.of("ended")}


class FakeExecutor:
    """Runs nothing: ``wait_any`` returns the outcome scripted for the oldest submitted task
    (``script[(stage, attempt)]``, default OK). ``interrupt(executor)`` returning True makes
    the next ``wait_any`` raise KeyboardInterrupt (once); after ``cancel`` every task comes back
    KILLED, as real executors report cancelled attempts."""

    def __init__(self, script: Mapping[tuple[str, int], AttemptStatus] | None = None,
                 interrupt: Callable[["FakeExecutor"], bool] | None = None) -> None:
        self.script = dict(script or {})
        self.interrupt = interrupt
        self.running: list[StageTask] = []
        self.submitted: list[tuple[str, int]] = []
        self.max_running = 0
        self.cancelled = False

    def submit(self, task: StageTask) -> None:
        assert not self.cancelled
        self.running.append(task)
        self.submitted.append((task.stage, task.attempt))
        self.max_running = max(self.max_running, len(self.running))

    def wait_any(self, timeout: float | None = None) -> list[TaskOutcome]:
        if not self.running:
            return []
        if self.cancelled:
            done, self.running = self.running, []
            return [self._outcome(task, AttemptStatus.KILLED, "cancelled") for task in done]
        if self.interrupt is not None and self.interrupt(self):
            self.interrupt = None
            raise KeyboardInterrupt
        task = self.running.pop(0)
        status = self.script.get((task.stage, task.attempt), AttemptStatus.OK)
        message = None if status == AttemptStatus.OK else f"attempt {task.attempt} {status}"
        return [self._outcome(task, status, message)]

    def cancel(self) -> None:
        self.cancelled = True

    def close(self) -> None:
        pass

    @staticmethod
    def _outcome(task: StageTask, status: AttemptStatus, message: str | None) -> TaskOutcome:
        ok = status == AttemptStatus.OK
        return TaskOutcome(stage=task.stage, attempt=task.attempt, status=status, exit_code=0 if ok else 1,
                           start_time=1.0, end_time=2.0, manifest={} if ok else None,
                           manifest_digest=digest(task.stage) if ok else None, message=message)


def run(graph: StageGraph, driver: FakeDriver, executor: FakeExecutor, **kwargs: Any) -> EngineResult:
    kwargs.setdefault("jobs", 4)
    return drive(graph, driver, executor, **kwargs)


# -- order and parallelism ------------------------------------------------------------------
@pytest.mark.parametrize("jobs", [1, 2, 3, 5])
def test_stages_start_in_graph_order_within_the_jobs_limit(tmp_path, jobs):
    graph = make_graph(tmp_path, {"root": (), "b": ("root",), "c": ("root",), "d": ("root",), "join": ("b", "c", "d")})
    driver, executor = FakeDriver(), FakeExecutor()
    result = run(graph, driver, executor, jobs=jobs)
    assert [name for name, _attempt in driver.of("started")] == list(graph.order)
    assert executor.submitted == [(name, 1) for name in graph.order]
    assert executor.max_running == min(jobs, 3)  # b, c and d are ready together
    assert result.status == RunStatus.FINISHED and isinstance(result.status, RunStatus)
    assert result.stages == {name: StageStatus.FINISHED for name in graph.order}
    assert result.failed == [] and result.manifests == {name: digest(name) for name in graph.order}
    # Each stage is decided with its parents' manifest digests, and ends once, FINISHED.
    assert driver.decided["root"][-1] == {}
    assert driver.decided["join"] == [{"b": digest("b"), "c": digest("c"), "d": digest("d")}]
    assert driver.ended_status() == {name: StageStatus.FINISHED for name in graph.order}
    assert len(driver.of("ended")) == len(graph.order)
    # The driver hears of an attempt in order: its task is built, then it is started.
    assert driver.calls.index(("task", "join", 1)) + 1 == driver.calls.index(("started", "join", 1))


def test_a_stage_starts_only_after_all_its_parents_end(tmp_path):
    graph = make_graph(tmp_path, {"a": (), "b": (), "join": ("a", "b")})
    driver = FakeDriver()
    run(graph, driver, FakeExecutor(), jobs=2)
    calls = driver.calls
    assert calls.index(("started", "join", 1)) > max(calls.index(("ended", "a", StageStatus.FINISHED)),
                                                     calls.index(("ended", "b", StageStatus.FINISHED)))


# -- failure policy -------------------------------------------------------------------------
BRANCHES = {"x": (), "x1": ("x",), "x2": ("x1",), "y": (), "y1": ("y",), "z": ()}


def test_a_failure_skips_its_descendants_and_stops_new_starts(tmp_path):
    graph = make_graph(tmp_path, BRANCHES)
    driver = FakeDriver()
    executor = FakeExecutor({("x", 1): AttemptStatus.FAILED})
    result = run(graph, driver, executor, jobs=2)
    # x and y were running; z waited for a slot. y still finishes; nothing new starts.
    assert executor.submitted == [("x", 1), ("y", 1)]
    assert result.status == RunStatus.FAILED and result.failed == ["x"]
    assert result.stages == {"x": StageStatus.FAILED, "x1": StageStatus.SKIPPED, "x2": StageStatus.SKIPPED,
                             "y": StageStatus.FINISHED, "y1": StageStatus.SKIPPED, "z": StageStatus.SKIPPED}
    assert driver.ended_status() == result.stages
    assert driver.messages["x"] == "attempt 1 failed" and driver.outcomes["x"].status == AttemptStatus.FAILED
    assert driver.messages["x1"] == driver.messages["x2"] == "upstream x failed"
    assert driver.outcomes["x1"] is None
    assert driver.messages["z"] == driver.messages["y1"] == "not started after an earlier failure"
    # Descendants are skipped in graph order, right after the failure.
    ended = [name for name, _status in driver.of("ended")]
    assert ended[:3] == ["x", "x1", "x2"]


def test_keep_going_lets_independent_branches_finish(tmp_path):
    graph = make_graph(tmp_path, BRANCHES)
    driver = FakeDriver()
    executor = FakeExecutor({("x", 1): AttemptStatus.FAILED})
    result = run(graph, driver, executor, jobs=2, keep_going=True)
    assert result.status == RunStatus.FAILED and result.failed == ["x"]
    assert result.stages == {"x": StageStatus.FAILED, "x1": StageStatus.SKIPPED, "x2": StageStatus.SKIPPED,
                             "y": StageStatus.FINISHED, "y1": StageStatus.FINISHED, "z": StageStatus.FINISHED}
    assert driver.messages["x2"] == "upstream x failed"
    assert sorted(executor.submitted) == [("x", 1), ("y", 1), ("y1", 1), ("z", 1)]


def test_a_timeout_counts_as_a_failure(tmp_path):
    graph = make_graph(tmp_path, {"slow": (), "after": ("slow",)})
    driver = FakeDriver()
    result = run(graph, driver, FakeExecutor({("slow", 1): AttemptStatus.TIMEOUT}))
    assert result.status == RunStatus.FAILED
    assert result.stages == {"slow": StageStatus.FAILED, "after": StageStatus.SKIPPED}
    assert driver.messages["after"] == "upstream slow failed"


# -- retries --------------------------------------------------------------------------------
def test_retries_run_the_next_attempt_until_one_succeeds(tmp_path):
    graph = make_graph(tmp_path, {"flaky": (), "after": ("flaky",)})
    driver = FakeDriver()
    executor = FakeExecutor({("flaky", 1): AttemptStatus.FAILED, ("flaky", 2): AttemptStatus.TIMEOUT})
    result = run(graph, driver, executor, retries={"flaky": 2})
    assert executor.submitted == [("flaky", 1), ("flaky", 2), ("flaky", 3), ("after", 1)]
    assert driver.of("started") == [("flaky", 1), ("flaky", 2), ("flaky", 3), ("after", 1)]
    assert driver.of("retrying") == [("flaky", 1, AttemptStatus.FAILED), ("flaky", 2, AttemptStatus.TIMEOUT)]
    assert driver.outcomes["flaky"].attempt == 3
    assert result.status == RunStatus.FINISHED and result.stages["flaky"] == StageStatus.FINISHED
    # The stage is decided once; every attempt runs that decision.
    assert len(driver.decided["flaky"]) == 1
    assert driver.task_decisions[("flaky", 1)] is driver.task_decisions[("flaky", 3)]
    # Only the last attempt ends the stage.
    assert driver.of("ended").count(("flaky", StageStatus.FINISHED)) == 1


def test_retries_exhausted_the_stage_fails_with_the_last_attempt(tmp_path):
    graph = make_graph(tmp_path, {"bad": (), "after": ("bad",)})
    driver = FakeDriver()
    executor = FakeExecutor({("bad", 1): AttemptStatus.FAILED, ("bad", 2): AttemptStatus.FAILED})
    result = run(graph, driver, executor, retries={"bad": 1})
    assert executor.submitted == [("bad", 1), ("bad", 2)]
    assert driver.of("retrying") == [("bad", 1, AttemptStatus.FAILED)]
    assert driver.outcomes["bad"].attempt == 2 and driver.messages["bad"] == "attempt 2 failed"
    assert result.status == RunStatus.FAILED and result.failed == ["bad"]
    assert result.stages == {"bad": StageStatus.FAILED, "after": StageStatus.SKIPPED}


def test_no_retry_once_the_run_is_stopping(tmp_path):
    graph = make_graph(tmp_path, {"x": (), "y": ()})
    driver = FakeDriver()
    executor = FakeExecutor({("x", 1): AttemptStatus.FAILED, ("y", 1): AttemptStatus.FAILED})
    result = run(graph, driver, executor, jobs=2, retries={"y": 3})
    assert executor.submitted == [("x", 1), ("y", 1)] and driver.of("retrying") == []
    assert result.failed == ["x", "y"] and result.status == RunStatus.FAILED


# -- loading --------------------------------------------------------------------------------
def test_a_loaded_stage_completes_without_running(tmp_path):
    graph = make_graph(tmp_path, {"prep": (), "train": ("prep",)})
    plan = StagePlan("prep", LOAD, "key-prep", {}, ("loaded",), source=candidate("prep"))
    driver = FakeDriver(plans={"prep": plan})
    executor = FakeExecutor()
    result = run(graph, driver, executor)
    assert executor.submitted == [("train", 1)]
    assert driver.of("load") == [("prep",)]
    assert result.stages == {"prep": StageStatus.LOADED, "train": StageStatus.FINISHED}
    assert result.manifests["prep"] == "sha256:loaded-prep"
    assert driver.decided["train"] == [{"prep": "sha256:loaded-prep"}]
    assert driver.outcomes["prep"] is None and driver.task_decisions[("prep", 0)] is plan
    assert result.status == RunStatus.FINISHED


def test_a_load_that_fails_verification_runs_instead(tmp_path):
    graph = make_graph(tmp_path, {"prep": (), "train": ("prep",)})
    plan = StagePlan("prep", LOAD, "key-prep", {"stage": "prep"}, ("loaded",), source=candidate("prep"))
    driver = FakeDriver(plans={"prep": plan}, load_problems={"prep": "a.txt: digest mismatch"})
    executor = FakeExecutor()
    result = run(graph, driver, executor)
    assert executor.submitted == [("prep", 1), ("train", 1)]
    rerun = driver.task_decisions[("prep", 1)]
    assert (rerun.name, rerun.action, rerun.key, rerun.components) == ("prep", RUN, "key-prep", {"stage": "prep"})
    assert rerun.reasons == ("outputs of run 01234567 failed verification: a.txt: digest mismatch",)
    assert rerun.source is None
    assert result.stages == {"prep": StageStatus.FINISHED, "train": StageStatus.FINISHED}
    assert result.manifests["prep"] == digest("prep")


# -- cancellation ---------------------------------------------------------------------------
def test_interrupt_kills_the_running_and_pending_stages(tmp_path):
    graph = make_graph(tmp_path, {"a": (), "b": (), "c": (), "d": ("a",)})
    driver = FakeDriver()
    executor = FakeExecutor(interrupt=lambda ex: len(ex.running) == 2)
    result = run(graph, driver, executor, jobs=2)
    assert executor.cancelled and executor.submitted == [("a", 1), ("b", 1)]
    assert result.status == RunStatus.KILLED
    assert result.stages == {name: StageStatus.KILLED for name in graph.order}
    assert driver.ended_status() == result.stages
    assert set(driver.messages.values()) == {"interrupted"}
    # Running stages end with their (killed) outcome; never-started ones with none.
    assert driver.outcomes["a"].status == AttemptStatus.KILLED and driver.outcomes["b"] is not None
    assert driver.outcomes["c"] is None and driver.outcomes["d"] is None


def test_interrupt_after_some_stages_ended_keeps_their_status(tmp_path):
    graph = make_graph(tmp_path, {"a": (), "b": ("a",), "c": ("b",)})
    driver = FakeDriver()
    executor = FakeExecutor(interrupt=lambda ex: ex.running[0].stage == "b")
    result = run(graph, driver, executor)
    assert result.status == RunStatus.KILLED
    assert result.stages == {"a": StageStatus.FINISHED, "b": StageStatus.KILLED, "c": StageStatus.KILLED}


def test_an_attempt_killed_from_outside_kills_the_run(tmp_path):
    graph = make_graph(tmp_path, {"a": (), "b": (), "c": ("a",)})
    driver = FakeDriver()
    executor = FakeExecutor({("a", 1): AttemptStatus.KILLED})
    result = run(graph, driver, executor, jobs=1, retries={"a": 2})
    assert executor.submitted == [("a", 1)] and driver.of("retrying") == []
    assert result.status == RunStatus.KILLED and result.failed == []
    assert result.stages["a"] == StageStatus.KILLED and result.stages["b"] == StageStatus.SKIPPED
    assert driver.messages["b"] == "not started after an earlier failure"
    assert ("c", 1) not in executor.submitted
