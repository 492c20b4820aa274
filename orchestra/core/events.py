"""Lifecycle events: what the engine tells listeners (console, webhooks, MLflow mirror).

Listeners must never raise into the engine and never block it: a listener that does I/O queues
the event and returns (hooks, MLflow mirror). ``EventBus.publish`` swallows listener errors.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

log = logging.getLogger(__name__)

RUN_STARTED = "run_started"
RUN_ENDED = "run_ended"
STAGE_STARTED = "stage_started"
STAGE_RETRYING = "stage_retrying"
STAGE_ENDED = "stage_ended"
# Scheduler events: a slot was launched (or failed to), or skipped/missed.
SCHEDULE_FIRED = "schedule_fired"
SCHEDULE_SKIPPED = "schedule_skipped"

# Webhook status vocabulary (the ``status`` field of schemas/webhook-event.schema.json).
SUCCESS, FAILED, SKIPPED, LOADED, KILLED = "success", "failed", "skipped", "loaded", "killed"


@dataclass(frozen=True, slots=True)
class Event:
    """One lifecycle event. ``stage`` is None for run events."""

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


class Listener(Protocol):
    """Receives events. ``handle`` must return quickly; ``close`` may wait up to ``drain_s``."""

    def handle(self, event: Event) -> None: ...

    def close(self, drain_s: float) -> None: ...


@runtime_checkable
class StageEnvProvider(Protocol):
    """A listener that gives each stage process variables of its own (the MLflow mirror gives
    ``MLFLOW_RUN_ID`` of the stage's run). Called just before the stage starts; ``decision`` is
    its :class:`orchestra.planning.plan.StagePlan`."""

    def stage_env(self, stage: str, decision: Any) -> Mapping[str, str]: ...


class EventBus:
    """Fans events out to listeners; a failing listener is logged, never propagated."""

    def __init__(self, listeners: Sequence[Listener] = ()) -> None:
        self.listeners = list(listeners)

    def publish(self, event: Event) -> None:
        for listener in self.listeners:
            try:
                listener.handle(event)
            except Exception:  # noqa: BLE001 - a listener never breaks a run
                log.warning("event listener %r failed on %s", listener, event.name, exc_info=True)

    def close(self, drain_s: float) -> None:
        deadline = time.monotonic() + max(drain_s, 0.0)
        for listener in self.listeners:
            try:
                listener.close(max(0.0, deadline - time.monotonic()))
            except Exception:  # noqa: BLE001
                log.warning("event listener %r failed to close", listener, exc_info=True)
