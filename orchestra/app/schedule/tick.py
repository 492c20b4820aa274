"""One evaluation of every schedule at ``now``: compute due slots, apply catch-up and overlap,
claim each slot in the store, launch what this process claimed.

Per schedule, everything between reading the watermark and moving it (the due slots, their
decisions, the claim rows) happens in one ``BEGIN IMMEDIATE`` transaction, and each claim is an
INSERT on UNIQUE(schedule, slot): two processes ticking at once never both decide a slot, and a
slot is never decided without leaving a row. Launching happens after the commit; a process that
dies in between leaves a ``launching`` row that the next tick marks ``launch_failed``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol, Sequence

from orchestra.core.pids import hostname
from orchestra.core import log as logger
from orchestra.app import reaper
from orchestra.app.schedule import cron, store
from orchestra.app.schedule.model import Schedule, jitter_offset
from orchestra.core.pids import pid_alive as alive

log = logger.get(__name__)

# A slot claimed within this many seconds of its fire time is on time, not missed: a daemon wakes
# at most 60 s apart and system cron runs `run-due` once a minute.
ON_TIME_S = 90.0
MAX_LATENESS_S = 24 * 3600.0  # catchup latest: never start a slot older than a day
MAX_CATCHUP = 5  # catchup all: at most this many missed slots are run
MAX_LISTED = 500  # missed slots recorded one by one per tick; older ones are summed up in one row
MAX_EVENTS = 20  # schedule_skipped webhooks per schedule and tick
LOOKBACK_S = 8 * 24 * 3600.0  # after a longer downtime, slots before this are noted, not enumerated
LAUNCH, MISSED = "launch", "missed"


@dataclass(frozen=True, slots=True)
class Slot:
    """One nominal fire time of a schedule."""

    at: datetime  # aware, in the schedule's zone
    fire_at: float  # unix seconds: nominal + the slot's fixed jitter

    @property
    def key(self) -> str:
        return cron.utc_key(self.at)

    @property
    def local(self) -> str:
        return cron.iso(self.at)


@dataclass(frozen=True, slots=True)
class Decision:
    """What a tick decided for one due slot: launch it, or record it missed (and why)."""

    slot: Slot
    action: str  # LAUNCH | MISSED
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one tick did to one slot (for the CLI, the events and the tests)."""

    schedule: str
    slot: str  # local ISO time
    state: str  # launched | pending | skipped | missed | launch_failed
    firing_id: int
    reason: str | None = None
    pid: int | None = None


@dataclass
class TickReport:
    """What one scheduler tick did, and when the next one is due."""

    outcomes: list[Outcome] = field(default_factory=list)
    next_fire_at: float | None = None  # earliest future fire time of any active schedule
    waiting: bool = False  # queued slots wait for a run to end: tick again soon

    def states(self, state: str) -> list[Outcome]:
        return [o for o in self.outcomes if o.state == state]


class Launcher(Protocol):
    """Starts the run of a claimed firing (a row dict) and returns (pid, log path).

    Raises any exception when it cannot start; the firing is then ``launch_failed``. A launcher
    may also have ``release(pid)``, called once the launch is recorded (the run may go on).
    """

    def launch(self, firing: dict[str, Any]) -> tuple[int, str]: ...


def due_slots(schedule: Schedule, watermark: float, now: float) -> tuple[list[Slot], tuple[Slot, int] | None]:
    """Slots after ``watermark`` whose fire time (with jitter) has come, oldest first.

    At most :data:`MAX_LISTED` are returned, from at most :data:`LOOKBACK_S` back. When older
    ones went by too, the second value is (the first of them, how many; -1 = not counted), so
    the caller records one ``missed`` row for all of them instead of none.
    """
    floor = max(watermark, now - LOOKBACK_S)
    slots: list[Slot] = []
    dropped: list[Slot] = []
    count = 0
    if floor > watermark:
        first = schedule.expr.next_times(datetime.fromtimestamp(watermark, tz=timezone.utc), 1)
        if first and first[0].timestamp() <= floor:
            dropped.append(Slot(first[0], first[0].timestamp()))
            count = -1
    for moment in schedule.expr.times_after(datetime.fromtimestamp(floor, tz=timezone.utc)):
        nominal = moment.timestamp()
        if nominal > now:
            break
        fire_at = nominal + jitter_offset(schedule.name, cron.utc_key(moment), schedule.jitter)
        if fire_at > now:
            break  # not yet; later slots wait behind it so slots are always decided in order
        slots.append(Slot(moment, fire_at))
        if len(slots) > MAX_LISTED * 2:
            slots = _trim(slots, dropped)
            count = -1 if count < 0 else count + MAX_LISTED
    if len(slots) > MAX_LISTED:
        extra = len(slots) - MAX_LISTED
        slots = _trim(slots, dropped)
        count = -1 if count < 0 else count + extra
    return slots, ((dropped[0], count) if dropped else None)


def _trim(slots: list[Slot], dropped: list[Slot]) -> list[Slot]:
    if not dropped:
        dropped.append(slots[0])
    return slots[-MAX_LISTED:]


