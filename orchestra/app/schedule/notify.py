"""``schedule_fired`` / ``schedule_skipped`` webhooks, through the run hooks' outbox and sender.

Sources: the schedule's ``--hooks`` URIs, ``ORCHESTRA_HOOKS_URI`` / ``MLFLOW_HOOKS_URI``, and the
MLproject ``hooks`` of a *local* project (trusted as ``orchestra run`` trusts them; a git project
is not fetched just to notify). An event is one outbox transaction; delivery happens in the
background (the daemon's sender, or the drain every orchestra command does on exit), and a hook
problem is logged, never fatal to a slot.
"""

from __future__ import annotations

from pathlib import Path

from orchestra.core import log as logger
from orchestra.core import events
from orchestra.core.layout import orchestra_home

log = logger.get(__name__)


def emit(schedule_name: str, event: str, status: str, *, firing_id: int, scheduled_for: str,
         message: str | None = None, run_id: str | None = None, schedule=None) -> bool:
    """Record one schedule event for every matching hook; True when something was queued."""
    try:
        return _emit(schedule_name, event, status, firing_id, scheduled_for, message, run_id, schedule)
    except Exception:  # noqa: BLE001 - hooks never break the scheduler
        log.warning("schedule %s: %s webhook not recorded", schedule_name, event, exc_info=True)
        return False


def _emit(name: str, event: str, status: str, firing_id: int, scheduled_for: str, message: str | None,
          run_id: str | None, schedule) -> bool:
    from orchestra.app.schedule import store

    if schedule is None:
        try:
            schedule = store.get(name).schedule
        except Exception:  # noqa: BLE001 - removed meanwhile: the environment's hooks still apply
            schedule = None
    config = _config(schedule)
    if not config:
        return False
    from orchestra.integrations.hooks import outbox
    from orchestra.integrations.hooks.deliver import Target
    from orchestra.integrations.hooks.payload import (
        SCHEDULE_TAG,
        SCHEDULED_FOR_TAG,
        build_body,
        encode,
        new_event_id,
    )

    hooks = config.matching(event, status)
    if not hooks:
        return False
    ev = events.Event(name=event, run_id=run_id or "", experiment=schedule.experiment if schedule else "Default",
                      status=status, message=message,
                      project={"uri": schedule.uri if schedule else None, "commit": None,
                               "entry_point": ",".join(schedule.entry_points) if schedule else None},
                      tags={SCHEDULE_TAG: name, SCHEDULED_FOR_TAG: scheduled_for})
    event_id = new_event_id()
    body = encode(build_body(ev, event_id, 1))
    deliveries = [outbox.NewDelivery(Target(h.url, h.name, h.secret_envs, h.allow_http), body) for h in hooks]
    home = orchestra_home()
    outbox.record_event(outbox.open_db(home), event_id=event_id, run_id=run_id, name=event, status=status,
                        stage=None, sequence=1, occurred_at=ev.timestamp, deliveries=deliveries)
    return True


def _config(schedule):
    from orchestra.integrations.hooks import config as cfg

    spec_hooks = None
    uris: tuple[str, ...] = ()
    if schedule is not None:
        uris = tuple(schedule.hooks_uris)
        local = Path(schedule.uri.split("#", 1)[0])
        if "://" not in schedule.uri and local.is_dir():
            spec_hooks = cfg.project_hooks(local)
    return cfg.load(spec_hooks, uris)
