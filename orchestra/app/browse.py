"""Read-only use cases over the run store for the web UI, the HTML report and ``orchestra logs``.

Everything here reads through :mod:`orchestra.store.readonly` (SQLite ``mode=ro``): nothing is
written, not even the reaper's KILLED mark. A RUNNING run whose orchestra process is gone (same
host) is *shown* as KILLED. Values returned are plain JSON-able dicts and lists: the UI serves
them as they are and the report inlines them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

from orchestra.core.pids import hostname
from orchestra.core import runfilter
from orchestra.core.errors import BadInputError, RunNotFoundError
from orchestra.core.pids import pid_alive
from orchestra.core.layout import orchestra_home
from orchestra.core.textlog import collapse_cr
from orchestra.mlproject import graph as graphmod
from orchestra.mlproject import load as loadmod
from orchestra.store import readonly, runquery
from orchestra.store.readonly import loads

STREAMS = ("stdout", "stderr")
_RUN_COLUMNS = "run_id, experiment, status, start_time, end_time, project_uri, params, tags, pid, host, message"


def resolve_run_id(run_id: str) -> str:
    """Full id of ``run_id`` (a unique prefix of 6+ characters), read-only."""
    text = run_id.strip().lower()
    if not text or any(c not in "0123456789abcdef" for c in text) or len(text) > 32:
        raise RunNotFoundError(f"invalid run id {run_id!r}", hint="the 32-hex id or a unique prefix of 6+ characters, such as the 8 the output shows; see 'orchestra runs list'")
    if len(text) >= 6:
        rows = readonly.query("runs", "SELECT run_id FROM runs WHERE run_id >= ? AND run_id < ? LIMIT 2",
                              (text, text + "g"))
        if len(rows) == 1:
            return rows[0]["run_id"]
        if len(rows) > 1 and len(text) < 32:
            raise RunNotFoundError(f"run id prefix {run_id!r} is ambiguous", hint="give more characters")
    raise RunNotFoundError(f"no run {run_id!r} in this ORCHESTRA_HOME", hint="see 'orchestra runs list'")


def _shown_status(row: Any, host: str) -> str:
    if row["status"] == "RUNNING" and row["host"] == host and not pid_alive(row["pid"]):
        return "KILLED"  # what the reaper will record; this reader never writes
    return row["status"]


def _run_name(tags: dict[str, Any]) -> str:
    return str(tags.get("mlflow.runName") or tags.get("orchestra.run_name") or "")


def _stage_metrics(rows: Sequence[Any]) -> dict[str, dict[str, float]]:
    """run id → {"stage.metric": latest value} from the stage rows."""
    out: dict[str, dict[str, float]] = {}
    for row in rows:
        metrics = loads(row["metrics"], {})
        if metrics:
            target = out.setdefault(row["run_id"], {})
            for key, value in metrics.items():
                target[f"{row['name']}.{key}"] = value
    return out


def runs_table(filter_text: str = "", sort: str = "start_time", descending: bool = True, offset: int = 0,
               limit: int = 200) -> dict[str, Any]:
    """The runs page: one page of filtered, sorted rows with their param and metric columns.

    ``sort`` is an attribute (``start_time``, ``status``, ``run_name``, ``duration``, ...) or
    ``metrics.STAGE.KEY`` / ``params.KEY``; runs without the key sort last. Filtering and sorting
    run in SQLite (:mod:`orchestra.store.runquery`); only the page's rows are decoded here, and
    the param and metric columns are those of the rows shown.

    Raises:
        BadInputError: a filter outside the grammar of :mod:`orchestra.core.runfilter`, a bad sort key.
    """
    clauses = runfilter.parse(filter_text)
    conn = readonly.connect("runs")
    if conn is None:
        return {"total": 0, "matched": 0, "offset": offset, "rows": [], "param_keys": [], "metric_keys": [],
                "sort": sort, "descending": descending}
    page = runquery.select_runs(conn, clauses, sort, descending, offset, limit)
    ids = [run["run_id"] for run in page.rows]
    metrics = _stage_metrics(conn.execute(  # noqa: S608 - placeholders only
        f"SELECT run_id, name, metrics FROM stages WHERE run_id IN ({readonly.placeholders(ids)})", ids).fetchall()
        if ids else [])
    host, now = hostname(), time.time()
    rows = []
    for run in page.rows:
        tags = loads(run["tags"], {})
        rows.append({"run_id": run["run_id"], "run_name": _run_name(tags), "experiment": run["experiment"],
                     "status": _shown_status(run, host), "start_time": run["start_time"], "end_time": run["end_time"],
                     "duration": (run["end_time"] or now) - run["start_time"] if run["start_time"] else None,
                     "project_uri": run["project_uri"], "params": loads(run["params"], {}),
                     "metrics": metrics.get(run["run_id"], {}), "sweep": tags.get("orchestra.sweep")})
    # the columns of the rows shown (as MLflow's table): no scan of every run's JSON
    param_keys = sorted({key for row in rows for key in row["params"]})
    metric_keys = sorted({key for row in rows for key in row["metrics"]})
    return {"total": page.total, "matched": page.matched, "offset": offset, "rows": rows, "param_keys": param_keys,
            "metric_keys": metric_keys, "sort": sort, "descending": descending}


def run_detail(run_id: str) -> dict[str, Any]:
    """The run page's data: the run, its stages (with status, duration, attempts, artifacts),
    the DAG's edges, and the history of every metric."""
    full = resolve_run_id(run_id)
    run = readonly.query("runs", f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?", (full,))[0]  # noqa: S608
    stage_rows = readonly.query("runs", "SELECT * FROM stages WHERE run_id = ? ORDER BY rowid", (full,))
    tags = loads(run["tags"], {})
    stages = [_stage(row) for row in stage_rows]
    now = time.time()
    return {
        "run_id": full, "run_name": _run_name(tags), "experiment": run["experiment"],
        "status": _shown_status(run, hostname()), "start_time": run["start_time"],
        "end_time": run["end_time"], "project_uri": run["project_uri"], "params": loads(run["params"], {}),
        "tags": tags, "message": run["message"], "stages": stages, "now": now,
        "edges": _edges(run["project_uri"], stage_rows), "attempts": _failed_attempts(full),
        "metric_history": metric_history(full),
    }


def _stage(row: Any) -> dict[str, Any]:
    manifest = loads(row["manifest"], None) or {}
    start, end = row["start_time"], row["end_time"]
    return {
        "name": row["name"], "status": row["status"], "exit_code": row["exit_code"], "start_time": start,
        "end_time": end, "duration": (end - start) if start and end else None, "attempts": row["attempts"],
        "metrics": loads(row["metrics"], {}), "params": loads(row["params"], {}), "tags": loads(row["tags"], {}),
        "cache_key": row["cache_key"], "command": row["command"], "message": row["message"],
        "loaded_from": {"run_id": row["loaded_from_run"], "stage": row["loaded_from_stage"]}
        if row["loaded_from_run"] else None,
        "artifacts": [{"path": path, "size": entry.get("size"), "sha256": entry.get("sha256")}
                      for path, entry in sorted(manifest.items())],
        "has_logs": bool(row["log_dir"]),
    }


def _edges(project_uri: str | None, stage_rows: Sequence[Any]) -> list[list[str]]:
    """``[upstream, stage]`` pairs: from each stage's recorded cache-key components, or, for a
    stage that never got a key (skipped, pending), from the project's MLproject when it is a
    local directory that still exists."""
    names = [row["name"] for row in stage_rows]
    edges: set[tuple[str, str]] = set()
    unknown = False
    for row in stage_rows:
        components = loads(row["components"], {})
        if "upstream" in components:
            edges.update((up, row["name"]) for up in components["upstream"] if up in names)
        else:
            unknown = True
    if unknown and project_uri and Path(project_uri).is_dir():
        try:
            built = graphmod.build(loadmod.load(Path(project_uri)))
            edges.update((up, name) for name in names for up in built.parents.get(name, ()) if up in names)
        except Exception:  # noqa: BLE001 - the project may have changed since; edges then stay as recorded
            pass
    return sorted([up, down] for up, down in edges)


def _failed_attempts(run_id: str) -> list[dict[str, Any]]:
    rows = readonly.query("runs", "SELECT stage, attempt, start_time, end_time, status, message FROM attempts"
                          " WHERE run_id = ? ORDER BY start_time", (run_id,))
    return [dict(row) for row in rows]


def metric_history(run_id: str) -> dict[str, list[list[float]]]:
    """``"stage.metric"`` → ``[[step, value, timestamp], ...]`` in the order they were logged."""
    history: dict[str, list[list[float]]] = {}
    for row in readonly.query("runs", "SELECT stage, key, value, step, timestamp FROM metrics WHERE run_id = ?"
                              " ORDER BY rowid", (run_id,)):
        history.setdefault(f"{row['stage']}.{row['key']}", []).append([row["step"], row["value"], row["timestamp"]])
    return history


def _stage_row(run_id: str, stage: str) -> Any:
    full = resolve_run_id(run_id)
    rows = readonly.query("runs", "SELECT * FROM stages WHERE run_id = ? AND name = ?", (full, stage))
    if not rows:
        names = [r["name"] for r in readonly.query("runs", "SELECT name FROM stages WHERE run_id = ?", (full,))]
        raise BadInputError(f"run {full[:8]} has no stage {stage!r}", hint=f"stages: {', '.join(names) or 'none'}")
    return rows[0]


def log_path(run_id: str, stage: str, stream: str) -> Path | None:
    """The file of ``stream`` (stdout or stderr) of a stage, None if the stage wrote no log."""
    if stream not in STREAMS:
        raise BadInputError(f"unknown log stream {stream!r}", hint="stdout or stderr")
    row = _stage_row(run_id, stage)
    if not row["log_dir"]:
        return None
    path = Path(row["log_dir"]) / f"{stream}.log"
    return path if path.is_file() else None


def stage_log(run_id: str, stage: str, stream: str, max_bytes: int = 2_000_000) -> str:
    """A stage's log text (its last ``max_bytes``) with ``\\r`` progress frames collapsed."""
    path = log_path(run_id, stage, stream)
    if path is None:
        return ""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        if size > max_bytes:
            handle.seek(size - max_bytes)
        data = handle.read()
    return collapse_cr(data.decode("utf-8", errors="replace"))


def artifact_path(run_id: str, stage: str, rel: str) -> Path:
    """The published file ``rel`` of a stage; only names in its manifest are served (no escaping)."""
    row = _stage_row(run_id, stage)
    manifest = loads(row["manifest"], None) or {}
    if rel not in manifest or not row["outputs_dir"]:
        raise BadInputError(f"stage {stage!r} has no output {rel!r}", hint="see the run's artifacts list")
    path = Path(row["outputs_dir"]) / rel
    if not path.is_file():  # a loaded stage whose tree no reader linked yet: the object itself
        entry = manifest[rel]
        sha, executable = str(entry["sha256"]), bool(int(entry["mode"]) & 0o100)
        path = orchestra_home() / "objects" / sha[:2] / (sha[2:] + (".x" if executable else ""))
    if not path.is_file():
        raise BadInputError(f"output {rel!r} of stage {stage!r} is gone", hint="was the run garbage-collected?")
    return path


def compare(run_ids: Sequence[str]) -> dict[str, Any]:
    """N runs side by side: their params (and which differ), latest metrics and metric histories."""
    if len(run_ids) < 2:
        raise BadInputError("compare needs at least two runs", hint="select runs on the runs page")
    runs = [run_detail(run_id) for run_id in run_ids]
    keys = sorted({k for run in runs for k in run["params"]})
    differing = [k for k in keys if len({str(run["params"].get(k)) for run in runs}) > 1]
    for run in runs:
        run["metrics"] = {f"{s['name']}.{k}": v for s in run["stages"] for k, v in s["metrics"].items()}
    return {"runs": [{k: run[k] for k in ("run_id", "run_name", "status", "start_time", "end_time", "params",
                                          "metrics", "metric_history")} for run in runs],
            "param_keys": keys, "differing_params": differing,
            "metric_keys": sorted({k for run in runs for k in run["metrics"]})}
