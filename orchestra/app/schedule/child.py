"""The run process of one slot: ``python -m orchestra.app.schedule.child FIRING_ID``.

It reads the definition recorded on the firing (the one the claim saw, even if the schedule has
changed since), calls the same :func:`orchestra.app.session.run` as ``orchestra run`` — git fetched now,
commit recorded, stage caching, hooks — with the schedule's tags and environment, and writes the
run id and final status back on the firing. A run that cannot start (bad URI, unreadable
MLproject, bad parameters) is recorded ``launch_failed`` with the one-line reason.
"""

from __future__ import annotations

import json
import os
import sys
import time

from orchestra.app import session
from orchestra.core import options as o
from orchestra.core.errors import EXIT_FAILED, EXIT_INTERRUPTED, BadInputError, OrchestraError
from orchestra.integrations.hooks import resume_pending


def main(argv: list[str]) -> int:
    from orchestra.app.schedule import store
    from orchestra.app.schedule.model import Schedule
    from orchestra.integrations.hooks.payload import SCHEDULE_TAG, SCHEDULED_FOR_TAG

    firing_id = int(argv[0])
    _wait_for_launcher()
    row = store.firing(firing_id)
    schedule = Schedule.from_json(json.loads(row["definition"]))
    slot = row["scheduled_local"]
    print(f"orchestra: schedule {schedule.name}: slot {slot} ({row['scheduled_for']}) · {schedule.uri}", flush=True)

    try:
        options = o.RunOptions(
            selection=o.Selection(version=schedule.version, entry_points=schedule.entry_points,
                                  params=schedule.params),
            execution=o.ExecutionOptions(extra_env={"ORCHESTRA_SCHEDULE": schedule.name,
                                                    "ORCHESTRA_SCHEDULED_FOR": slot}),
            recording=o.RecordingOptions(experiment=schedule.experiment, tags={
                SCHEDULE_TAG: schedule.name, SCHEDULED_FOR_TAG: slot,
                "orchestra.schedule.digest": row["definition_digest"]}),
            notification=o.NotificationOptions(hooks_uris=schedule.hooks_uris),
        )
        result = session.run(_with_credentials(schedule), options)
    except (OrchestraError, KeyboardInterrupt, Exception) as exc:  # noqa: BLE001 - every failure is recorded
        return _failed(firing_id, schedule, slot, exc)
    store.finish(firing_id, run_id=result.run_id, run_status=result.status, now=time.time())
    return result.exit_code


def _wait_for_launcher() -> None:
    """Until the launcher has recorded this launch (it closes our stdin then; its death closes
    it too), so a launch failure is never recorded before the launch. Then stdin is /dev/null."""
    try:
        if os.isatty(0):
            return
        while os.read(0, 4096):
            pass
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
    except OSError:
        pass  # no stdin at all: nothing to wait on


def _with_credentials(schedule) -> str:
    """The schedule's URI with the credentials of its ``credentials_env`` (in memory only)."""
    from urllib.parse import quote

    if not schedule.credentials_env:
        return schedule.uri
    value = os.environ.pop(schedule.credentials_env, None)  # not handed on to the stages
    if not value or ":" not in value or "://" not in schedule.uri:
        raise BadInputError(f"environment variable {schedule.credentials_env} (the git credentials of schedule "
                            f"{schedule.name}) is not set to USER:PASSWORD in the scheduler's environment")
    user, password = value.split(":", 1)
    scheme, rest = schedule.uri.split("://", 1)
    return f"{scheme}://{quote(user, safe='')}:{quote(password, safe='')}@{rest}"


def _failed(firing_id: int, schedule, slot: str, exc: BaseException) -> int:
    from orchestra.app.schedule import notify, store

    found = store.find_run(schedule.name, slot)
    if found is not None:  # the run existed and then broke: it is a run outcome, not a launch failure
        store.finish(firing_id, run_id=found[0], run_status=found[1], now=time.time())
        print(f"orchestra: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if isinstance(exc, KeyboardInterrupt):
        reason, code = "interrupted before the run started", EXIT_INTERRUPTED
    elif isinstance(exc, OrchestraError):
        reason, code = str(exc), exc.exit_code
    else:
        reason, code = f"{type(exc).__name__}: {exc}", EXIT_FAILED
    store.launch_failed(firing_id, reason, time.time())
    print(f"orchestra: error: {reason}", file=sys.stderr, flush=True)
    if notify.emit(schedule.name, "schedule_fired", "launch_failed", firing_id=firing_id, scheduled_for=slot,
                   message=reason, schedule=schedule):
        resume_pending(o.NotificationOptions().hooks_drain)  # as long as a run's end waits for its hooks
    return code


if __name__ == "__main__":  # pragma: no cover - run as a process by the launcher
    sys.exit(main(sys.argv[1:]))
