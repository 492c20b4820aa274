"""The webhook outbox in ``ORCHESTRA_HOME/hooks.sqlite``: events, deliveries, attempts.

A delivery is one (event, hook) pair. Its state is ``pending`` until it ends ``delivered``,
``dead`` or ``disabled``. ``next_at`` is when it may next be tried; it is stored, so a retry
schedule survives the process that started it. A sender *claims* a row before posting by
moving ``next_at`` one lease ahead and recording its pid, in one conditional UPDATE — so two
processes never send the same attempt, and a killed sender's claim is taken over as soon as its
pid is gone (or its lease runs out).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from orchestra.integrations.hooks.deliver import DEAD, DELIVERED, DISABLED, Outcome, Target
from orchestra.core.pids import pid_alive
from orchestra.store import db

DB_NAME = "hooks"
PENDING = "pending"
RETENTION_S = 30 * 24 * 3600

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    run_id TEXT,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    stage TEXT,
    sequence INTEGER NOT NULL,
    occurred_at REAL NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS events_run ON events(run_id, sequence);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    hook_name TEXT NOT NULL,
    url TEXT NOT NULL,
    secret_envs TEXT NOT NULL DEFAULT '[]',
    allow_http INTEGER NOT NULL DEFAULT 0,
    body BLOB NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'delivered', 'dead', 'disabled')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL,
    claimed_pid INTEGER,
    last_status INTEGER,
    last_error TEXT,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries(state, next_at);
CREATE INDEX IF NOT EXISTS deliveries_event ON deliveries(event_id);
CREATE TABLE IF NOT EXISTS attempts (
    delivery_id INTEGER NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    at REAL NOT NULL,
    status_code INTEGER,
    error TEXT,
    latency_ms INTEGER,
    answer TEXT
);
CREATE INDEX IF NOT EXISTS attempts_delivery ON attempts(delivery_id);
CREATE TABLE IF NOT EXISTS disabled_hooks (
    url TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    disabled_at REAL NOT NULL,
    reason TEXT NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """A delivery to insert with its event."""

    target: Target
    body: bytes


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery claimed for one attempt."""

    id: int
    event_id: str
    event_name: str
    target: Target
    body: bytes
    attempt: int


def open_db(home: Path | None = None) -> sqlite3.Connection:
    """This thread's connection to ``hooks.sqlite`` (created with its schema)."""
    return db.connect(DB_NAME, SCHEMA, home)


def db_path(home: Path) -> Path:
    """Where the outbox of ``home`` lives (it may not exist yet)."""
    return home / f"{DB_NAME}.sqlite"


transaction = db.immediate  # BEGIN IMMEDIATE … COMMIT (connections are in autocommit mode)


def record_event(conn: sqlite3.Connection, *, event_id: str, run_id: str | None, name: str, status: str,
                 stage: str | None, sequence: int, occurred_at: float,
                 deliveries: Sequence[NewDelivery]) -> None:
    """Insert an event and its deliveries (due now) in one transaction."""
    now = time.time()
    with transaction(conn):
        conn.execute(
            "INSERT INTO events (id, run_id, name, status, stage, sequence, occurred_at, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (event_id, run_id, name, status, stage, sequence, occurred_at, now),
        )
        conn.executemany(
            "INSERT INTO deliveries (event_id, hook_name, url, secret_envs, allow_http, body, next_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(event_id, d.target.name, d.target.url, json.dumps(list(d.target.secret_envs)),
              int(d.target.allow_http), d.body, now, now) for d in deliveries],
        )


def disable_known(conn: sqlite3.Connection) -> None:
    """Pending deliveries to a hook disabled by HTTP 410 end ``disabled`` without a request."""
    conn.execute(
        "UPDATE deliveries SET state = 'disabled', next_at = NULL, updated_at = ?,"
        " last_error = 'hook disabled after HTTP 410' WHERE state = 'pending' AND claimed_pid IS NULL"
        " AND url IN (SELECT url FROM disabled_hooks)", (time.time(),),
    )


