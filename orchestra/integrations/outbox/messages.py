"""The durable queue: one ``messages`` table per outbox file, written once for every deliverer.

A message is ``pending`` until it ends ``delivered``, ``dead`` or ``disabled``. ``next_at`` is
when it may next be tried; it is stored, so a retry schedule survives the process that started
it. A sender *claims* a message before an attempt by moving ``next_at`` one lease ahead and
recording its pid, in one conditional UPDATE — so two senders (threads or processes) never make
the same attempt, and a killed sender's claim is taken over as soon as its pid is gone (or its
lease runs out). Within a *lane* at most one message is in flight; with ``ordered`` only a lane's
oldest pending message may go, so a later one waits for an earlier one.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Collection, Sequence

from orchestra.core.layout import orchestra_home
from orchestra.core.pids import pid_alive
from orchestra.integrations.outbox.model import (
    Message,
    NewMessage,
    Outcome,
    State,
    Verdict,
)
from orchestra.store import db

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    lane TEXT NOT NULL,
    destination TEXT NOT NULL,
    ref TEXT NOT NULL,
    subject TEXT NOT NULL,
    kind TEXT NOT NULL,
    route TEXT NOT NULL DEFAULT '{}',
    payload BLOB NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'delivered', 'dead', 'disabled')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL,
    claimed_pid INTEGER,
    last_status INTEGER,
    last_error TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_due ON messages(state, next_at);
CREATE INDEX IF NOT EXISTS messages_lane ON messages(lane, state, id);
CREATE INDEX IF NOT EXISTS messages_ref ON messages(ref);
"""

# Called once per process and file with a fresh connection: brings a file written by an older
# orchestra up to date (each deliverer knows its own old tables).
Migration = Callable[[sqlite3.Connection], None]
RetryAt = Callable[[str], "float | None"]
Recorder = Callable[[sqlite3.Connection, Message, Outcome, State], None]

_migrated: set[str] = set()
_migrating = threading.Lock()


@dataclass(frozen=True, slots=True)
class Outbox:
    """One outbox file: ``<home>/<name>.sqlite`` with the messages schema plus the deliverer's own.

    Attributes:
        name: the file's stem (``hooks``, ``mirror``).
        home: the ORCHESTRA_HOME (None: the current one).
        schema: the deliverer's own tables and views.
        migrate: brings an older file up to date (see :data:`Migration`).
    """

    name: str
    home: Path | None = None
    schema: str = ""
    migrate: Migration | None = None

    @property
    def path(self) -> Path:
        return (self.home or orchestra_home()) / f"{self.name}.sqlite"

    def conn(self) -> sqlite3.Connection:
        """This thread's connection (created with its schema, migrated once per process)."""
        conn = db.connect(self.name, SCHEMA + self.schema, self.home)
        if self.migrate is not None:
            key = str(self.path)
            if key not in _migrated:
                with _migrating:
                    if key not in _migrated:
                        self.migrate(conn)
                        _migrated.add(key)
        return conn


def add(conn: sqlite3.Connection, items: Sequence[NewMessage], now: float | None = None) -> None:
    """Insert messages, due now (inside the caller's transaction when it holds one)."""
    now = time.time() if now is None else now
    conn.executemany(
        "INSERT INTO messages (lane, destination, ref, subject, kind, route, payload, next_at, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(m.lane, m.destination, m.ref, m.subject, m.kind, m.route, m.payload, now, now, now) for m in items],
    )


def _lane_filter(lanes: Collection[str] | None) -> tuple[str, list[str]]:
    if lanes is None:
        return "", []
    return f" AND lane IN ({', '.join('?' * len(lanes)) or 'NULL'})", list(lanes)


def due(conn: sqlite3.Connection, now: float, busy: Collection[str], *, ordered: bool,
        lanes: Collection[str] | None = None, retry_at: RetryAt | None = None) -> list[sqlite3.Row]:
    """Messages that may be claimed now, oldest first, at most one per lane not in ``busy``.

    ``ordered``: only a lane's oldest pending message is a candidate. ``retry_at``: the breaker's
    answer for a destination (a time in the future keeps its messages back).
    """
    where, args = _lane_filter(lanes)
    me = os.getpid()
    if not ordered:  # only rows that can be due: a lane's later rows may go before an earlier one
        where += " AND (next_at <= ? OR (claimed_pid IS NOT NULL AND claimed_pid != ?))"
        args += [now, me]  # type: ignore[list-item]
    rows = conn.execute(
        f"SELECT id, lane, destination, next_at, claimed_pid FROM messages WHERE state = 'pending'{where} ORDER BY id",
        args,
    ).fetchall()
    chosen: list[sqlite3.Row] = []
    seen = set(busy)
    for row in rows:
        if row["lane"] in seen:
            continue
        if ordered:
            seen.add(row["lane"])  # the head decides for its lane
        if not _claimable(row, now, me):
            continue
        blocked_until = retry_at(row["destination"]) if retry_at else None
        if blocked_until is not None and blocked_until > now:
            continue
        seen.add(row["lane"])
        chosen.append(row)
    return chosen


