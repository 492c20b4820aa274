"""The ready-set loop, written once: drives a plan through an Executor.

A stage becomes ready when all its parents are FINISHED or LOADED. It is then decided for
good (its key is computable now), loaded in place, or submitted. Failure policy: a failed
stage's descendants are SKIPPED; without ``keep_going`` no new stage starts after a failure,
while running ones finish. Cancellation (SIGINT/SIGTERM → KeyboardInterrupt in the main thread)
kills every running stage group; the run and its unfinished stages become KILLED.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Protocol

from orchestra.core.status import AttemptStatus, RunStatus, StageStatus
from orchestra.execution.executors.base import Executor, StageTask, TaskOutcome
from orchestra.mlproject.graph import StageGraph
from orchestra.planning.plan import LOAD, RUN, StagePlan

# Short names for the stage statuses the loop below moves between.
FINISHED, FAILED, SKIPPED, LOADED, KILLED, PENDING, RUNNING = (
    StageStatus.FINISHED, StageStatus.FAILED, StageStatus.SKIPPED, StageStatus.LOADED, StageStatus.KILLED,
    StageStatus.PENDING, StageStatus.RUNNING)


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
        self.result = EngineResult(status=RunStatus.FINISHED, stages=self.state, manifests=self.manifests)

    def run(self) -> EngineResult:
        try:
            while self.ready or self.running:
                self.start_ready()
                if self.stopping:
                    self.skip_unstarted()
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
            name = self.ready.pop(0)
            decision = self._decide(name)
            if decision is None:
                continue
            if self.running >= self.jobs:
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

    def skip_unstarted(self) -> None:
        """After a failure (without keep_going): the ready stages that never started are SKIPPED."""
        for name in self.ready:
            if self.state[name] == PENDING:
                self.state[name] = SKIPPED
                self.driver.ended(name, SKIPPED, None, None, "not started after an earlier failure")
        self.ready.clear()

    def on_outcome(self, outcome: TaskOutcome) -> None:
        """One attempt ended: the stage finishes, is killed, retries, or fails."""
        self.running -= 1
        name = outcome.stage
        decision = self.decisions[name]
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
        while self.running:
            for outcome in self.executor.wait_any(None):
                self.running -= 1
                self.state[outcome.stage] = KILLED
                self.driver.ended(outcome.stage, KILLED, self.decisions.get(outcome.stage), outcome, "interrupted")
        for name in self.graph.order:
            if self.state[name] in (PENDING, RUNNING):
                self.state[name] = KILLED
                self.driver.ended(name, KILLED, None, None, "interrupted")
