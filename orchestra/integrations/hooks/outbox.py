"""The webhook outbox, ``ORCHESTRA_HOME/hooks.sqlite``: the shared message queue plus the webhook tables.

A *delivery* is one (event, hook) pair, stored as one outbox message: lane and destination are
the hook's URL (one POST in flight per receiver, receivers independent of each other), ``ref``
is the event id (the ``webhook-id``), ``subject`` the hook name, ``kind`` the event name,
``payload`` the exact body that is signed, and ``route`` what else the hook needs (its secret
variable names and ``allow_http``, never a secret). The webhook's own tables: ``events``,
``attempts`` (every attempt, for ``orchestra hooks log``) and ``disabled_hooks`` (receivers that
answered HTTP 410). The ``deliveries`` view shows deliveries as they were stored before the
shared queue, for readers of the file. :mod:`orchestra.integrations.hooks.legacy` migrates a file
written by an older orchestra.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from orchestra.integrations.hooks.deliver import Target
from orchestra.integrations.hooks.legacy import DELIVERIES_VIEW, migrate
from orchestra.integrations.outbox import messages
from orchestra.integrations.outbox.model import Message, NewMessage, Outcome, State
from orchestra.store import db

DB_NAME = "hooks"
PENDING = State.PENDING
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
CREATE TABLE IF NOT EXISTS attempts (
    delivery_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
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
""" + DELIVERIES_VIEW


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """A delivery to insert with its event."""

    target: Target
    body: bytes


def box(home: Path | None = None) -> messages.Outbox:
    """The webhook outbox of ``home`` (None: the current ORCHESTRA_HOME)."""
    return messages.Outbox(DB_NAME, home, SCHEMA, migrate)


def open_db(home: Path | None = None) -> sqlite3.Connection:
    """This thread's connection to ``hooks.sqlite`` (created with its schema)."""
    return box(home).conn()


def db_path(home: Path) -> Path:
    """Where the outbox of ``home`` lives (it may not exist yet)."""
    return home / f"{DB_NAME}.sqlite"


transaction = db.immediate  # BEGIN IMMEDIATE … COMMIT (connections are in autocommit mode)


def route_of(target: Target) -> str:
    """What a message remembers of its hook besides URL and name (never the secret)."""
    return json.dumps({"secret_envs": list(target.secret_envs), "allow_http": target.allow_http})


def target_of(message: Message) -> Target:
    """The hook a claimed message goes to."""
    route = json.loads(message.route or "{}")
    return Target(message.destination, message.subject, tuple(route.get("secret_envs") or ()),
                  bool(route.get("allow_http")))


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
        messages.add(conn, [NewMessage(d.target.url, d.target.url, event_id, d.target.name, name, d.body,
                                       route_of(d.target)) for d in deliveries], now)


def record_attempt(conn: sqlite3.Connection, message: Message, outcome: Outcome, state: State) -> None:
    """The attempts log (and the disabled list on HTTP 410), in the transaction finishing the attempt."""
    now = time.time()
    conn.execute(
        "INSERT INTO attempts (delivery_id, attempt, at, status_code, error, latency_ms, answer)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (message.id, message.attempt, now, outcome.status_code, outcome.error, outcome.latency_ms, outcome.answer),
    )
    if state == State.DISABLED:
        conn.execute(
            "INSERT OR REPLACE INTO disabled_hooks (url, name, disabled_at, reason) VALUES (?, ?, ?, ?)",
            (message.destination, message.subject, now, outcome.error or "HTTP 410"),
        )


def disable_known(conn: sqlite3.Connection) -> None:
    """Pending deliveries to a hook disabled by HTTP 410 end ``disabled`` without a request."""
    conn.execute(
        "UPDATE messages SET state = 'disabled', next_at = NULL, updated_at = ?,"
        " last_error = 'hook disabled after HTTP 410' WHERE state = 'pending' AND claimed_pid IS NULL"
        " AND destination IN (SELECT url FROM disabled_hooks)", (time.time(),),
    )


def pending_count(conn: sqlite3.Connection) -> int:
    """Deliveries not yet delivered, dead or disabled."""
    return messages.pending_count(conn)


def make_due(conn: sqlite3.Connection) -> None:
    """Every pending delivery may be tried now (``orchestra hooks retry``), except those in flight."""
    messages.make_due(conn)


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
    with transaction(conn):
        urls = messages.reopen(conn, event_id)
        conn.executemany("DELETE FROM disabled_hooks WHERE url = ?", [(u,) for u in set(urls)])
    return urls


def find_event(conn: sqlite3.Connection, event_id: str) -> sqlite3.Row | None:
    """The event row with this id, or None."""
    return conn.execute("SELECT * FROM events WHERE id = ?", (event_id,)).fetchone()


def past_targets(conn: sqlite3.Connection, name: str) -> list[Target]:
    """The hooks called ``name`` that deliveries went to (newest settings per URL)."""
    rows = conn.execute(
        "SELECT destination, route, MAX(id) FROM messages WHERE subject = ? GROUP BY destination", (name,)
    ).fetchall()
    found = []
    for row in rows:
        route = json.loads(row["route"] or "{}")
        found.append(Target(row["destination"], name, tuple(route.get("secret_envs") or ()),
                            bool(route.get("allow_http"))))
    return found


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
        " e.stage, e.sequence, e.occurred_at, d.subject AS hook_name, d.destination AS url, d.state, d.attempts,"
        " d.next_at, d.last_status, d.last_error FROM messages d JOIN events e ON e.id = d.ref"
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
    """Drop finished deliveries (and events left without any) older than the retention (30 days)."""
    cutoff = time.time() - older_than_s
    with transaction(conn):
        messages.prune(conn, older_than_s)
        conn.execute("DELETE FROM events WHERE created_at < ? AND id NOT IN (SELECT ref FROM messages)", (cutoff,))
