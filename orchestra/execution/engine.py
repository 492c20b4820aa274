"""The ready-set loop, written once: drives a plan through an Executor.

A stage becomes ready when all its parents are FINISHED or LOADED. It is then decided for
good (its key is computable now), loaded in place, or submitted. Failure policy: a failed
stage's descendants are SKIPPED; without ``keep_going`` no new stage starts after a failure,
while running ones finish. Cancellation (SIGINT/SIGTERM → KeyboardInterrupt in the main thread)
kills every running stage group; the run and its unfinished stages become KILLED.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from orchestra.core.status import AttemptStatus, RunStatus, StageStatus
from orchestra.execution.executors.base import StageTask, TaskOutcome
from orchestra.mlproject.graph import StageGraph
from orchestra.planning.plan import LOAD, RUN, StagePlan

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Protocol

    from orchestra.execution.executors.base import Executor

# At most this many stages submitted ahead of their parent's end (one behind the other in a chain).
AHEAD = 4

# Short names for the stage statuses the loop below moves between.
FINISHED, FAILED, SKIPPED, LOADED, KILLED, PENDING, RUNNING = (
    StageStatus.FINISHED, StageStatus.FAILED, StageStatus.SKIPPED, StageStatus.LOADED, StageStatus.KILLED,
    StageStatus.PENDING, StageStatus.RUNNING)


if TYPE_CHECKING:  # a protocol for type checkers only: `typing` stays off a run's path
    class Driver(Protocol):
        """What the engine asks of the run: decisions, tasks, loading, and recording."""

        def decide(self, name: str, upstream: Mapping[str, str]) -> StagePlan: ...

        def task(self, name: str, attempt: int, decision: StagePlan) -> StageTask: ...

        def load(self, decision: StagePlan) -> str | None:
            """Link the outputs; return None on success or the problem (then the stage runs)."""

        def started(self, name: str, attempt: int, decision: StagePlan) -> None: ...

        def retrying(self, name: str, outcome: TaskOutcome) -> None: ...

        def ended(self, name: str, status: StageStatus, decision: StagePlan | None, outcome: TaskOutcome | None,
                  message: str | None) -> None: ...

        def will_run(self, name: str, upstream: Mapping[str, str | None]) -> StagePlan | None:
            """A RUN decision that holds whatever the upstream stages still running (digest None)
            produce — the stage is then submitted ahead of their end —, or None when it may load.
            Its ``components`` are the key's, those stages' digests None (the worker fills them in)."""


@dataclass
class EngineResult:
    """How the run ended: its status, every stage's status, the failed stages (in the order
    they failed) and the manifest digest of every FINISHED or LOADED stage."""

    status: RunStatus
    stages: dict[str, StageStatus] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    manifests: dict[str, str] = field(default_factory=dict)


def drive(graph: StageGraph, driver: Driver, executor: Executor, *, jobs: int, keep_going: bool = False,
          retries: Mapping[str, int] | None = None) -> EngineResult:
    """Run every stage of ``graph`` (the selected subgraph) to a terminal state."""
    return _Engine(graph, driver, executor, jobs=jobs, keep_going=keep_going, retries=retries or {}).run()


def _run_instead(decision: StagePlan, problem: str) -> StagePlan:
    """The RUN decision for a stage whose outputs could not be loaded."""
    reason = (f"outputs of run {decision.source.run_id[:8]} failed verification: {problem}"
              if decision.source else problem)
    return StagePlan(decision.name, RUN, decision.key, decision.components, (reason,))


class _Engine:
    """The state of one drive: every stage's status, the ready list (graph order), what runs."""

    def __init__(self, graph: StageGraph, driver: Driver, executor: Executor, *, jobs: int, keep_going: bool,
                 retries: Mapping[str, int]) -> None:
        self.graph, self.driver, self.executor = graph, driver, executor
        self.jobs, self.keep_going, self.retries = jobs, keep_going, retries
        self.state: dict[str, StageStatus] = {name: PENDING for name in graph.order}
        self.waiting: dict[str, int] = {name: len(graph.parents[name]) for name in graph.order}
        self.manifests: dict[str, str] = {}
        self.decisions: dict[str, StagePlan] = {}
        self.ready: list[str] = [name for name in graph.order if self.waiting[name] == 0]
        self.position = {name: i for i, name in enumerate(graph.order)}
        self.running = 0
        self.stopping = False
        # Submitted ahead: a stage submitted before its one unfinished parent ended (that parent →
        # it; it holds the parent's slot after it), and its outcome if it came before the parent's.
        self.inflight: dict[str, None] = {}  # submitted stages whose outcome is still to come
        self.ahead: dict[str, str] = {}
        self.handed: set[str] = set()
        self.early: dict[str, TaskOutcome] = {}
        # (An executor that cannot take back a stage it started goes ahead only without keep_going:
        # then a failure comes only from the stage the ones ahead wait for, which never start.)
        self.can_ahead = (bool(getattr(executor, "ahead", False)) and hasattr(driver, "will_run")
                          and (not keep_going or getattr(executor, "withdraws_started", True)))
        # An executor that asks for chains only goes ahead down a stage's only child: the stages the
        # parent's end makes ready are then only the one ahead, and no sibling waits behind it.
        self.chains_only = bool(getattr(executor, "ahead_chains_only", False))
        self.result = EngineResult(status=RunStatus.FINISHED, stages=self.state, manifests=self.manifests)

    def run(self) -> EngineResult:
        try:
            while self.ready or self.running:
                self.start_ready()
                if self.stopping:
                    self.skip_unstarted()
                elif self.can_ahead:
                    self.submit_ahead()
                if not self.running:
                    continue
                for outcome in self.executor.wait_any(None):
                    self.on_outcome(outcome)
        except KeyboardInterrupt:
            self.cancel_all()
            self.result.status = RunStatus.KILLED
            return self.result
        if any(s == KILLED for s in self.state.values()):
            self.result.status = RunStatus.KILLED
        elif self.result.failed:
            self.result.status = RunStatus.FAILED
        return self.result

    def start_ready(self) -> None:
        """Decide the ready stages in order: load them, or submit them while a slot is free."""
        while self.ready and not self.stopping:
            if self.ahead and not self.keep_going:
                break  # a failure of this stage must not race stages submitted ahead: they go first
            name = self.ready.pop(0)
            decision = self._decide(name)
            if decision is None:
                continue
            if self.running - len(self.ahead) >= self.jobs:
                self.ready.insert(0, name)
                break
            self.state[name] = RUNNING
            self._submit(name, 1, decision)

    def _decide(self, name: str) -> StagePlan | None:
        """The stage's decision, or None when it was loaded (and so is complete)."""
        upstream = {parent: self.manifests[parent] for parent in self.graph.parents[name]}
        decision = self.driver.decide(name, upstream)
        self.decisions[name] = decision
        if decision.action != LOAD:
            return decision
        problem = self.driver.load(decision)
        if problem is None:
            self.driver.ended(name, LOADED, decision, None, None)
            self.complete(name, LOADED, decision.source.manifest_digest if decision.source else None)
            return None
        decision = self.decisions[name] = _run_instead(decision, problem)
        return decision

    def _submit(self, name: str, attempt: int, decision: StagePlan) -> None:
        task = self.driver.task(name, attempt, decision)
        self.driver.started(name, attempt, decision)
        self.executor.submit(task)
        self.running += 1
        self.inflight[name] = None

    def submit_ahead(self) -> None:
        """Submit the next stages of a chain before their parent ended, so the cluster starts each
        as soon as its parent ends, without a round trip through this driver. Only while nothing
        else runs (without keep_going), so no other stage's failure can race them, and a stage's
        slot passes to one child only: what runs at once stays within ``jobs``. A stage goes ahead
        only when the driver knows it will run (not load) whatever its parent produces."""
        alone = self.keep_going or self.running - len(self.ahead) == 1
        if self.ready or self.early or not self.running or not alone:
            return  # (an outcome come early: its stage's future may be released; wait for its parent's)
        progress = True
        while progress and len(self.ahead) < AHEAD:
            progress = False
            for tail in [n for n in self.inflight if n not in self.handed]:
                if self.chains_only and len(self.graph.children[tail]) != 1:
                    continue
                child = next((c for c in self.graph.children[tail] if self.state[c] == PENDING and c not in self.ahead
                              and self.waiting[c] == 1), None)
                if child is None:
                    continue
                upstream = {p: self.manifests.get(p) for p in self.graph.parents[child]}
                decision = self.driver.will_run(child, upstream)
                if decision is None:
                    continue
                task = self.driver.task(child, 1, decision)
                after = (tail, *(p for p in task.input_dirs if p in self.inflight and p != tail))
                self.executor.submit_after(task, after, decision.components)  # type: ignore[attr-defined]
                self.ahead[child] = tail
                self.handed.add(tail)
                self.inflight[child] = None
                self.running += 1
                progress = True
                break

    def activate(self, name: str) -> None:
        """A stage submitted ahead, its parent now ended with outputs: decided and recorded as
        started (after the parent's end), or withdrawn and made ready when its inputs changed."""
        self.handed.discard(self.ahead.pop(name))
        if self.executor.spoiled(name):  # type: ignore[attr-defined]
            self._withdraw(name)
            self.ready.append(name)
            return
        upstream = {parent: self.manifests[parent] for parent in self.graph.parents[name]}
        decision = self.driver.decide(name, upstream)
        if decision.action != RUN:  # another run published it meanwhile: running it is still right
            decision = StagePlan(name, RUN, decision.key, decision.components, ("submitted ahead of its upstream",))
        self.decisions[name] = decision
        self.state[name] = RUNNING
        self.driver.started(name, 1, decision)
        early = self.early.pop(name, None)
        if early is not None:
            self.on_outcome(early)

    def withdraw_ahead(self) -> None:
        """Take back every stage submitted ahead (an upstream attempt did not end OK, or the run
        stops): they never started for the run, and their tasks never run their commands."""
        for name in list(self.ahead):
            self._withdraw(name)
        self.ahead.clear()
        self.handed.clear()
        self.early.clear()

    def _withdraw(self, name: str) -> None:
        self.executor.withdraw(name)  # type: ignore[attr-defined]
        self.inflight.pop(name, None)
        self.running -= 1

    def skip_unstarted(self) -> None:
        """After a failure (without keep_going): the ready stages that never started are SKIPPED."""
        for name in self.ready:
            if self.state[name] == PENDING:
                self.state[name] = SKIPPED
                self.driver.ended(name, SKIPPED, None, None, "not started after an earlier failure")
        self.ready.clear()

    def on_outcome(self, outcome: TaskOutcome) -> None:
        """One attempt ended: the stage finishes, is killed, retries, or fails."""
        name = outcome.stage
        if name in self.ahead:  # before its parent's outcome: settled once that one is
            self.early[name] = outcome
            return
        self.running -= 1
        self.inflight.pop(name, None)
        decision = self.decisions[name]
        if outcome.status != AttemptStatus.OK and self.ahead:
            self.withdraw_ahead()
        if outcome.status == AttemptStatus.OK:
            self.driver.ended(name, FINISHED, decision, outcome, None)
            self.complete(name, FINISHED, outcome.manifest_digest)
        elif outcome.status == AttemptStatus.KILLED:
            self.state[name] = KILLED
            self.driver.ended(name, KILLED, decision, outcome, outcome.message)
            self.stopping = True
        elif outcome.attempt <= self.retries.get(name, 0) and not self.stopping:
            self.driver.retrying(name, outcome)
            self._submit(name, outcome.attempt + 1, decision)
        else:
            self.driver.ended(name, FAILED, decision, outcome, outcome.message)
            self.result.failed.append(name)
            self.complete(name, FAILED, None)
            if not self.keep_going:
                self.stopping = True

    def complete(self, name: str, status: StageStatus, digest: str | None) -> None:
        """Record a terminal status: with outputs, its children may become ready; without, every
        pending descendant is SKIPPED (in graph order)."""
        self.state[name] = status
        if status.has_outputs:
            self.manifests[name] = digest or ""
            for child in self.graph.children[name]:
                self.waiting[child] -= 1
                if self.waiting[child] == 0 and self.state[child] == PENDING:
                    if child in self.ahead:
                        self.activate(child)
                    else:
                        self.ready.append(child)
            return
        for child in sorted(self.graph.descendants(name), key=self.position.__getitem__):
            if self.state[child] == PENDING:
                self.state[child] = SKIPPED
                self.driver.ended(child, SKIPPED, None, None, f"upstream {name} {status.lower()}")

    def cancel_all(self) -> None:
        """Interrupted: cancel the executor, wait for the running attempts; every running or
        pending stage becomes KILLED."""
        self.executor.cancel()
        self.running -= len(self.early)  # settled already: no cancellation will report them
        self.early.clear()
        while self.running:
            for outcome in self.executor.wait_any(None):
                self.running -= 1
                if outcome.stage in self.ahead:
                    continue  # never started for the run: killed below, as a pending stage
                self.state[outcome.stage] = KILLED
                self.driver.ended(outcome.stage, KILLED, self.decisions.get(outcome.stage), outcome, "interrupted")
        for name in self.graph.order:
            if self.state[name] in (PENDING, RUNNING):
                self.state[name] = KILLED
                self.driver.ended(name, KILLED, None, None, "interrupted")
