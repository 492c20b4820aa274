"""Lifecycle events: what the engine tells listeners (run store, console, webhooks, MLflow mirror).

Listeners must never block the engine: a listener that does network I/O queues the event and
returns (hooks, MLflow mirror). ``EventBus.publish`` swallows the errors of ordinary listeners;
its *essential* listeners (the run's recorder and console) come first, in order, and their
errors propagate: a run whose record cannot be written stops, as a failing store write always did.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from orchestra.core import log as logger
from orchestra.core.records import Metric, StageUpdate
from orchestra.core.status import RunStatus

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Protocol, TypeGuard

log = logger.get(__name__)

RUN_STARTED = "run_started"
RUN_ENDED = "run_ended"
STAGE_STARTED = "stage_started"
STAGE_RETRYING = "stage_retrying"
STAGE_ENDED = "stage_ended"
# Scheduler events: a slot was launched (or failed to), or skipped/missed.
SCHEDULE_FIRED = "schedule_fired"
SCHEDULE_SKIPPED = "schedule_skipped"
# Sweep events: before the first member starts, after the last one ends.
SWEEP_STARTED = "sweep_started"
SWEEP_ENDED = "sweep_ended"


@dataclass(frozen=True, slots=True)
class AttemptReport:
    """What one finished attempt of a stage process left behind.

    Attributes:
        status: how it ended (:class:`orchestra.core.status.AttemptStatus` text: ok, failed, ...).
        message: the executor's one-line reason ("exited with code 3"), if any.
        last_stderr: the last lines the process wrote on stderr.
        metrics: every metric value it logged (the history, not only the latest).
    """

    status: str
    message: str | None = None
    last_stderr: tuple[str, ...] = ()
    metrics: tuple[Metric, ...] = ()


@dataclass(frozen=True, slots=True)
class Event:
    """One lifecycle event. ``stage`` is None for run events.

    The fields up to ``timestamp`` are what webhooks and the MLflow mirror read (``status`` is
    the webhook vocabulary). The in-process listeners also read:

    Attributes:
        change: with ``stage_started`` / ``stage_ended``, the stage's recorded fields that
            changed (its new status among them); what the run store writes.
        outcome: with ``stage_retrying`` / ``stage_ended`` of a stage that ran, its last attempt.
        reasons: with ``stage_started``, why the stage runs (the plan's reasons).
        trusted: with a ``loaded`` ``stage_ended``, it was loaded by ``--load-stages``.
        run_status: with ``run_ended``, the run's recorded final status.
        metrics: with ``run_ended``, the run's headline metrics (``<stage>.<metric>``).
    """

    name: str
    run_id: str
    experiment: str
    status: str | None = None
    stage: str | None = None
    attempt: int | None = None
    exit_code: int | None = None
    duration_s: float | None = None
    message: str | None = None
    loaded_from: Mapping[str, str] | None = None
    cache_key: str | None = None
    project: Mapping[str, Any] = field(default_factory=dict)  # uri, commit, entry_point
    params: Mapping[str, Any] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    timestamp: float = field(default_factory=time.time)
    change: StageUpdate | None = None
    outcome: AttemptReport | None = None
    reasons: tuple[str, ...] = ()
    trusted: bool = False
    run_status: RunStatus | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)


if TYPE_CHECKING:  # protocols for type checkers only: `typing` stays off a run's path
    class Listener(Protocol):
        """Receives events. ``handle`` must return quickly; ``close`` may wait up to ``drain_s``."""

        def handle(self, event: Event) -> None: ...

        def close(self, drain_s: float) -> None: ...

    class StageEnvProvider(Protocol):
        """A listener that gives each stage process variables of its own (the MLflow variables come
        from the run's tracking endpoint, which the driver asks directly). Called just before the
        stage starts; ``decision`` is its :class:`orchestra.planning.plan.StagePlan`."""

        def stage_env(self, stage: str, decision: Any) -> Mapping[str, str]: ...


def provides_stage_env(listener: object) -> TypeGuard[StageEnvProvider]:
    """Whether a listener is a :class:`StageEnvProvider`: it has a ``stage_env`` that is not None
    (what ``isinstance`` against a runtime-checkable protocol tests)."""
    return getattr(listener, "stage_env", None) is not None


class EventBus:
    """Fans events out: first to the ``essential`` listeners, in order, whose errors propagate;
    then to the other ``listeners``, whose errors are logged, never propagated."""

    def __init__(self, listeners: Sequence[Listener] = (), *, essential: Sequence[Listener] = ()) -> None:
        self.essential = list(essential)
        self.listeners = list(listeners)

    def publish(self, event: Event) -> None:
        for listener in self.essential:
            listener.handle(event)
        for listener in self.listeners:
            try:
                listener.handle(event)
            except Exception:  # noqa: BLE001 - a listener never breaks a run
                log.warning("event listener %r failed on %s", listener, event.name, exc_info=True)

    def close(self, drain_s: float) -> None:
        deadline = time.monotonic() + max(drain_s, 0.0)
        for listener in (*self.essential, *self.listeners):
            try:
                listener.close(max(0.0, deadline - time.monotonic()))
            except Exception:  # noqa: BLE001
                log.warning("event listener %r failed to close", listener, exc_info=True)
