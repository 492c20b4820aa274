"""The mirror's durable queue in ``ORCHESTRA_HOME/mirror.sqlite``: targets (id map) and operations.

A *target* is one MLflow run orchestra mirrors to: the parent of an orchestra run (``stage =
''``) or the child of one stage. Its MLflow run id is filled in once the server created it, so
the table is also the orchestra ↔ MLflow id map (the MLflow runs carry ``orchestra.run_id`` too).
An *op* is one thing to send to a target (params, metrics+tags, an upload, a status); ops of a
run are sent strictly in id order, so a status never overtakes the metrics before it. Rows are
written by the event listener in the engine's thread and consumed by the sender's thread; a row
stays ``pending`` until the server accepted it, so nothing is lost when the server is down or
orchestra is killed: ``orchestra runs sync RUN_ID`` sends what is left.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from orchestra.store import db

DB_NAME = "mirror"
PENDING, DONE, DEAD = "pending", "done", "dead"
PARENT = ""  # the stage name of a run's parent target

SCHEMA = """
CREATE TABLE IF NOT EXISTS targets (
    uri TEXT NOT NULL,
    run_id TEXT NOT NULL,
    stage TEXT NOT NULL,
    experiment TEXT NOT NULL,
    experiment_id TEXT,
    mlflow_run_id TEXT,
    artifact_uri TEXT,
    run_name TEXT,
    start_time REAL NOT NULL,
    tags TEXT NOT NULL DEFAULT '{}',
    create_attempts INTEGER NOT NULL DEFAULT 0,
    outputs_uri TEXT,
    PRIMARY KEY (uri, run_id, stage)
);
CREATE INDEX IF NOT EXISTS targets_by_mlflow ON targets(mlflow_run_id);
CREATE TABLE IF NOT EXISTS ops (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uri TEXT NOT NULL,
    run_id TEXT NOT NULL,
    stage TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('params', 'batch', 'upload', 'status')),
    payload TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL,
    last_error TEXT,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS ops_by_run ON ops(uri, run_id, state, id);
"""


@dataclass(frozen=True, slots=True)
class Target:
    uri: str
    run_id: str
    stage: str
    experiment: str
    experiment_id: str | None
    mlflow_run_id: str | None
    artifact_uri: str | None
    run_name: str | None
    start_time: float
    tags: Mapping[str, str]
    create_attempts: int


@dataclass(frozen=True, slots=True)
class Op:
    id: int
    uri: str
    run_id: str
    stage: str
    kind: str
    payload: Mapping[str, Any]
    attempts: int
    next_at: float


def open_db(home: Path | None = None) -> sqlite3.Connection:
    """This thread's connection to ``mirror.sqlite``."""
    return db.connect(DB_NAME, SCHEMA, home)


transaction = db.immediate  # BEGIN IMMEDIATE … COMMIT: ops of a stage end are queued at once


def add_target(conn: sqlite3.Connection, uri: str, run_id: str, stage: str, *, experiment: str,
               start_time: float, tags: Mapping[str, str], run_name: str | None) -> None:
    """Register a target (kept as is when it exists: a retried stage keeps its child run)."""
    conn.execute(
        "INSERT OR IGNORE INTO targets (uri, run_id, stage, experiment, run_name, start_time, tags)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (uri, run_id, stage, experiment, run_name, start_time, json.dumps(dict(tags), sort_keys=True)),
    )


def _target(row: sqlite3.Row) -> Target:
    return Target(row["uri"], row["run_id"], row["stage"], row["experiment"], row["experiment_id"],
                  row["mlflow_run_id"], row["artifact_uri"], row["run_name"], row["start_time"],
                  json.loads(row["tags"]), row["create_attempts"])


def get_target(conn: sqlite3.Connection, uri: str, run_id: str, stage: str) -> Target | None:
    row = conn.execute("SELECT * FROM targets WHERE uri = ? AND run_id = ? AND stage = ?",
                       (uri, run_id, stage)).fetchone()
    return _target(row) if row else None


def targets_of(conn: sqlite3.Connection, run_id: str, uri: str | None = None) -> list[Target]:
    rows = conn.execute("SELECT * FROM targets WHERE run_id = ? AND (? IS NULL OR uri = ?) ORDER BY rowid",
                        (run_id, uri, uri)).fetchall()
    return [_target(row) for row in rows]


