"""The runs table as SQL: a parsed filter (:mod:`orchestra.core.runfilter`), a sort key and a page.

Filtering, sorting and counting run inside SQLite (its JSON functions read params, tags and
stage metrics), so only the rows of one page are decoded in Python: a store of 10,000 runs
answers in tens of milliseconds. A metric is named ``STAGE.KEY`` (split at the first dot).
Used read-only by the UI; ``orchestra runs list --filter`` can use the same function.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any, Sequence

from orchestra.core.errors import BadInputError
from orchestra.core.runfilter import Clause

_ATTRIBUTE_SQL = {"status": "runs.status", "run_id": "runs.run_id", "experiment": "runs.experiment",
                  "start_time": "runs.start_time", "end_time": "runs.end_time", "project_uri": "runs.project_uri",
                  "run_name": "json_extract(runs.tags, '$.\"mlflow.runName\"')",
                  "duration": "(COALESCE(runs.end_time, (julianday('now') - 2440587.5) * 86400.0) - runs.start_time)"}
_NOT_NULL = ("status", "run_id", "experiment", "start_time")
_COLUMNS = "runs.run_id, runs.experiment, runs.status, runs.start_time, runs.end_time, runs.project_uri, " \
           "runs.params, runs.tags, runs.pid, runs.host, runs.message"
_OPS = {"=": "=", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


@dataclass(frozen=True, slots=True)
class RunsPage:
    """Rows of one page (sqlite3.Row of the runs table), with how many runs there are and match."""

    total: int
    matched: int
    rows: Sequence[sqlite3.Row]


def _json_path(key: str) -> str:
    return '$."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _glob(like: str) -> str:
    """A LIKE pattern (``%``, ``_``) as a GLOB pattern, GLOB's own wildcards taken literally."""
    special = {"*": "[*]", "?": "[?]", "[": "[[]", "%": "*", "_": "?"}
    return "".join(special.get(ch, ch) for ch in like)


class _Args(dict):
    """Named SQL arguments: ``add(value)`` gives ``:aN`` (an expression may use one many times)."""

    def add(self, value: Any) -> str:
        name = f"a{len(self)}"
        self[name] = value
        return f":{name}"


def _expr(entity: str, key: str, args: _Args) -> str:
    """SQL for the value of ``entity.key`` of the run in ``runs`` (NULL when it has none)."""
    if entity == "attributes":
        return _ATTRIBUTE_SQL[key]
    if entity in ("params", "tags"):
        return f"json_extract(runs.{entity}, {args.add(_json_path(key))})"
    stage, _, metric = key.partition(".")
    if not metric:
        raise BadInputError(f"metric {key!r} needs its stage: metrics.STAGE.KEY", where="--filter",
                            hint="e.g. metrics.evaluate.rmse")
    return (f"(SELECT json_extract(s.metrics, {args.add(_json_path(metric))}) FROM stages s"
            f" WHERE s.run_id = runs.run_id AND s.name = {args.add(stage)})")


def _condition(clause: Clause, args: _Args) -> str:
    value = _expr(clause.entity, clause.key, args)
    if clause.op == "LIKE":  # case-sensitive, as MLflow's: SQLite's LIKE ignores case, GLOB does not
        return f"{value} GLOB {args.add(_glob(str(clause.value)))}"
    if clause.op == "ILIKE":
        return f"lower({value}) GLOB {args.add(_glob(str(clause.value).lower()))}"
    want = args.add(clause.value)
    if clause.op == "!=":
        cast = "REAL" if isinstance(clause.value, float) else "TEXT"
        return f"({value} IS NULL OR CAST({value} AS {cast}) != {want})"  # a run without the key differs
    cast = "REAL" if isinstance(clause.value, float) else "TEXT"
    return f"CAST({value} AS {cast}) {_OPS[clause.op]} {want}"


def _order(sort: str, descending: bool, args: _Args) -> str:
    entity, _, key = sort.partition(".")
    direction = "DESC" if descending else "ASC"
    if entity in ("metrics", "params") and key:
        value = _expr(entity, key, args)
    elif sort in _ATTRIBUTE_SQL:
        value = _ATTRIBUTE_SQL[sort]
    else:
        raise BadInputError(f"cannot sort by {sort!r}", where="sort",
                            hint=f"one of {', '.join(_ATTRIBUTE_SQL)}, metrics.STAGE.KEY or params.KEY")
    if entity == "params":  # numbers as numbers, then other text as text
        return (f" ORDER BY ({value}) IS NULL, CASE WHEN ({value}) GLOB '[0-9.-]*' THEN CAST(({value}) AS REAL) END"
                f" {direction}, ({value}) {direction}, runs.start_time DESC")
    if entity == "metrics":
        value = f"CAST(({value}) AS REAL)"
    if sort in _NOT_NULL:  # a plain ORDER BY on the column: start_time walks its index
        return f" ORDER BY {value} {direction}" + (", runs.start_time DESC" if sort != "start_time" else "")
    return f" ORDER BY ({value}) IS NULL, {value} {direction}, runs.start_time DESC"


def select_runs(conn: sqlite3.Connection, clauses: Sequence[Clause], sort: str = "start_time",
                descending: bool = True, offset: int = 0, limit: int = 200) -> RunsPage:
    """The page of runs matching ``clauses``, ordered by ``sort`` (runs without the key last)."""
    args = _Args()
    where = (" WHERE " + " AND ".join(_condition(c, args) for c in clauses)) if clauses else ""
    order = _order(sort, descending, args)
    total = conn.execute("SELECT count(*) FROM runs").fetchone()[0]
    matched = conn.execute(f"SELECT count(*) FROM runs{where}", args).fetchone()[0] if clauses else total  # noqa: S608
    args["limit"], args["offset"] = limit, offset
    rows = conn.execute(f"SELECT {_COLUMNS} FROM runs{where}{order} LIMIT :limit OFFSET :offset", args).fetchall()  # noqa: S608
    return RunsPage(total, matched, rows)
