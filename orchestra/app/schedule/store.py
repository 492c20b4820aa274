"""The schedule store: ``ORCHESTRA_HOME/schedules.sqlite`` (definitions, watermarks, firings).

A *firing* is one slot of one schedule, keyed UNIQUE(schedule, scheduled_for) with the slot as a
UTC instant — never a row id (Prefect #18894) — so of two processes evaluating the same slot only
the one whose INSERT succeeds decides it. States:

``pending``       claimed, waiting for an earlier run of the schedule (overlap queue / catch-up)
``launching``     claimed by ``claimer_pid``, its run process about to start
``launched``      the run process ``pid`` started; ``run_id``/``run_status`` filled when it ends
``skipped``       not run: an earlier run was still running (``overlap``)
``missed``        not run: no scheduler was running at the time (``catchup``)
``launch_failed`` the run could not start (bad URI, unreadable project, ...): ``reason`` says why
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from orchestra.app.schedule.model import Schedule
from orchestra.core.pids import hostname
from orchestra.core.errors import BadInputError
from orchestra.store import runs
from orchestra.store.db import connect, immediate

SCHEMA = """
CREATE TABLE IF NOT EXISTS schedules (
    name TEXT PRIMARY KEY,
    definition TEXT NOT NULL,
    digest TEXT NOT NULL,
    paused INTEGER NOT NULL DEFAULT 0,
    watermark REAL NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS firings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    schedule TEXT NOT NULL,
    scheduled_for TEXT NOT NULL,
    scheduled_local TEXT NOT NULL,
    fire_at REAL NOT NULL,
    claimed_at REAL NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'launching', 'launched', 'skipped', 'missed', 'launch_failed')),
    reason TEXT,
    definition_digest TEXT NOT NULL,
    definition TEXT NOT NULL,
    claimer_pid INTEGER,
    host TEXT,
    pid INTEGER,
    pid_start TEXT,
    launched_at REAL,
    ended_at REAL,
    run_id TEXT,
    run_status TEXT,
    log_path TEXT,
    UNIQUE (schedule, scheduled_for)
);
CREATE INDEX IF NOT EXISTS firings_open ON firings(schedule, state, ended_at);
"""

ACTIVE_STATES = ("launching", "launched")


@dataclass(frozen=True, slots=True)
class StoredSchedule:
    """A schedule row: its definition plus the scheduler's state for it."""

    schedule: Schedule
    digest: str
    paused: bool
    watermark: float
    created_at: float
    updated_at: float


def db() -> sqlite3.Connection:
    return connect("schedules", SCHEMA)


def transaction(conn: sqlite3.Connection | None = None) -> immediate:
    """BEGIN IMMEDIATE … COMMIT: one writer at a time across processes (the claim's mutual exclusion)."""
    return immediate(conn or db())


def _row_to_stored(row: sqlite3.Row) -> StoredSchedule:
    return StoredSchedule(Schedule.from_json(json.loads(row["definition"])), row["digest"], bool(row["paused"]),
                          row["watermark"], row["created_at"], row["updated_at"])


def put(schedule: Schedule, *, now: float, replace: bool = False) -> str:
    """Insert or update a definition; returns ``added``, ``updated`` or ``unchanged``.

    A changed definition starts fresh from ``now``: slots before the change belonged to the old
    definition and are neither caught up nor reported missed under the new one.

    Raises:
        BadInputError: the name exists and ``replace`` is false.
    """
    text = json.dumps(schedule.to_json(), sort_keys=True)
    with transaction() as conn:
        row = conn.execute("SELECT digest, definition FROM schedules WHERE name = ?", (schedule.name,)).fetchone()
        if row is None:
            conn.execute("INSERT INTO schedules (name, definition, digest, watermark, created_at, updated_at)"
                         " VALUES (?, ?, ?, ?, ?, ?)", (schedule.name, text, schedule.digest, now, now, now))
            return "added"
        if not replace:
            raise BadInputError(f"schedule '{schedule.name}' already exists",
                                hint="pass --replace to change it, or 'orchestra schedule remove' it first")
        if row["digest"] == schedule.digest:
            return "unchanged"
        conn.execute("UPDATE schedules SET definition = ?, digest = ?, watermark = MAX(watermark, ?), updated_at = ?"
                     " WHERE name = ?", (text, schedule.digest, now, now, schedule.name))
        return "updated"


def get(name: str) -> StoredSchedule:
    """Raises BadInputError naming the known schedules when ``name`` is not one."""
    row = db().execute("SELECT * FROM schedules WHERE name = ?", (name,)).fetchone()
    if row is None:
        names = [r["name"] for r in db().execute("SELECT name FROM schedules ORDER BY name")]
        raise BadInputError(f"no schedule named '{name}'",
                            hint=("schedules: " + ", ".join(names)) if names else "none defined; see 'orchestra schedule add'")
    return _row_to_stored(row)


def all_schedules() -> list[StoredSchedule]:
    return [_row_to_stored(row) for row in db().execute("SELECT * FROM schedules ORDER BY name")]


def remove(name: str) -> None:
    """Forget the definition; its firings stay (history, and the slot keys still block re-firing)."""
    get(name)
    with transaction() as conn:
        conn.execute("DELETE FROM schedules WHERE name = ?", (name,))
        # A queued slot of a removed schedule will never run: say so instead of leaving it pending.
        conn.execute("UPDATE firings SET state = 'skipped', reason = 'schedule removed' WHERE schedule = ?"
                     " AND state = 'pending'", (name,))


