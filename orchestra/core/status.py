"""Every status vocabulary of orchestra, and the one place they map onto each other.

- :class:`StageStatus` / :class:`RunStatus`: what the run store records (``runs.status``,
  ``stages.status``) and ``orchestra runs`` shows.
- :class:`AttemptStatus`: how one stage attempt ended, as an executor reports it.
- :class:`EventStatus`: the ``status`` field of lifecycle events and webhook bodies
  (schemas/webhook-event.schema.json), scheduler events included.
- :class:`FiringState`: what became of one scheduled slot (``schedules.sqlite``).
- :class:`MlflowStatus`: MLflow's ``RunStatus`` names, for the mirror.

They are ``StrEnum``s, so a member compares equal to its text, is stored and serialised as that
text, and old records read back unchanged.
"""

from __future__ import annotations

from enum import StrEnum


class StageStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    LOADED = "LOADED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"
    KILLED = "KILLED"

    @property
    def terminal(self) -> bool:
        return self not in (StageStatus.PENDING, StageStatus.RUNNING)

    @property
    def has_outputs(self) -> bool:
        """Its outputs are published and a later stage or run may load them."""
        return self in (StageStatus.FINISHED, StageStatus.LOADED)


class RunStatus(StrEnum):
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"
    PLANNED = "PLANNED"  # a --dry-run: nothing ran and nothing was stored


class AttemptStatus(StrEnum):
    OK = "ok"
    FAILED = "failed"
    TIMEOUT = "timeout"
    KILLED = "killed"


class EventStatus(StrEnum):
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    SKIPPED = "skipped"
    LOADED = "loaded"
    KILLED = "killed"
    # scheduler events (schedule_fired / schedule_skipped) and `orchestra hooks test`
    LAUNCHED = "launched"
    LAUNCH_FAILED = "launch_failed"
    OVERLAP = "overlap"
    MISSED = "missed"
    TEST = "test"


class FiringState(StrEnum):
    PENDING = "pending"
    LAUNCHING = "launching"
    LAUNCHED = "launched"
    SKIPPED = "skipped"
    MISSED = "missed"
    LAUNCH_FAILED = "launch_failed"


class MlflowStatus(StrEnum):
    RUNNING = "RUNNING"
    SCHEDULED = "SCHEDULED"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"


_STAGE_EVENT = {
    StageStatus.PENDING: EventStatus.RUNNING, StageStatus.RUNNING: EventStatus.RUNNING,
    StageStatus.FINISHED: EventStatus.SUCCESS, StageStatus.LOADED: EventStatus.LOADED,
    StageStatus.FAILED: EventStatus.FAILED, StageStatus.SKIPPED: EventStatus.SKIPPED,
    StageStatus.KILLED: EventStatus.KILLED,
}
_STAGE_EVENT_BY_TEXT = {str(k): v for k, v in _STAGE_EVENT.items() if k != StageStatus.PENDING}
_RUN_EVENT = {RunStatus.RUNNING: EventStatus.RUNNING, RunStatus.FINISHED: EventStatus.SUCCESS,
              RunStatus.FAILED: EventStatus.FAILED, RunStatus.KILLED: EventStatus.KILLED,
              RunStatus.PLANNED: EventStatus.SUCCESS}
_EVENT_MLFLOW = {EventStatus.RUNNING: MlflowStatus.RUNNING, EventStatus.SUCCESS: MlflowStatus.FINISHED,
                 EventStatus.LOADED: MlflowStatus.FINISHED, EventStatus.FAILED: MlflowStatus.FAILED,
                 EventStatus.SKIPPED: MlflowStatus.KILLED, EventStatus.KILLED: MlflowStatus.KILLED}
_STAGE_MLFLOW = {StageStatus.FINISHED: MlflowStatus.FINISHED, StageStatus.LOADED: MlflowStatus.FINISHED,
                 StageStatus.FAILED: MlflowStatus.FAILED, StageStatus.KILLED: MlflowStatus.KILLED}


def event_status(status: str) -> EventStatus | str:
    """An event's ``status`` in the webhook vocabulary: a stage or run status (``FINISHED``,
    ``LOADED``, …) is translated, an event status passes through, anything else is returned
    lower-cased as given."""
    if status in _STAGE_EVENT_BY_TEXT:
        return _STAGE_EVENT_BY_TEXT[status]
    try:
        return EventStatus(status)
    except ValueError:
        return status.lower()


def stage_event(status: str) -> EventStatus:
    """The event/webhook status of a stage status."""
    return _STAGE_EVENT[StageStatus(status)]


def run_event(status: str) -> EventStatus:
    """The event/webhook status of a run status."""
    return _RUN_EVENT[RunStatus(status)]


def event_mlflow(status: str | None) -> MlflowStatus:
    """The MLflow status of an event status (an unknown or missing one counts as FAILED)."""
    try:
        return _EVENT_MLFLOW[EventStatus(status)]
    except ValueError:
        return MlflowStatus.FAILED


def run_mlflow(status: str) -> MlflowStatus:
    """The MLflow status a finished (or abandoned) run's parent MLflow run is closed with."""
    try:
        return MlflowStatus(status) if RunStatus(status) in _CLOSED_RUN else MlflowStatus.FAILED
    except ValueError:
        return MlflowStatus.FAILED


_CLOSED_RUN = (RunStatus.FINISHED, RunStatus.FAILED, RunStatus.KILLED)


def stage_mlflow(status: str) -> MlflowStatus | None:
    """The MLflow status of a stage's child run; None for stages that get no MLflow run."""
    return _STAGE_MLFLOW.get(StageStatus(status))
