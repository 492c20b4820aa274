"""hooks.sqlite as older orchestra versions wrote it: the ``deliveries`` table, migrated once.

Before the shared outbox, each delivery was a row of its own ``deliveries`` table (with
``attempts`` referring to it). The first open by this version copies every row (pending or not,
with its id, so the attempts log and ``orchestra hooks log`` keep their history) into
``messages``, rebuilds ``attempts`` to refer to the messages, and replaces the old table by the
``deliveries`` view, all in one transaction. A pending delivery claimed by a process that is
gone is taken over as before.
"""

from __future__ import annotations

import sqlite3

from orchestra.integrations.outbox.messages import has_table
from orchestra.store import db

# The deliveries as the old table showed them (``orchestra hooks`` and tests read it).
DELIVERIES_VIEW = """
CREATE VIEW IF NOT EXISTS deliveries AS SELECT id, ref AS event_id, subject AS hook_name, destination AS url,
    COALESCE(json_extract(route, '$.secret_envs'), '[]') AS secret_envs,
    COALESCE(json_extract(route, '$.allow_http'), 0) AS allow_http, payload AS body, state, attempts, next_at,
    claimed_pid, last_status, last_error, updated_at
FROM messages;
"""

_ATTEMPTS = """
CREATE TABLE attempts_migrated (
    delivery_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    at REAL NOT NULL,
    status_code INTEGER,
    error TEXT,
    latency_ms INTEGER,
    answer TEXT
)"""


def migrate(conn: sqlite3.Connection) -> None:
    """Move an old ``deliveries`` table into ``messages`` (a no-op on a current file)."""
    if not has_table(conn, "deliveries"):
        return
    with db.immediate(conn):
        if not has_table(conn, "deliveries"):  # another process was first
            return
        conn.execute(
            "INSERT INTO messages (id, lane, destination, ref, subject, kind, route, payload, state, attempts,"
            " next_at, claimed_pid, last_status, last_error, created_at, updated_at)"
            " SELECT d.id, d.url, d.url, d.event_id, d.hook_name, COALESCE(e.name, ''),"
            " json_object('secret_envs', json(d.secret_envs), 'allow_http', json(CASE WHEN d.allow_http"
            " THEN 'true' ELSE 'false' END)), d.body, d.state, d.attempts, d.next_at, d.claimed_pid,"
            " d.last_status, d.last_error, COALESCE(e.created_at, d.updated_at), d.updated_at"
            " FROM deliveries d LEFT JOIN events e ON e.id = d.event_id"
        )
        conn.execute(_ATTEMPTS)
        conn.execute("INSERT INTO attempts_migrated SELECT delivery_id, attempt, at, status_code, error, latency_ms,"
                     " answer FROM attempts WHERE delivery_id IN (SELECT id FROM messages)")
        conn.execute("DROP TABLE attempts")
        conn.execute("ALTER TABLE attempts_migrated RENAME TO attempts")
        conn.execute("CREATE INDEX IF NOT EXISTS attempts_delivery ON attempts(delivery_id)")
        conn.execute("DROP TABLE deliveries")
        conn.execute(DELIVERIES_VIEW)