def set_paused(name: str, paused: bool, *, now: float) -> bool:
    """Pause or resume; returns False when it already was. Resuming starts from ``now``
    (a paused schedule was stopped on purpose: nothing of the pause is caught up)."""
    current = get(name)
    if current.paused == paused:
        return False
    with transaction() as conn:
        conn.execute("UPDATE schedules SET paused = ?, watermark = CASE WHEN ? THEN watermark ELSE MAX(watermark, ?) END,"
                     " updated_at = ? WHERE name = ?", (int(paused), int(paused), now, now, name))
    return True


def firings(name: str, limit: int = 50) -> list[dict[str, Any]]:
    """Newest first."""
    rows = db().execute("SELECT * FROM firings WHERE schedule = ? ORDER BY scheduled_for DESC, id DESC LIMIT ?",
                        (name, limit)).fetchall()
    return [dict(row) for row in rows]


def firing(firing_id: int) -> dict[str, Any]:
    row = db().execute("SELECT * FROM firings WHERE id = ?", (firing_id,)).fetchone()
    if row is None:
        raise BadInputError(f"no firing {firing_id}")
    return dict(row)


def update_firing(firing_id: int, **fields: Any) -> None:
    columns = ", ".join(f"{key} = ?" for key in fields)
    with transaction() as conn:
        conn.execute(f"UPDATE firings SET {columns} WHERE id = ?", (*fields.values(), firing_id))  # noqa: S608


def mark_launched(firing_id: int, pid: int, log_path: str, now: float) -> None:
    update_firing(firing_id, state="launched", pid=pid, pid_start=process_start(pid), log_path=log_path,
                  launched_at=now)


def process_start(pid: int | None) -> str | None:
    """The kernel's start time of ``pid`` (Linux /proc), so a reused pid is not taken for the run."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b") ", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return None


def finish(firing_id: int, *, run_id: str | None, run_status: str | None, now: float) -> None:
    """The run process ended: record the run it created and how it ended."""
    update_firing(firing_id, run_id=run_id, run_status=run_status, ended_at=now)


def launch_failed(firing_id: int, reason: str, now: float) -> None:
    update_firing(firing_id, state="launch_failed", reason=reason[:1000], ended_at=now)


def open_firings(conn: sqlite3.Connection, name: str | None = None) -> list[sqlite3.Row]:
    """Firings that may still have a live run process (``launching``/``launched``, not ended)."""
    sql = "SELECT * FROM firings WHERE state IN ('launching', 'launched') AND ended_at IS NULL"
    if name is not None:
        return conn.execute(sql + " AND schedule = ? ORDER BY scheduled_for", (name,)).fetchall()
    return conn.execute(sql + " ORDER BY scheduled_for").fetchall()


def pending(conn: sqlite3.Connection, name: str) -> list[sqlite3.Row]:
    return conn.execute("SELECT * FROM firings WHERE schedule = ? AND state = 'pending' ORDER BY scheduled_for",
                        (name,)).fetchall()


def insert_firing(conn: sqlite3.Connection, *, schedule: Schedule, slot_key: str, slot_local: str, fire_at: float,
                  now: float, state: str, reason: str | None, claimer_pid: int) -> int | None:
    """The claim: returns the new row id, or None when another process holds the slot already."""
    cur = conn.execute(
        "INSERT OR IGNORE INTO firings (schedule, scheduled_for, scheduled_local, fire_at, claimed_at, state, reason,"
        " definition_digest, definition, claimer_pid, host) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (schedule.name, slot_key, slot_local, fire_at, now, state, reason, schedule.digest,
         json.dumps(schedule.to_json(), sort_keys=True), claimer_pid, hostname()))
    return cur.lastrowid if cur.rowcount == 1 else None


def set_watermark(conn: sqlite3.Connection, name: str, watermark: float) -> None:
    conn.execute("UPDATE schedules SET watermark = MAX(watermark, ?) WHERE name = ?", (watermark, name))


def counts(name: str) -> dict[str, int]:
    rows = db().execute("SELECT state, COUNT(*) AS n FROM firings WHERE schedule = ? GROUP BY state", (name,))
    return {row["state"]: row["n"] for row in rows}


def last_firing(name: str) -> dict[str, Any] | None:
    row = db().execute("SELECT * FROM firings WHERE schedule = ? AND state != 'missed' ORDER BY scheduled_for DESC"
                       " LIMIT 1", (name,)).fetchone()
    return dict(row) if row else None


def data_version() -> int:
    """Changes whenever another connection commits (cheap change detection for the daemon)."""
    return int(db().execute("PRAGMA data_version").fetchone()[0])


def find_run(name: str, scheduled_local: str) -> tuple[str, str] | None:
    """The run the scheduler tagged with this schedule and slot: (run_id, status), or None."""
    from orchestra.integrations.hooks.payload import SCHEDULE_TAG, SCHEDULED_FOR_TAG

    try:
        row = runs.db().execute(
            "SELECT run_id, status FROM runs WHERE json_extract(tags, ?) = ? AND json_extract(tags, ?) = ?"
            " ORDER BY start_time DESC LIMIT 1",
            (f'$."{SCHEDULE_TAG}"', name, f'$."{SCHEDULED_FOR_TAG}"', scheduled_local)).fetchone()
    except sqlite3.Error:
        return None
    return (row["run_id"], row["status"]) if row else None
