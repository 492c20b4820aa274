"""The run store: runs, stages, metrics, logged models in ``ORCHESTRA_HOME/runs.sqlite`` (WAL).

``models`` holds the MLflow logged models a stage's code logged through the run's tracking
endpoint (one JSON body per model: name, type, params, tags, its files' prefix in the stage's
manifest); a LOADED stage reads those of the stage it was loaded from. Stores written before the
table existed gain it on open (``CREATE TABLE IF NOT EXISTS``) and read back with no models.

Every state change is one short transaction, so concurrent ``orchestra run`` processes on one
home interleave safely and a killed process leaves at worst a RUNNING row (with its pid and
host: :func:`running_runs`), which the app's reaper recognises and finishes KILLED.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields

from orchestra.core import settings
from orchestra.core.pids import hostname
from orchestra.core.randomid import hex_id
from orchestra.core.errors import RunNotFoundError
from orchestra.core.records import LoadedFrom, Metric, RunRecord, StageRecord, StageUpdate, pipeline_metrics
from orchestra.core.status import RunStatus, StageStatus
from orchestra.store.candidates import CANDIDATE_COLUMNS, Candidate, Stored, candidate
from orchestra.store.db import connect, immediate
from orchestra.store.models import stage_models

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    experiment TEXT NOT NULL,
    status TEXT NOT NULL,
    start_time REAL NOT NULL,
    end_time REAL,
    project_uri TEXT,
    targets TEXT NOT NULL DEFAULT '[]',
    params TEXT NOT NULL DEFAULT '{}',
    tags TEXT NOT NULL DEFAULT '{}',
    pid INTEGER,
    host TEXT,
    message TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_start ON runs(start_time);
CREATE TABLE IF NOT EXISTS stages (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    cache_key TEXT,
    components TEXT NOT NULL DEFAULT '{}',
    env_key TEXT,
    command TEXT,
    exit_code INTEGER,
    start_time REAL,
    end_time REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    manifest TEXT,
    manifest_digest TEXT,
    outputs_dir TEXT,
    log_dir TEXT,
    loaded_from_run TEXT,
    loaded_from_stage TEXT,
    metrics TEXT NOT NULL DEFAULT '{}',
    params TEXT NOT NULL DEFAULT '{}',
    tags TEXT NOT NULL DEFAULT '{}',
    pgid INTEGER,
    message TEXT,
    PRIMARY KEY (run_id, name)
);
CREATE INDEX IF NOT EXISTS stages_by_key ON stages(cache_key, status);
CREATE INDEX IF NOT EXISTS stages_by_name ON stages(name, end_time);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    stage TEXT NOT NULL,
    key TEXT NOT NULL,
    value REAL NOT NULL,
    step INTEGER NOT NULL DEFAULT 0,
    timestamp REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS metrics_by_run ON metrics(run_id, stage);
CREATE TABLE IF NOT EXISTS models (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    stage TEXT NOT NULL,
    model_id TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (run_id, stage, model_id)
);
CREATE TABLE IF NOT EXISTS objects (
    sha256 TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    stat TEXT NOT NULL
);
"""

# The stage statuses with published, intact-at-the-time outputs that a later run may load, as SQL.
_WITH_OUTPUTS = ", ".join(f"'{status}'" for status in StageStatus if status.has_outputs)
_JSON_COLUMNS = frozenset({"components", "manifest", "metrics", "params", "tags", "targets"})
_UPDATE_FIELDS = tuple(f.name for f in fields(StageUpdate))


def new_run_id() -> str:
    """32 hex characters, like MLflow's run ids."""
    return hex_id(16)


def db() -> sqlite3.Connection:
    return connect("runs", SCHEMA)


def exists() -> bool:
    """Whether the store has been created (asking creates nothing, unlike ``db()``)."""
    return (settings.home() / "runs.sqlite").is_file()


def transaction() -> immediate:
    return immediate(db())


def _dump(value: Any) -> str:
    if type(value) is Stored:  # read from the store: written back as it was read
        return value.text
    return json.dumps(value, sort_keys=True, default=str)