def due(conn: sqlite3.Connection, now: float, busy_urls: set[str]) -> list[sqlite3.Row]:
    """Pending deliveries that may be claimed now, oldest first, at most one per free URL.

    FIFO per URL is what keeps a receiver's events in (run, sequence) order while nothing fails.
    """
    rows = conn.execute(
        "SELECT id, url, next_at, claimed_pid FROM deliveries WHERE state = 'pending'"
        " AND (next_at <= ? OR (claimed_pid IS NOT NULL AND claimed_pid != ?)) ORDER BY id",
        (now, os.getpid()),
    ).fetchall()
    chosen: list[sqlite3.Row] = []
    seen = set(busy_urls)
    for row in rows:
        if row["url"] in seen:
            continue
        if row["next_at"] > now and pid_alive(row["claimed_pid"]):
            continue  # another live sender is on it
        seen.add(row["url"])
        chosen.append(row)
    return chosen


def claim(conn: sqlite3.Connection, row: sqlite3.Row, lease_s: float) -> Claimed | None:
    """Take one delivery for one attempt, or None when another sender got it first."""
    now = time.time()
    cursor = conn.execute(
        "UPDATE deliveries SET attempts = attempts + 1, next_at = ?, claimed_pid = ?, updated_at = ?"
        " WHERE id = ? AND state = 'pending' AND next_at = ? AND claimed_pid IS ?",
        (now + lease_s, os.getpid(), now, row["id"], row["next_at"], row["claimed_pid"]),
    )
    if cursor.rowcount != 1:
        return None
    full = conn.execute(
        "SELECT d.*, e.name AS event_name FROM deliveries d JOIN events e ON e.id = d.event_id WHERE d.id = ?",
        (row["id"],),
    ).fetchone()
    target = Target(full["url"], full["hook_name"], tuple(json.loads(full["secret_envs"])), bool(full["allow_http"]))
    return Claimed(full["id"], full["event_id"], full["event_name"], target, bytes(full["body"]), full["attempts"])


def finish(conn: sqlite3.Connection, claimed: Claimed, outcome: Outcome, next_delay_s: float | None) -> str:
    """Record an attempt and move the delivery on; returns its new state.

    ``next_delay_s`` is the policy's answer for a retryable outcome (None = out of retries).
    """
    now = time.time()
    if outcome.verdict == DELIVERED:
        state, next_at = DELIVERED, None
    elif outcome.verdict == DISABLED:
        state, next_at = DISABLED, None
    elif outcome.verdict == DEAD or next_delay_s is None:
        state, next_at = DEAD, None
    else:
        state, next_at = PENDING, now + next_delay_s
    with transaction(conn):
        conn.execute(
            "INSERT INTO attempts (delivery_id, attempt, at, status_code, error, latency_ms, answer)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (claimed.id, claimed.attempt, now, outcome.status_code, outcome.error, outcome.latency_ms,
             outcome.answer),
        )
        conn.execute(
            "UPDATE deliveries SET state = ?, next_at = ?, claimed_pid = NULL, last_status = ?, last_error = ?,"
            " updated_at = ? WHERE id = ?",
            (state, next_at, outcome.status_code, outcome.error, now, claimed.id),
        )
        if state == DISABLED:
            conn.execute(
                "INSERT OR REPLACE INTO disabled_hooks (url, name, disabled_at, reason) VALUES (?, ?, ?, ?)",
                (claimed.target.url, claimed.target.name, now, outcome.error or "HTTP 410"),
            )
    return state


def next_wake(conn: sqlite3.Connection, busy_urls: set[str]) -> float | None:
    """The earliest ``next_at`` of a pending delivery to a free URL (None when nothing is pending)."""
    rows = conn.execute(
        "SELECT url, MIN(next_at) AS next_at FROM deliveries WHERE state = 'pending' GROUP BY url"
    ).fetchall()
    times = [row["next_at"] for row in rows if row["url"] not in busy_urls and row["next_at"] is not None]
    return min(times) if times else None


