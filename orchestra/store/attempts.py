"""Failed attempts of retried stages, in ``runs.sqlite`` beside the stage rows.

A stage row holds its last attempt; an attempt that failed and was retried is kept here (its
times, status and message), so a timeline can show every attempt. A run without retries writes
nothing here. Rows go with their run (``ON DELETE CASCADE``).
"""

from __future__ import annotations

from orchestra.store import runs
from orchestra.store.db import immediate

SCHEMA = """
CREATE TABLE IF NOT EXISTS attempts (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    stage TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    start_time REAL,
    end_time REAL NOT NULL,
    status TEXT NOT NULL,
    message TEXT,
    PRIMARY KEY (run_id, stage, attempt)
);
"""
_created: set[int] = set()


def record_failed(run_id: str, stage: str, attempt: int, *, start_time: float | None, end_time: float,
                  status: str, message: str | None) -> None:
    """Keep one failed attempt (written when the stage is retried)."""
    conn = runs.db()
    if id(conn) not in _created:
        conn.executescript(SCHEMA)
        _created.add(id(conn))
    with immediate(conn):
        conn.execute("INSERT OR REPLACE INTO attempts (run_id, stage, attempt, start_time, end_time, status, message)"
                     " VALUES (?, ?, ?, ?, ?, ?, ?)", (run_id, stage, attempt, start_time, end_time, status, message))