def create_run(run_id: str, *, experiment: str, project_uri: str, targets: Sequence[str],
               params: Mapping[str, Any], tags: Mapping[str, str], stages: Iterable[str]) -> None:
    """Insert a RUNNING run and its PENDING stages in one transaction."""
    now = time.time()
    with transaction() as conn:
        conn.execute(
            "INSERT INTO runs (run_id, experiment, status, start_time, project_uri, targets, params, tags, pid, host)"
            " VALUES (?, ?, 'RUNNING', ?, ?, ?, ?, ?, ?, ?)",
            (run_id, experiment, now, project_uri, _dump(list(targets)), _dump(dict(params)), _dump(dict(tags)),
             os.getpid(), hostname()),
        )
        conn.executemany("INSERT INTO stages (run_id, name, status) VALUES (?, ?, 'PENDING')",
                         [(run_id, name) for name in stages])


def _stage_columns(update: StageUpdate) -> dict[str, Any]:
    """The stage columns ``update`` sets (fields left None are left out), serialised."""
    columns: dict[str, Any] = {}
    for key in _UPDATE_FIELDS:
        value = getattr(update, key)
        if value is None or key == "models":
            continue
        if key == "loaded_from":
            columns["loaded_from_run"], columns["loaded_from_stage"] = value.run_id, value.stage
        elif key in _JSON_COLUMNS:
            columns[key] = _dump(value)
        elif key == "status":
            columns[key] = str(value)
        else:
            columns[key] = value
    return columns


def _update_stage(conn: sqlite3.Connection, run_id: str, name: str, update: StageUpdate) -> None:
    if update.models:
        conn.executemany("INSERT OR REPLACE INTO models (run_id, stage, model_id, body) VALUES (?, ?, ?, ?)",
                         [(run_id, name, str(m["model_id"]), _dump(dict(m))) for m in update.models])
    columns = _stage_columns(update)
    if columns:
        assignments = ", ".join(f"{key} = ?" for key in columns)
        conn.execute(f"UPDATE stages SET {assignments} WHERE run_id = ? AND name = ?",  # noqa: S608
                     (*columns.values(), run_id, name))


def update_stage(run_id: str, name: str, update: StageUpdate) -> None:
    """Write the fields ``update`` sets on one stage row (None fields stay as stored)."""
    with transaction() as conn:
        _update_stage(conn, run_id, name, update)


def update_stages(run_id: str, updates: Sequence[tuple[str, StageUpdate]]) -> None:
    """Several stage updates in one transaction (a warm run loads hundreds of stages at once)."""
    if not updates:
        return
    with transaction() as conn:
        for name, update in updates:
            _update_stage(conn, run_id, name, update)


def update_run(run_id: str, **fields: Any) -> None:
    columns = ", ".join(f"{key} = ?" for key in fields)
    values = [_dump(v) if key in _JSON_COLUMNS and v is not None else v for key, v in fields.items()]
    with transaction() as conn:
        conn.execute(f"UPDATE runs SET {columns} WHERE run_id = ?", (*values, run_id))  # noqa: S608