def pending_count(conn: sqlite3.Connection) -> int:
    """Deliveries not yet delivered, dead or disabled."""
    return int(conn.execute("SELECT COUNT(*) FROM deliveries WHERE state = 'pending'").fetchone()[0])


def disabled_hooks(conn: sqlite3.Connection) -> dict[str, sqlite3.Row]:
    """URL → row of hooks disabled by HTTP 410."""
    return {row["url"]: row for row in conn.execute("SELECT * FROM disabled_hooks")}


def enable(conn: sqlite3.Connection, url: str) -> bool:
    """Forget that ``url`` answered 410; True when it was disabled."""
    return conn.execute("DELETE FROM disabled_hooks WHERE url = ?", (url,)).rowcount > 0


def redeliver(conn: sqlite3.Connection, event_id: str) -> list[str]:
    """Make every delivery of an event pending again, due now (same ``webhook-id``).

    Returns the URLs involved; hooks disabled by 410 among them are enabled again, since asking
    for a redelivery is asking to try that receiver.
    """
    now = time.time()
    with transaction(conn):
        urls = [row["url"] for row in conn.execute("SELECT url FROM deliveries WHERE event_id = ?", (event_id,))]
        conn.execute(
            "UPDATE deliveries SET state = 'pending', next_at = ?, claimed_pid = NULL, updated_at = ?"
            " WHERE event_id = ?", (now, now, event_id),
        )
        conn.executemany("DELETE FROM disabled_hooks WHERE url = ?", [(u,) for u in set(urls)])
    return urls


def find_event(conn: sqlite3.Connection, event_id: str) -> sqlite3.Row | None:
    """The event row with this id, or None."""
    return conn.execute("SELECT * FROM events WHERE id = ?", (event_id,)).fetchone()


def log_rows(conn: sqlite3.Connection, *, run_id: str | None = None, failed: bool = False,
             event_id: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    """Deliveries with their event, newest last, for ``orchestra hooks log``.

    ``failed`` keeps dead and disabled deliveries and pending ones that already failed once.
    """
    where, args = ["1 = 1"], []
    if run_id:
        where.append("e.run_id LIKE ?")
        args.append(run_id + "%")
    if event_id:
        where.append("e.id = ?")
        args.append(event_id)
    if failed:
        where.append("(d.state IN ('dead', 'disabled') OR (d.state = 'pending' AND d.attempts > 0))")
    rows = conn.execute(
        "SELECT * FROM (SELECT d.id AS delivery_id, e.id AS event_id, e.run_id, e.name AS event, e.status,"
        " e.stage, e.sequence, e.occurred_at, d.hook_name, d.url, d.state, d.attempts, d.next_at,"
        " d.last_status, d.last_error FROM deliveries d JOIN events e ON e.id = d.event_id"
        f" WHERE {' AND '.join(where)} ORDER BY d.id DESC LIMIT ?) ORDER BY delivery_id",
        (*args, limit),
    ).fetchall()
    return [dict(row) for row in rows]


def attempts_of(conn: sqlite3.Connection, delivery_id: int) -> list[dict[str, Any]]:
    """Every attempt of one delivery, in order (the answer text stays in the store)."""
    rows = conn.execute(
        "SELECT attempt, at, status_code, error, latency_ms FROM attempts WHERE delivery_id = ? ORDER BY attempt",
        (delivery_id,),
    ).fetchall()
    return [dict(row) for row in rows]


def prune(conn: sqlite3.Connection, older_than_s: float = RETENTION_S) -> None:
    """Drop finished deliveries (and events left without any) older than the retention (§8.4: 30 days)."""
    cutoff = time.time() - older_than_s
    with transaction(conn):
        conn.execute("DELETE FROM deliveries WHERE state != 'pending' AND updated_at < ?", (cutoff,))
        conn.execute(
            "DELETE FROM events WHERE created_at < ? AND id NOT IN (SELECT event_id FROM deliveries)", (cutoff,)
        )
