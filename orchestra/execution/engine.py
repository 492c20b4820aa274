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

from orchestra.execution.executors.base import Executor, StageTask, TaskOutcome
from orchestra.mlproject.graph import StageGraph
from orchestra.planning.plan import LOAD, StagePlan

FINISHED, FAILED, SKIPPED, LOADED, KILLED, PENDING, RUNNING = (
    "FINISHED", "FAILED", "SKIPPED", "LOADED", "KILLED", "PENDING", "RUNNING")


class Driver(Protocol):
    """What the engine asks of the run: decisions, tasks, loading, and recording."""

    def decide(self, name: str, upstream: Mapping[str, str]) -> StagePlan: ...

    def task(self, name: str, attempt: int, decision: StagePlan) -> StageTask: ...

    def load(self, decision: StagePlan) -> str | None:
        """Link the outputs; return None on success or the problem (then the stage runs)."""

    def started(self, name: str, attempt: int, decision: StagePlan) -> None: ...

    def retrying(self, name: str, outcome: TaskOutcome) -> None: ...

    def ended(self, name: str, status: str, decision: StagePlan | None, outcome: TaskOutcome | None,
              message: str | None) -> None: ...


@dataclass
class EngineResult:
    status: str
    stages: dict[str, str] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    manifests: dict[str, str] = field(default_factory=dict)


def drive(graph: StageGraph, driver: Driver, executor: Executor, *, jobs: int, keep_going: bool = False,
          retries: Mapping[str, int] | None = None) -> EngineResult:
    """Run every stage of ``graph`` (the selected subgraph) to a terminal state."""
    retries = retries or {}
    state: dict[str, str] = {name: PENDING for name in graph.order}
    waiting: dict[str, int] = {name: len(graph.parents[name]) for name in graph.order}
    manifests: dict[str, str] = {}
    decisions: dict[str, StagePlan] = {}
    ready: list[str] = [name for name in graph.order if waiting[name] == 0]
    position = {name: i for i, name in enumerate(graph.order)}
    running = 0
    stopping = False
    result = EngineResult(status=FINISHED, stages=state, manifests=manifests)

    def complete(name: str, status: str, digest: str | None) -> None:
        state[name] = status
        if status in (FINISHED, LOADED):
            manifests[name] = digest or ""
            for child in graph.children[name]:
                waiting[child] -= 1
                if waiting[child] == 0 and state[child] == PENDING:
                    ready.append(child)
        else:
            for child in sorted(graph.descendants(name), key=position.__getitem__):
                if state[child] == PENDING:
                    state[child] = SKIPPED
                    driver.ended(child, SKIPPED, None, None, f"upstream {name} {status.lower()}")

    try:
        while ready or running:
            while ready and not stopping:
                name = ready.pop(0)
                upstream = {parent: manifests[parent] for parent in graph.parents[name]}
                decision = driver.decide(name, upstream)
                decisions[name] = decision
                if decision.action == LOAD:
                    problem = driver.load(decision)
                    if problem is None:
                        driver.ended(name, LOADED, decision, None, None)
                        complete(name, LOADED, decision.source.manifest_digest if decision.source else None)
                        continue
                    decision = StagePlan(name, "RUN", decision.key, decision.components,
                                         (f"outputs of run {decision.source.run_id[:8]} failed verification: {problem}",)
                                         if decision.source else (problem,))
                    decisions[name] = decision
                if running >= jobs:
                    ready.insert(0, name)
                    break
                state[name] = RUNNING
                task = driver.task(name, 1, decision)
                driver.started(name, 1, decision)
                executor.submit(task)
                running += 1
            if stopping:
                for name in ready:
                    if state[name] == PENDING:
                        state[name] = SKIPPED
                        driver.ended(name, SKIPPED, None, None, "not started after an earlier failure")
                ready.clear()
            if not running:
                continue
            for outcome in executor.wait_any(None):
                running -= 1
                name = outcome.stage
                if outcome.status == "ok":
                    driver.ended(name, FINISHED, decisions[name], outcome, None)
                    complete(name, FINISHED, outcome.manifest_digest)
                elif outcome.status == "killed":
                    state[name] = KILLED
                    driver.ended(name, KILLED, decisions[name], outcome, outcome.message)
                    stopping = True
                elif outcome.attempt <= retries.get(name, 0) and not stopping:
                    driver.retrying(name, outcome)
                    next_attempt = outcome.attempt + 1
                    task = driver.task(name, next_attempt, decisions[name])
                    driver.started(name, next_attempt, decisions[name])
                    executor.submit(task)
                    running += 1
                else:
                    driver.ended(name, FAILED, decisions[name], outcome, outcome.message)
                    result.failed.append(name)
                    complete(name, FAILED, None)
                    if not keep_going:
                        stopping = True
    except KeyboardInterrupt:
        executor.cancel()
        while running:
            for outcome in executor.wait_any(None):
                running -= 1
                state[outcome.stage] = KILLED
                driver.ended(outcome.stage, KILLED, decisions.get(outcome.stage), outcome, "interrupted")
        for name in graph.order:
            if state[name] in (PENDING, RUNNING):
                state[name] = KILLED
                driver.ended(name, KILLED, None, None, "interrupted")
        result.status = KILLED
        return result
    if any(s == KILLED for s in state.values()):
        result.status = KILLED
    elif result.failed:
        result.status = FAILED
    return result