def _claimable(row: sqlite3.Row, now: float, me: int) -> bool:
    if row["next_at"] is not None and row["next_at"] <= now:
        return True
    pid = row["claimed_pid"]
    return pid is not None and pid != me and not pid_alive(pid)  # a dead sender's claim


def claim(conn: sqlite3.Connection, row: sqlite3.Row, lease_s: float) -> Message | None:
    """Take one message for one attempt, or None when another sender got it first."""
    now = time.time()
    cursor = conn.execute(
        "UPDATE messages SET attempts = attempts + 1, next_at = ?, claimed_pid = ?, updated_at = ?"
        " WHERE id = ? AND state = 'pending' AND next_at IS ? AND claimed_pid IS ?",
        (now + lease_s, os.getpid(), now, row["id"], row["next_at"], row["claimed_pid"]),
    )
    if cursor.rowcount != 1:
        return None
    full = conn.execute("SELECT * FROM messages WHERE id = ?", (row["id"],)).fetchone()
    return Message(full["id"], full["lane"], full["destination"], full["ref"], full["subject"], full["kind"],
                   full["payload"], full["route"], full["attempts"])


def finish(conn: sqlite3.Connection, message: Message, outcome: Outcome, next_delay_s: float | None,
           record: Recorder | None = None) -> State:
    """Record an attempt's outcome and move the message on; returns its new state.

    ``next_delay_s`` is the retry policy's answer for a RETRY (None: out of attempts, dead).
    ``record`` is the deliverer's own bookkeeping, written in the same transaction.
    """
    now = time.time()
    next_at: float | None = None
    if outcome.verdict == Verdict.DELIVERED:
        state = State.DELIVERED
    elif outcome.verdict == Verdict.DISABLED:
        state = State.DISABLED
    elif outcome.verdict == Verdict.DEAD or next_delay_s is None:
        state = State.DEAD
    else:
        state, next_at = State.PENDING, now + next_delay_s
    with db.immediate(conn):
        if record is not None:
            record(conn, message, outcome, state)
        conn.execute(
            "UPDATE messages SET state = ?, next_at = ?, claimed_pid = NULL, last_status = ?, last_error = ?,"
            " updated_at = ? WHERE id = ?",
            (str(state), next_at, outcome.status_code, outcome.error, now, message.id),
        )
    return state


def next_wake(conn: sqlite3.Connection, busy: Collection[str], *, ordered: bool,
              lanes: Collection[str] | None = None, retry_at: RetryAt | None = None) -> float | None:
    """When the next message of a lane not in ``busy`` may be tried (None when nothing is pending)."""
    where, args = _lane_filter(lanes)
    if ordered:
        rows = conn.execute(
            "SELECT lane, destination, next_at FROM messages WHERE id IN"
            f" (SELECT MIN(id) FROM messages WHERE state = 'pending'{where} GROUP BY lane)", args,
        ).fetchall()
    else:
        rows = conn.execute(
            "SELECT lane, destination, MIN(next_at) AS next_at FROM messages WHERE state = 'pending'"
            f"{where} GROUP BY lane, destination", args,
        ).fetchall()
    times = []
    for row in rows:
        if row["lane"] in busy or row["next_at"] is None:
            continue
        blocked_until = retry_at(row["destination"]) if retry_at else None
        times.append(max(row["next_at"], blocked_until or 0.0))
    return min(times) if times else None


def pending_count(conn: sqlite3.Connection, lanes: Collection[str] | None = None) -> int:
    """Messages not yet delivered, dead or disabled."""
    where, args = _lane_filter(lanes)
    return int(conn.execute(f"SELECT COUNT(*) FROM messages WHERE state = 'pending'{where}", args).fetchone()[0])


def counts(conn: sqlite3.Connection, lane: str) -> dict[str, int]:
    """State → number of messages of one lane."""
    rows = conn.execute("SELECT state, COUNT(*) AS n FROM messages WHERE lane = ? GROUP BY state", (lane,)).fetchall()
    return {row["state"]: row["n"] for row in rows}


def make_due(conn: sqlite3.Connection, lanes: Collection[str] | None = None) -> None:
    """Every pending message (of ``lanes``) may be tried now, ignoring its backoff; messages a
    sender holds are left alone (that attempt is in flight)."""
    where, args = _lane_filter(lanes)
    conn.execute(f"UPDATE messages SET next_at = ? WHERE state = 'pending' AND claimed_pid IS NULL{where}",
                 [time.time(), *args])


def reopen(conn: sqlite3.Connection, ref: str) -> list[str]:
    """Make every message of ``ref`` pending again, due now; returns their destinations."""
    now = time.time()
    destinations = [row[0] for row in conn.execute("SELECT destination FROM messages WHERE ref = ?", (ref,))]
    conn.execute("UPDATE messages SET state = 'pending', next_at = ?, claimed_pid = NULL, updated_at = ? WHERE ref = ?",
                 (now, now, ref))
    return destinations


def prune(conn: sqlite3.Connection, older_than_s: float) -> None:
    """Drop finished messages last touched longer ago than ``older_than_s``."""
    conn.execute("DELETE FROM messages WHERE state != 'pending' AND updated_at < ?", (time.time() - older_than_s,))


def has_table(conn: sqlite3.Connection, name: str) -> bool:
    """Is there a table (not a view) called ``name``? For migrations."""
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None
