"""Event → webhook body, described by schemas/webhook-event.schema.json.

The body keeps mlflow_client's top level (``event``, ``status``, ``timestamp``, ``payload``) and
adds ``id`` (equal to the ``webhook-id`` header), ``schema_version`` and a per-run ``sequence``.
It is thin on purpose: no parameter values unless a hook asks ``include: [params]``, no logs, no
environment, URLs without credentials, ``message`` capped — receivers are often chat rooms.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import time
from datetime import datetime, timezone
from typing import Any, Mapping

from orchestra.core import settings
from orchestra.core import status as status_map
from orchestra.core.status import EventStatus
from orchestra.core import events as ev
from orchestra.source.project import strip_credentials

SCHEMA_VERSION = 1
MESSAGE_CAP_BYTES = 1024
BODY_CAP_BYTES = 20_000

PING = "ping"
SCHEDULE_FIRED = ev.SCHEDULE_FIRED
SCHEDULE_SKIPPED = ev.SCHEDULE_SKIPPED
EVENT_NAMES: tuple[str, ...] = (
    ev.RUN_STARTED, ev.RUN_ENDED, ev.STAGE_STARTED, ev.STAGE_RETRYING, ev.STAGE_ENDED,
    SCHEDULE_FIRED, SCHEDULE_SKIPPED,
)
STATUSES: tuple[str, ...] = tuple(EventStatus)

# Status implied by the event when the engine leaves it out (§8.1 table).
_IMPLIED_STATUS = {ev.RUN_STARTED: EventStatus.RUNNING, ev.STAGE_STARTED: EventStatus.RUNNING,
                   ev.STAGE_RETRYING: EventStatus.FAILED, PING: EventStatus.TEST}
# Tags the scheduler sets on the runs it launches; copied into ``payload.schedule``.
SCHEDULE_TAG, SCHEDULED_FOR_TAG = "orchestra.schedule", "orchestra.scheduled_for"
SWEEP_TAG = "orchestra.sweep.payload"  # sweep events: the payload's `sweep` object, as JSON

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_event_id(now: float | None = None) -> str:
    """A ULID-based event id, ``evt_`` + 26 Crockford base32 chars (time-sortable, no dots)."""
    millis = int((time.time() if now is None else now) * 1000) & ((1 << 48) - 1)
    value = (millis << 80) | int.from_bytes(os.urandom(10), "big")
    chars = [_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5)]
    return "evt_" + "".join(chars)


def iso_utc(timestamp: float) -> str:
    """Unix seconds → ``2026-11-22T01:00:07.412Z`` (UTC, milliseconds, ``Z``)."""
    moment = datetime.fromtimestamp(timestamp, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def event_status(event: ev.Event) -> str:
    """The webhook ``status`` of an event: its own (normalised), else the one its name implies."""
    if event.status:  # the engine may speak in run-store states; receivers get the webhook vocabulary
        return str(status_map.event_status(event.status))
    return str(_IMPLIED_STATUS.get(event.name, EventStatus.RUNNING))


def cap_message(message: str | None, limit: int = MESSAGE_CAP_BYTES) -> str | None:
    """At most ``limit`` UTF-8 bytes; a cut message ends with an ellipsis."""
    if message is None:
        return None
    data = message.encode("utf-8", errors="replace")
    if len(data) <= limit:
        return message
    return data[: limit - 3].decode("utf-8", errors="ignore") + "…"


def build_body(event: ev.Event, event_id: str, sequence: int, *, include_params: bool = False) -> dict[str, Any]:
    """The JSON body for one event (see the module docstring and the schema).

    Args:
        event: the lifecycle event.
        event_id: the id shared by the body and the ``webhook-id`` header of every attempt.
        sequence: position of the event in its run, from 1.
        include_params: add the run's parameter values (a hook's ``include: [params]``).
    """
    # Schedule events of a slot that never became a run carry ``run: null``.
    payload: dict[str, Any] = {"experiment": event.experiment, "run": event.run_id or None}
    if event.stage is not None:  # run-level events omit ``stage`` (§8.3)
        payload["stage"] = event.stage
    project = event.project or {}
    uri = project.get("uri")
    payload.update(
        attempt=event.attempt,
        exit_code=event.exit_code,
        duration_s=None if event.duration_s is None else round(float(event.duration_s), 3),
        message=cap_message(event.message),
        loaded_from=_loaded_from(event.loaded_from),
        cache_key=event.cache_key,
        project={
            "uri": strip_credentials(str(uri)) if uri else None,
            "commit": project.get("commit"),
            "entry_point": project.get("entry_point"),
        },
    )
    schedule = event.tags.get(SCHEDULE_TAG) if event.tags else None
    if schedule:
        payload["schedule"] = {"name": schedule, "scheduled_for": event.tags.get(SCHEDULED_FOR_TAG)}
    if event.name.startswith("sweep_") and event.tags and event.tags.get(SWEEP_TAG):
        payload["sweep"] = json.loads(event.tags[SWEEP_TAG])
    if include_params:
        payload["params"] = {str(k): _jsonable(v) for k, v in (event.params or {}).items()}
    if event.name == ev.RUN_ENDED and event.run_id:
        payload["metrics"] = {str(k): float(v) for k, v in event.metrics.items() if math.isfinite(v)}
        payload["report"] = report_of(event.run_id)
    body = {
        "id": event_id,
        "event": event.name,
        "status": event_status(event),
        "timestamp": iso_utc(event.timestamp),
        "schema_version": SCHEMA_VERSION,
        "sequence": sequence,
        "payload": payload,
    }
    if include_params and len(encode(body)) > BODY_CAP_BYTES:
        # Parameter values are the only unbounded part; receivers can fetch them from the run.
        payload["params"] = {}
        payload["params_truncated"] = True
    if len(payload.get("metrics") or ()) and len(encode(body)) > BODY_CAP_BYTES:
        payload["metrics"] = {}  # the run's page has them all
        payload["metrics_truncated"] = True
    return body


def report_of(run_id: str) -> dict[str, str]:
    """Where ``orchestra report`` writes the run's page (beside the run's logs), and the command."""
    path = settings.home() / "runs" / run_id / "report.html"
    return {"command": f"orchestra report {run_id} -o {shlex.quote(str(path))}", "path": str(path)}


def ping_body(hook_name: str, event_id: str | None = None) -> dict[str, Any]:
    """The body of ``orchestra hooks test``: event ``ping``, status ``test``."""
    return {
        "id": event_id or new_event_id(),
        "event": PING,
        "status": "test",
        "timestamp": iso_utc(time.time()),
        "schema_version": SCHEMA_VERSION,
        "sequence": 0,
        "payload": {"hook": hook_name, "message": "orchestra hooks test"},
    }


def encode(body: Mapping[str, Any]) -> bytes:
    """The exact bytes sent and signed (compact JSON, UTF-8)."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8")


def _loaded_from(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not value:
        return None
    # The engine may name the run ``run`` or ``run_id``; the wire format says ``run``.
    return {"run": value.get("run") or value.get("run_id"), "stage": value.get("stage")}


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