def merge_run_tags(run_id: str, tags: Mapping[str, str]) -> None:
    with transaction() as conn:
        row = conn.execute("SELECT tags FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        merged = {**json.loads(row["tags"]), **tags}
        conn.execute("UPDATE runs SET tags = ? WHERE run_id = ?", (_dump(merged), run_id))


def finish_run(run_id: str, status: RunStatus | str, message: str | None = None) -> None:
    """Set the run's final status; stages still PENDING/RUNNING get a matching terminal state."""
    now = time.time()
    stage_status = StageStatus.KILLED if status == RunStatus.KILLED else StageStatus.SKIPPED
    with transaction() as conn:
        conn.execute("UPDATE runs SET status = ?, end_time = ?, message = ? WHERE run_id = ?",
                     (str(status), now, message, run_id))
        conn.execute("UPDATE stages SET status = 'KILLED', end_time = ? WHERE run_id = ? AND status = 'RUNNING'",
                     (now, run_id))
        conn.execute("UPDATE stages SET status = ? WHERE run_id = ? AND status = 'PENDING'", (str(stage_status), run_id))


def log_metrics(run_id: str, stage: str, metrics: Sequence[Metric]) -> None:
    """Append logged metric values (a metric's history is every value logged, in order)."""
    rows = [(run_id, stage, m.key, m.value, m.step, m.timestamp) for m in metrics]
    if rows:
        with transaction() as conn:
            conn.executemany("INSERT INTO metrics (run_id, stage, key, value, step, timestamp) VALUES (?, ?, ?, ?, ?, ?)",
                             rows)


@dataclass(frozen=True, slots=True)
class RunProcess:
    """A RUNNING run and the orchestra process recorded as running it."""

    run_id: str
    pid: int | None
    host: str | None


def running_runs(host: str | None = None) -> list[RunProcess]:
    """The RUNNING runs (of processes on ``host``, if given)."""
    rows = db().execute("SELECT run_id, pid, host FROM runs WHERE status = 'RUNNING' AND (? IS NULL OR host = ?)",
                        (host, host)).fetchall()
    return [RunProcess(row["run_id"], row["pid"], row["host"]) for row in rows]


_BY_KEY = (f"SELECT {CANDIDATE_COLUMNS} FROM stages WHERE cache_key = ? AND status = ? AND manifest IS NOT NULL"
           " ORDER BY end_time DESC LIMIT ?")


def find_by_key(cache_key: str, limit: int = 5) -> list[Candidate]:
    """Reusable stages with this cache key, FINISHED ones first, newest first (one index search per
    status, a candidate's columns only: ``IN`` with ``SELECT *`` and a sort cost ~5× more per stage)."""
    conn = db()
    rows = conn.execute(_BY_KEY, (cache_key, "FINISHED", limit)).fetchall()
    if len(rows) < limit:
        rows += conn.execute(_BY_KEY, (cache_key, "LOADED", limit - len(rows))).fetchall()
    return [candidate(row) for row in rows]


def stage_of(run_id: str, name: str) -> Candidate | None:
    """The stage ``name`` of ``run_id`` if it has published outputs."""
    row = db().execute(f"SELECT * FROM stages WHERE run_id = ? AND name = ? AND status IN ({_WITH_OUTPUTS})"  # noqa: S608
                       " AND manifest IS NOT NULL", (run_id, name)).fetchone()
    return candidate(row) if row else None


def latest_for_stage(name: str, project_uri: str | None = None) -> Candidate | None:
    """The newest reusable record of a stage of this project (to explain why a key changed)."""
    row = db().execute(  # noqa: S608 - a constant
        f"SELECT stages.* FROM stages JOIN runs USING (run_id) WHERE name = ? AND stages.status IN ({_WITH_OUTPUTS})"
        " AND manifest IS NOT NULL AND (? IS NULL OR runs.project_uri = ?) ORDER BY stages.end_time DESC LIMIT 1",
        (name, project_uri, project_uri)).fetchone()
    return candidate(row) if row else None


def resolve_run_id(run_id: str) -> str:
    """Full id for ``run_id`` (a unique prefix of 6+ characters is accepted).

    Raises:
        RunNotFoundError: no such run, or an ambiguous prefix.
    """
    text = run_id.strip().lower()
    if not text or any(c not in "0123456789abcdef" for c in text) or len(text) > 32:
        raise RunNotFoundError(f"invalid run id {run_id!r}", hint="the 32-hex id or a unique prefix of 6+ characters, such as the 8 the output shows; see 'orchestra runs list'")
    if len(text) == 32:
        if db().execute("SELECT 1 FROM runs WHERE run_id = ?", (text,)).fetchone():
            return text
    elif len(text) >= 6:
        rows = db().execute("SELECT run_id FROM runs WHERE run_id LIKE ? LIMIT 2", (text + "%",)).fetchall()
        if len(rows) == 1:
            return rows[0]["run_id"]
        if len(rows) > 1:
            raise RunNotFoundError(f"run id prefix {run_id!r} is ambiguous", hint="give more characters")
    raise RunNotFoundError(f"no run {run_id!r} in this ORCHESTRA_HOME", hint="see 'orchestra runs list'")


def get_run(run_id: str) -> RunRecord:
    """The run's record (``to_json()`` is the JSON of ``orchestra runs show --json``)."""
    full = resolve_run_id(run_id)
    conn = db()
    run = conn.execute("SELECT * FROM runs WHERE run_id = ?", (full,)).fetchone()
    stages = conn.execute("SELECT * FROM stages WHERE run_id = ? ORDER BY rowid", (full,)).fetchall()
    return _run_record(run, stages, stage_models(conn, stages))


def run_metrics(run_id: str) -> dict[str, float]:
    """The run's pipeline metrics (``get_run(run_id).metrics``, reading only the stages' metrics)."""
    rows = db().execute("SELECT name, metrics FROM stages WHERE run_id = ? ORDER BY rowid", (run_id,)).fetchall()
    return pipeline_metrics((row["name"], _object(row["metrics"])) for row in rows)


def _run_record(run: sqlite3.Row, stages: Sequence[sqlite3.Row],
                models: Mapping[str, tuple[Mapping[str, Any], ...]] | None = None) -> RunRecord:
    return RunRecord(
        run_id=run["run_id"], experiment=run["experiment"], status=RunStatus(run["status"]),
        start_time=run["start_time"], end_time=run["end_time"], project_uri=run["project_uri"],
        targets=tuple(json.loads(run["targets"])), params=json.loads(run["params"]),
        tags=json.loads(run["tags"]), message=run["message"],
        stages=tuple(_stage_record(row, (models or {}).get(row["name"], ())) for row in stages),
    )


def _object(text: str) -> Any:
    return {} if text == "{}" else json.loads(text)  # (most metrics, params and tags: a run reads hundreds)


def _stage_record(row: sqlite3.Row, models: tuple[Mapping[str, Any], ...] = ()) -> StageRecord:
    return StageRecord(
        name=row["name"], status=StageStatus(row["status"]), exit_code=row["exit_code"],
        start_time=row["start_time"], end_time=row["end_time"], attempts=row["attempts"],
        metrics=_object(row["metrics"]), params=_object(row["params"]), tags=_object(row["tags"]),
        log_dir=row["log_dir"], outputs_dir=row["outputs_dir"], cache_key=row["cache_key"],
        components=_object(row["components"]), env_key=row["env_key"], command=row["command"],
        manifest=json.loads(row["manifest"]) if row["manifest"] else None,
        loaded_from=LoadedFrom(row["loaded_from_run"], row["loaded_from_stage"]) if row["loaded_from_run"] else None,
        message=row["message"], models=models,
    )


def list_runs(experiment: str | None = None, status: str | None = None, limit: int = 100) -> list[RunRecord]:
    """Runs newest first, with their stage records."""
    where, args = [], []
    if experiment:
        where.append("experiment = ?")
        args.append(experiment)
    if status:
        where.append("status = ?")
        args.append(status.upper())
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    conn = db()
    runs = conn.execute(f"SELECT * FROM runs {clause} ORDER BY start_time DESC LIMIT ?", (*args, limit)).fetchall()  # noqa: S608
    records = []
    for run in runs:
        stages = conn.execute("SELECT * FROM stages WHERE run_id = ? ORDER BY rowid", (run["run_id"],)).fetchall()
        records.append(_run_record(run, stages, stage_models(conn, stages)))
    return records


def delete_runs(run_ids: Sequence[str]) -> None:
    with transaction() as conn:
        conn.executemany("DELETE FROM metrics WHERE run_id = ?", [(r,) for r in run_ids])
        conn.executemany("DELETE FROM models WHERE run_id = ?", [(r,) for r in run_ids])
        conn.executemany("DELETE FROM stages WHERE run_id = ?", [(r,) for r in run_ids])
        conn.executemany("DELETE FROM runs WHERE run_id = ?", [(r,) for r in run_ids])


def referenced_objects() -> set[str]:
    refs: set[str] = set()
    for row in db().execute("SELECT manifest FROM stages WHERE manifest IS NOT NULL"):
        for entry in json.loads(row["manifest"]).values():
            refs.add(entry["sha256"])
    return refs


def object_stats(keys: Sequence[str]) -> dict[str, str]:
    """The recorded stat token of each known object among ``keys`` (one query per 500)."""
    found: dict[str, str] = {}
    keys = list(keys)
    for start in range(0, len(keys), 500):
        chunk = keys[start:start + 500]
        marks = ",".join("?" * len(chunk))
        for row in db().execute(f"SELECT sha256, stat FROM objects WHERE sha256 IN ({marks})", chunk):  # noqa: S608
            found[row["sha256"]] = row["stat"]
    return found


def record_objects(rows: Sequence[tuple[str, int, str]]) -> None:
    if rows:
        with transaction() as conn:
            conn.executemany("INSERT OR REPLACE INTO objects (sha256, size, stat) VALUES (?, ?, ?)", rows)


def forget_objects(shas: Sequence[str]) -> None:
    if shas:
        with transaction() as conn:
            conn.executemany("DELETE FROM objects WHERE sha256 = ?", [(s,) for s in shas])