def decide(schedule: Schedule, slots: Sequence[Slot], now: float) -> list[Decision]:
    """Apply ``catchup`` to due slots (pure). Every slot gets exactly one decision."""
    if not slots:
        return []
    late = [s for s in slots if now - s.fire_at > ON_TIME_S]
    if schedule.catchup == "none":
        return [Decision(s, MISSED, "no scheduler was running at the time (catchup none)") if s in late
                else Decision(s, LAUNCH) for s in slots]
    if schedule.catchup == "all":
        keep = slots[-MAX_CATCHUP:]
        return [Decision(s, LAUNCH) if s in keep
                else Decision(s, MISSED, f"catchup all runs at most the {MAX_CATCHUP} newest missed slots")
                for s in slots]
    newest = slots[-1]
    period = schedule.expr.period_after(newest.at).total_seconds()
    limit = max(ON_TIME_S, min(period, MAX_LATENESS_S))
    decisions = [Decision(s, MISSED, f"superseded by the newer slot {newest.local} (catchup latest)")
                 for s in slots[:-1]]
    if now - newest.fire_at <= limit:
        decisions.append(Decision(newest, LAUNCH))
    else:
        decisions.append(Decision(newest, MISSED, f"older than {_span(limit)} when the scheduler ran (catchup latest)"))
    return decisions


def _span(seconds: float) -> str:
    return f"{seconds / 3600:g} h" if seconds >= 3600 else f"{seconds:g} s"


def _alive(pid: int | None, host: str | None) -> bool:
    if pid is None:
        return False
    if host and host != hostname():
        return True  # another machine's process: cannot tell, assume it runs
    return pid == os.getpid() or alive(pid)


def is_active(row: Any) -> bool:
    """Could this open firing still have its run going?"""
    if row["state"] == "launching":
        return _alive(row["claimer_pid"], row["host"])
    if not _alive(row["pid"], row["host"]):
        return False
    started = row["pid_start"]
    # Same pid, other start time: the run process is gone and the pid was reused.
    return not (started and row["host"] == hostname() and store.process_start(row["pid"]) not in (None, started))


def reconcile(now: float) -> list[int]:
    """Close firings whose run process is gone without reporting (killed -9, crashed).

    Returns the ids closed. The run store is reaped first, so a run whose orchestra died shows
    KILLED rather than RUNNING.
    """
    conn = store.db()
    stale = [row for row in store.open_firings(conn) if not is_active(row)]
    if not stale:
        return []

    reaper.reap_stale_runs()
    closed = []
    for row in stale:
        if row["state"] == "launching":
            store.launch_failed(row["id"], "the scheduler process exited before starting the run", now)
        else:
            found = store.find_run(row["schedule"], row["scheduled_local"])
            if found:
                store.finish(row["id"], run_id=found[0], run_status=found[1], now=now)
            else:
                store.launch_failed(row["id"], f"the run process exited before creating a run (log: {row['log_path']})",
                                    now)
        closed.append(row["id"])
    return closed


def tick(now_dt: datetime, launcher: Launcher, *, names: Sequence[str] | None = None,
         notify: bool = True) -> TickReport:
    """Evaluate every (or the named) non-paused schedule at ``now_dt`` and launch what is due.

    Args:
        now_dt: "now" (aware); ``run-due --at`` and the tests pass their own.
        launcher: starts claimed runs.
        names: only these schedules.
        notify: send ``schedule_fired`` / ``schedule_skipped`` webhooks.
    """
    now = now_dt.timestamp()
    report = TickReport()
    reconcile(now)
    pid = os.getpid()
    conn = store.db()
    busy = {row["schedule"] for row in conn.execute(
        "SELECT DISTINCT schedule FROM firings WHERE state = 'pending' OR (state IN ('launching', 'launched')"
        " AND ended_at IS NULL)")}
    for stored in store.all_schedules():
        if names is not None and stored.schedule.name not in names:
            continue
        if stored.paused:
            continue
        # Cheap pre-check without the write lock: the listing's watermark can only be older than
        # the current one, so "nothing due" from it is also true of the current one.
        if stored.schedule.name not in busy and not due_slots(stored.schedule, stored.watermark, now)[0]:
            continue
        try:
            _tick_one(stored.schedule.name, now, pid, launcher, report, notify)
        except Exception as exc:  # noqa: BLE001 - one broken schedule must not stop the others
            log.warning("schedule %s: tick failed: %s", stored.schedule.name, exc, exc_info=True)
    report.next_fire_at = next_fire_at(now, names)
    return report


