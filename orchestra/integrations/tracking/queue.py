"""The mirror's durable state in ``ORCHESTRA_HOME/mirror.sqlite``: targets (id map) and its outbox.

A *target* is one MLflow run orchestra mirrors to: the parent of an orchestra run (``stage =
''``), the child of one stage, or a sweep's own run (``run_id`` the sweep id, ``stage`` ``__sweep__``),
which its members' parent runs nest under. Its MLflow run id is filled in once the server created it, so
the table is also the orchestra ↔ MLflow id map (the MLflow runs carry ``orchestra.run_id`` too).
An *op* is one thing to send to a target (params, metrics+tags, an upload, a status), stored as
a message of the shared outbox: its lane is the run on that server (ops of a run are sent
strictly in order, so a status never overtakes the metrics before it), its destination the
server, ``ref`` the run id, ``subject`` the stage, ``kind`` the op and ``payload`` its JSON.
Rows are written by the event listener in the engine's thread and sent by the outbox's
dispatcher; an op stays ``pending`` until the server accepted it, so nothing is lost when the
server is down or orchestra is killed: ``orchestra runs sync RUN_ID`` sends what is left. The
``ops`` view shows ops as they were stored before the shared outbox, for readers of the file.

A file written by an older orchestra has an ``ops`` table: on the first open its rows (done ones
too, so ``runs sync`` counts stay right) move into the outbox and the table becomes the view.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from orchestra.integrations.outbox import messages
from orchestra.integrations.outbox.model import Message, NewMessage, State
from orchestra.store import db

DB_NAME = "mirror"
PENDING, DONE, DEAD = State.PENDING, State.DELIVERED, State.DEAD
PARENT = ""  # the stage name of a run's parent target
SWEEP = "__sweep__"  # the stage name of a sweep's own run (its run_id is the sweep id)
SWEEP_TAG = "orchestra.sweep"  # on a member's parent target: its parent run is that sweep's run
SWEEP_RUN_TAG = "orchestra.sweep.run"  # on a sweep's own MLflow run: the sweep id

_OPS_VIEW = """
CREATE VIEW IF NOT EXISTS ops AS SELECT id, destination AS uri, ref AS run_id, subject AS stage, kind, payload,
    CASE state WHEN 'delivered' THEN 'done' ELSE state END AS state, attempts, next_at, last_error, updated_at
FROM messages;
"""

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
""" + _OPS_VIEW


@dataclass(frozen=True, slots=True)
class Target:
    """Where a mirrored operation goes: the server, orchestra's run and stage, the experiment."""

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
    """One claimed op: what the mirror's deliverer sends."""

    id: int
    uri: str
    run_id: str
    stage: str
    kind: str
    payload: Mapping[str, Any]
    attempt: int

    @classmethod
    def of(cls, message: Message) -> Op:
        return cls(message.id, message.destination, message.ref, message.subject, message.kind,
                   json.loads(message.payload), message.attempt)


def lane(uri: str, run_id: str) -> str:
    """The outbox lane of one run mirrored to one server."""
    return f"{run_id}@{uri}"


def box(home: Path | None = None) -> messages.Outbox:
    """The mirror's outbox of ``home`` (None: the current ORCHESTRA_HOME)."""
    return messages.Outbox(DB_NAME, home, SCHEMA, _migrate)


def open_db(home: Path | None = None) -> sqlite3.Connection:
    """This thread's connection to ``mirror.sqlite``."""
    return box(home).conn()


transaction = db.immediate  # BEGIN IMMEDIATE … COMMIT: ops of a stage end are queued at once


def _migrate(conn: sqlite3.Connection) -> None:
    if not messages.has_table(conn, "ops"):
        return
    with transaction(conn):
        if not messages.has_table(conn, "ops"):  # another process was first
            return
        conn.execute(  # the lane as lane() spells it
            "INSERT INTO messages (id, lane, destination, ref, subject, kind, payload, state, attempts, next_at,"
            " last_error, created_at, updated_at) SELECT id, run_id || '@' || uri, uri, run_id, stage, kind, payload,"
            " CASE state WHEN 'done' THEN 'delivered' ELSE state END, attempts, next_at, last_error, updated_at,"
            " updated_at FROM ops"
        )
        conn.execute("DROP TABLE ops")
        conn.execute(_OPS_VIEW)


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


def set_experiment_id(conn: sqlite3.Connection, target: Target, experiment_id: str) -> None:
    """The experiment a target's run is created in, when it is known before creation (--experiment-id)."""
    conn.execute("UPDATE targets SET experiment_id = ? WHERE uri = ? AND run_id = ? AND stage = ?",
                 (experiment_id, target.uri, target.run_id, target.stage))


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
    with transaction(conn):
        messages.add(conn, [NewMessage(lane(uri, run_id), uri, run_id, stage, kind,
                                       json.dumps(payload, sort_keys=True, default=str)) for kind, payload in ops])


def make_due(conn: sqlite3.Connection, uri: str, run_id: str) -> None:
    """Every pending op of a run may be tried now (sync, or the last try before exit)."""
    messages.make_due(conn, [lane(uri, run_id)])


def counts(conn: sqlite3.Connection, uri: str, run_id: str) -> dict[str, int]:
    """State (PENDING, DONE, DEAD) → number of ops of the run."""
    return messages.counts(conn, lane(uri, run_id))


def runs_pending(conn: sqlite3.Connection, uri: str, *, except_run: str | None = None) -> list[str]:
    """Runs with ops still pending for ``uri``, oldest first."""
    rows = conn.execute("SELECT ref, MIN(id) AS first FROM messages WHERE destination = ? AND state = 'pending'"
                        " AND ref IS NOT ? GROUP BY ref ORDER BY first", (uri, except_run)).fetchall()
    return [row["ref"] for row in rows]


def dead_errors(conn: sqlite3.Connection, uri: str, run_id: str, limit: int = 5) -> list[str]:
    rows = conn.execute("SELECT kind, subject, last_error FROM messages WHERE lane = ? AND state = 'dead'"
                        " ORDER BY id LIMIT ?", (lane(uri, run_id), limit)).fetchall()
    return [f"{row['kind']} {row['subject'] or '(run)'}: {row['last_error']}" for row in rows]
