"""The engine submitting stages ahead of their parent's end (the Dask executor's chains), with
the fakes of ``test_engine``: a scripted Driver that is sure every stage will run, and an
in-process Executor that runs a task submitted ahead only after its parent's outcome, as Dask
does (first submitted, first done)."""

from __future__ import annotations

from typing import Mapping

from orchestra.core.status import AttemptStatus, RunStatus, StageStatus
from orchestra.execution.engine import AHEAD
from orchestra.execution.executors.base import StageTask
from orchestra.planning.plan import RUN, StagePlan
from tests.unit.test_engine import FakeDriver, FakeExecutor, make_graph, run


class AheadDriver(FakeDriver):
    def will_run(self, name: str, upstream: Mapping[str, str | None]) -> StagePlan | None:
        self.calls.append(("will_run", name))
        return StagePlan(name, RUN, None, {"upstream": dict(upstream)}, ("sure",))


class AheadExecutor(FakeExecutor):
    ahead = True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.after: dict[str, tuple[str, ...]] = {}
        self.withdrawn: list[str] = []
        self.most_ahead = 0

    def submit_after(self, task: StageTask, after: tuple[str, ...], step_parts) -> None:
        self.after[task.stage] = after
        self.submit(task)
        self.most_ahead = max(self.most_ahead, len(self.running) - 1)  # a chain: one runs, the rest wait

    def withdraw(self, stage: str) -> None:
        self.withdrawn.append(stage)
        self.running = [t for t in self.running if t.stage != stage]

    def spoiled(self, stage: str) -> bool:
        return False


CHAIN = {f"s{i}": ((f"s{i - 1}",) if i else ()) for i in range(8)}


def test_a_chain_goes_ahead_and_is_recorded_in_order(tmp_path):
    graph = make_graph(tmp_path, CHAIN)
    driver, executor = AheadDriver(), AheadExecutor()
    result = run(graph, driver, executor, jobs=2)
    assert result.status == RunStatus.FINISHED
    assert set(executor.after) == set(CHAIN) - {"s0"}  # every stage but the first went ahead
    assert 1 < executor.most_ahead <= AHEAD
    calls = driver.calls
    for i in range(1, 8):  # its start recorded after its parent's end, once
        assert calls.index(("ended", f"s{i - 1}", StageStatus.FINISHED)) < calls.index(("started", f"s{i}", 1))
    assert len(driver.of("started")) == 8
    # Decided again once the parent's digest is known: the recorded key is the real one.
    assert driver.decided["s3"] == [{"s2": "sha256:s2"}]


def test_a_failed_parent_withdraws_the_stages_ahead_which_never_start(tmp_path):
    graph = make_graph(tmp_path, CHAIN)
    driver, executor = AheadDriver(), AheadExecutor({("s1", 1): AttemptStatus.FAILED})
    result = run(graph, driver, executor, jobs=2)
    assert result.status == RunStatus.FAILED
    assert executor.withdrawn and set(executor.withdrawn) <= {f"s{i}" for i in range(2, 8)}
    assert [name for name, _a in driver.of("started")] == ["s0", "s1"]
    assert all(result.stages[f"s{i}"] == StageStatus.SKIPPED for i in range(2, 8))
    assert driver.messages["s2"] == "upstream s1 failed" and driver.outcomes["s2"] is None


def test_a_retried_parent_takes_its_stages_ahead_back_and_they_run_after_it(tmp_path):
    graph = make_graph(tmp_path, {"a": (), "b": ("a",)})
    driver, executor = AheadDriver(), AheadExecutor({("a", 1): AttemptStatus.FAILED})
    result = run(graph, driver, executor, jobs=2, retries={"a": 1})
    assert result.status == RunStatus.FINISHED
    assert executor.withdrawn == ["b"]
    calls = driver.calls
    assert calls.index(("ended", "a", StageStatus.FINISHED)) < calls.index(("started", "b", 1))
    assert executor.submitted.count(("b", 1)) == 2  # ahead of attempt 1, then again ahead of attempt 2


def test_a_fan_out_hands_its_slot_to_one_child_only(tmp_path):
    graph = make_graph(tmp_path, {"root": (), "x": ("root",), "y": ("root",), "z": ("root",)})
    driver, executor = AheadDriver(), AheadExecutor()
    result = run(graph, driver, executor, jobs=1)
    assert result.status == RunStatus.FINISHED
    assert list(executor.after) == ["x"] and executor.max_running <= 2  # root and x behind it