def _tick_one(name: str, now: float, pid: int, launcher: Launcher, report: TickReport, notify: bool) -> None:
    to_launch: list[int] = []
    recorded: list[Outcome] = []
    with store.transaction() as conn:
        row = conn.execute("SELECT * FROM schedules WHERE name = ?", (name,)).fetchone()
        if row is None or row["paused"]:
            return  # removed or paused by another process since the listing
        schedule = Schedule.from_json(json.loads(row["definition"]))
        slots, dropped = due_slots(schedule, row["watermark"], now)
        decisions = decide(schedule, slots, now)
        if dropped is not None:
            first, count = dropped
            what = f"{count} slot(s)" if count > 0 else "every slot"
            reason = (f"no scheduler was running: {what} from here to {slots[0].local if slots else 'now'}"
                      " missed (not listed one by one)")
            firing_id = store.insert_firing(conn, schedule=schedule, slot_key=first.key, slot_local=first.local,
                                            fire_at=first.fire_at, now=now, state="missed", reason=reason,
                                            claimer_pid=pid)
            if firing_id is not None:
                recorded.append(Outcome(name, first.local, "missed", firing_id, reason))
        active = sum(1 for r in store.open_firings(conn, name) if is_active(r))
        queued = len(store.pending(conn, name))
        backlog = sum(1 for d in decisions if d.action == LAUNCH) > 1
        for decision in decisions:
            slot = decision.slot
            reason = decision.reason
            if decision.action == MISSED:
                state = "missed"
            elif schedule.overlap == "allow":
                state = "launching"
            elif active or queued:
                if backlog or (schedule.overlap == "queue" and not queued):
                    state, reason = "pending", "waiting for the schedule's running run to end"
                elif schedule.overlap == "queue":
                    state, reason = "skipped", "overlap: a run is running and another slot is already queued"
                else:
                    state, reason = "skipped", "overlap: the previous run of this schedule is still running"
            else:
                state = "launching"
            firing_id = store.insert_firing(conn, schedule=schedule, slot_key=slot.key, slot_local=slot.local,
                                            fire_at=slot.fire_at, now=now, state=state, reason=reason,
                                            claimer_pid=pid)
            if firing_id is None:
                continue  # another process decided this slot
            if state == "launching":
                active += 1
                to_launch.append(firing_id)
            elif state == "pending":
                queued += 1
                recorded.append(Outcome(name, slot.local, "pending", firing_id, reason))
            else:
                recorded.append(Outcome(name, slot.local, state, firing_id, reason))
        if slots:
            store.set_watermark(conn, name, slots[-1].at.timestamp())
        # A queued slot whose blocker ended starts now (oldest first, one at a time unless allowed).
        if not active and queued and not to_launch:
            first = store.pending(conn, name)[0]
            conn.execute("UPDATE firings SET state = 'launching', claimer_pid = ?, host = ? WHERE id = ?",
                         (pid, hostname(), first["id"]))
            to_launch.append(first["id"])
    report.outcomes.extend(recorded)
    if _has_pending(name):
        report.waiting = True
    skipped = [o for o in recorded if o.state in ("skipped", "missed")]
    # After a long downtime hundreds of slots are missed at once: receivers (often chat rooms) get
    # the summary row and the newest ones; every slot is still in `schedule history`.
    for outcome in ([o for o in skipped if "not listed one by one" in (o.reason or "")] + skipped[-MAX_EVENTS:]
                    if len(skipped) > MAX_EVENTS else skipped):
        if notify:
            _emit(outcome, "schedule_skipped", "overlap" if outcome.state == "skipped" else "missed")
    for firing_id in to_launch:
        report.outcomes.append(_launch(firing_id, launcher, notify))


def _has_pending(name: str) -> bool:
    return bool(store.pending(store.db(), name))


def _launch(firing_id: int, launcher: Launcher, notify: bool) -> Outcome:
    import time

    row = store.firing(firing_id)
    try:
        pid, log_path = launcher.launch(row)
    except Exception as exc:  # noqa: BLE001 - recorded, never fatal to the scheduler
        reason = f"cannot start the run process: {exc}"
        store.launch_failed(firing_id, reason, time.time())
        outcome = Outcome(row["schedule"], row["scheduled_local"], "launch_failed", firing_id, reason)
        if notify:
            _emit(outcome, "schedule_fired", "launch_failed")
        return outcome
    try:
        store.mark_launched(firing_id, pid, log_path, time.time())
        outcome = Outcome(row["schedule"], row["scheduled_local"], "launched", firing_id, None, pid)
        if notify:
            _emit(outcome, "schedule_fired", "launched")
    finally:
        release = getattr(launcher, "release", None)
        if release is not None:
            release(pid)
    return outcome


def _emit(outcome: Outcome, event: str, status: str) -> None:
    from orchestra.app.schedule import notify

    notify.emit(outcome.schedule, event, status, firing_id=outcome.firing_id, scheduled_for=outcome.slot,
                message=outcome.reason)


def next_fire_at(now: float, names: Sequence[str] | None = None) -> float | None:
    """The earliest fire time after ``now`` over active schedules (None when none will fire)."""
    best: float | None = None
    for stored in store.all_schedules():
        if stored.paused or (names is not None and stored.schedule.name not in names):
            continue
        schedule = stored.schedule
        start = datetime.fromtimestamp(max(stored.watermark, now - MAX_LATENESS_S), tz=timezone.utc)
        for moment in schedule.expr.times_after(start):
            fire_at = moment.timestamp() + jitter_offset(schedule.name, cron.utc_key(moment), schedule.jitter)
            if moment.timestamp() > stored.watermark:
                best = fire_at if best is None else min(best, fire_at)
                break
    return best