def note_create_attempt(conn: sqlite3.Connection, target: Target) -> None:
    conn.execute("UPDATE targets SET create_attempts = create_attempts + 1 WHERE uri = ? AND run_id = ? AND stage = ?",
                 (target.uri, target.run_id, target.stage))


def set_created(conn: sqlite3.Connection, target: Target, *, experiment_id: str, mlflow_run_id: str,
                artifact_uri: str) -> None:
    conn.execute(
        "UPDATE targets SET experiment_id = ?, mlflow_run_id = ?, artifact_uri = ? WHERE uri = ? AND run_id = ?"
        " AND stage = ?", (experiment_id, mlflow_run_id, artifact_uri, target.uri, target.run_id, target.stage))


def set_outputs_uri(conn: sqlite3.Connection, target: Target, outputs_uri: str) -> None:
    """Record where the target's outputs are on the server (once its manifest is uploaded)."""
    conn.execute("UPDATE targets SET outputs_uri = ? WHERE uri = ? AND run_id = ? AND stage = ?",
                 (outputs_uri, target.uri, target.run_id, target.stage))


def outputs_uri(conn: sqlite3.Connection, uri: str, run_id: str, stage: str) -> str | None:
    """The artifact URI holding the uploaded outputs of a stage mirrored to ``uri``, if any."""
    row = conn.execute("SELECT outputs_uri FROM targets WHERE uri = ? AND run_id = ? AND stage = ?",
                       (uri, run_id, stage)).fetchone()
    return row["outputs_uri"] if row else None


def find_by_mlflow_id(conn: sqlite3.Connection, mlflow_run_id: str) -> Target | None:
    row = conn.execute("SELECT * FROM targets WHERE mlflow_run_id = ?", (mlflow_run_id,)).fetchone()
    return _target(row) if row else None


def enqueue(conn: sqlite3.Connection, uri: str, run_id: str, stage: str, ops: list[tuple[str, Mapping[str, Any]]]) -> None:
    """Append ops for one target, due now, in one transaction."""
    now = time.time()
    with transaction(conn):
        conn.executemany(
            "INSERT INTO ops (uri, run_id, stage, kind, payload, next_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(uri, run_id, stage, kind, json.dumps(payload, sort_keys=True, default=str), now, now)
             for kind, payload in ops],
        )


def head(conn: sqlite3.Connection, uri: str, run_id: str) -> Op | None:
    """The oldest pending op of a run: the only one that may be sent next."""
    row = conn.execute("SELECT * FROM ops WHERE uri = ? AND run_id = ? AND state = 'pending' ORDER BY id LIMIT 1",
                       (uri, run_id)).fetchone()
    if row is None:
        return None
    return Op(row["id"], row["uri"], row["run_id"], row["stage"], row["kind"], json.loads(row["payload"]),
              row["attempts"], row["next_at"])


def finish(conn: sqlite3.Connection, op: Op, state: str, error: str | None = None) -> None:
    conn.execute("UPDATE ops SET state = ?, attempts = attempts + 1, last_error = ?, updated_at = ? WHERE id = ?",
                 (state, error, time.time(), op.id))


def postpone(conn: sqlite3.Connection, op: Op, delay_s: float, error: str) -> None:
    now = time.time()
    conn.execute("UPDATE ops SET attempts = attempts + 1, next_at = ?, last_error = ?, updated_at = ? WHERE id = ?",
                 (now + delay_s, error, now, op.id))


def make_due(conn: sqlite3.Connection, uri: str, run_id: str) -> None:
    """Every pending op of a run may be tried now (sync, or the last try before exit)."""
    conn.execute("UPDATE ops SET next_at = ? WHERE uri = ? AND run_id = ? AND state = 'pending'",
                 (time.time(), uri, run_id))


def counts(conn: sqlite3.Connection, uri: str, run_id: str) -> dict[str, int]:
    rows = conn.execute("SELECT state, COUNT(*) AS n FROM ops WHERE uri = ? AND run_id = ? GROUP BY state",
                        (uri, run_id)).fetchall()
    return {row["state"]: row["n"] for row in rows}


def dead_errors(conn: sqlite3.Connection, uri: str, run_id: str, limit: int = 5) -> list[str]:
    rows = conn.execute("SELECT kind, stage, last_error FROM ops WHERE uri = ? AND run_id = ? AND state = 'dead'"
                        " ORDER BY id LIMIT ?", (uri, run_id, limit)).fetchall()
    return [f"{row['kind']} {row['stage'] or '(run)'}: {row['last_error']}" for row in rows]