def test_an_interrupt_kills_the_stages_ahead_without_an_outcome(tmp_path):
    graph = make_graph(tmp_path, {"a": (), "b": ("a",)})
    driver = AheadDriver()
    executor = AheadExecutor(interrupt=lambda ex: len(ex.running) == 2)
    result = run(graph, driver, executor, jobs=2)
    assert result.status == RunStatus.KILLED
    assert result.stages == {"a": StageStatus.KILLED, "b": StageStatus.KILLED}
    assert driver.outcomes["b"] is None and [n for n, _a in driver.of("started")] == ["a"]


def test_executors_that_cannot_go_ahead_are_unchanged(tmp_path):
    graph = make_graph(tmp_path, CHAIN)
    driver, executor = AheadDriver(), FakeExecutor()
    run(graph, driver, executor, jobs=2)
    assert not driver.of("will_run")


class NewestFirst(AheadExecutor):
    """Reports the newest task first: a stage ahead ends (as Dask may tell it) before its parent."""

    def wait_any(self, timeout=None):
        if self.running and not self.cancelled:
            task = self.running.pop()
            if self.interrupt is not None and self.interrupt(self):
                self.running.append(task)
                self.interrupt = None
                raise KeyboardInterrupt
            return [self._outcome(task, self.script.get((task.stage, task.attempt), AttemptStatus.OK), None)]
        return super().wait_any(timeout)


def test_an_outcome_that_comes_before_its_parents_waits_for_it(tmp_path):
    graph = make_graph(tmp_path, {"a": (), "b": ("a",), "c": ("b",)})
    driver, executor = AheadDriver(), NewestFirst()
    result = run(graph, driver, executor, jobs=1)
    assert result.status == RunStatus.FINISHED
    ended = [name for name, _s in driver.of("ended")]
    started = [name for name, _a in driver.of("started")]
    assert ended == ["a", "b", "c"] and started == ["a", "b", "c"]
    calls = driver.calls
    assert calls.index(("ended", "a", StageStatus.FINISHED)) < calls.index(("started", "b", 1))


def test_an_interrupt_with_an_outcome_held_ends(tmp_path):
    graph = make_graph(tmp_path, {"a": (), "b": ("a",), "c": ("b",)})
    driver = AheadDriver()
    seen = []
    executor = NewestFirst(interrupt=lambda ex: seen.append(1) or len(seen) == 2)
    result = run(graph, driver, executor, jobs=1)
    assert result.status == RunStatus.KILLED
    assert all(status == StageStatus.KILLED for status in result.stages.values())


class KeepsWhatStarted(AheadExecutor):
    """An executor that cannot take back a stage it started (the local pool)."""

    withdraws_started = False


def test_an_executor_that_cannot_take_back_a_started_stage_goes_ahead_only_without_keep_going(tmp_path):
    """With keep_going another stage's failure withdraws the stages ahead, which such an executor
    may have started already: it is then driven as one that cannot go ahead."""
    graph = make_graph(tmp_path, CHAIN)
    driver, executor = AheadDriver(), KeepsWhatStarted()
    assert run(graph, driver, executor, jobs=2, keep_going=True).status == RunStatus.FINISHED
    assert not driver.of("will_run") and not executor.after
    driver, executor = AheadDriver(), KeepsWhatStarted()
    assert run(graph, driver, executor, jobs=2).status == RunStatus.FINISHED
    assert set(executor.after) == set(CHAIN) - {"s0"}


class ChainsOnly(KeepsWhatStarted):
    """The local pool: stages go ahead only down a stage's only child."""

    ahead_chains_only = True


def test_an_executor_for_chains_only_never_makes_a_sibling_wait(tmp_path):
    """ok has two children: neither goes ahead of it, so when ok ends both start at once (with
    ``bad`` ahead, ``side`` would wait behind ``bad``'s stage ahead and be SKIPPED when it fails);
    below a stage with one child, the chain still goes ahead."""
    graph = make_graph(tmp_path, {"ok": (), "bad": ("ok",), "below": ("bad",), "side": ("ok",),
                                  "after": ("side",)})
    driver, executor = AheadDriver(), ChainsOnly({("bad", 1): AttemptStatus.FAILED})
    result = run(graph, driver, executor, jobs=2)
    assert "bad" not in executor.after and "side" not in executor.after
    assert result.stages["side"] == StageStatus.FINISHED and result.stages["below"] == StageStatus.SKIPPED
    (tmp_path / "chain").mkdir()
    graph = make_graph(tmp_path / "chain", CHAIN)
    driver, executor = AheadDriver(), ChainsOnly()
    assert run(graph, driver, executor, jobs=2).status == RunStatus.FINISHED
    assert set(executor.after) == set(CHAIN) - {"s0"}
