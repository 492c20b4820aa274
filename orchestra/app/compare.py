"""Comparing runs: the rows of ``orchestra runs list`` with chosen columns, ``runs compare``,
and the flat run mappings ``api.runs_frame`` turns into a DataFrame.

Filtering and sorting reuse the runs filter grammar (:mod:`orchestra.core.runfilter`) and its
SQL (:mod:`orchestra.store.runquery`); only the matching page of runs is decoded.
"""

from __future__ import annotations

from typing import Any, Sequence

from orchestra.app import reaper
from orchestra.core import runfilter
from orchestra.core.errors import BadInputError
from orchestra.core.records import RunRecord
from orchestra.core.status import StageStatus
from orchestra.planning.fingerprint import differences
from orchestra.store import runquery, runs

SWEEP_TAG = "orchestra.sweep"
SWEEP_VALUES_TAG = "orchestra.sweep.values"
PREFIXES = ("params", "metrics", "tags")
ATTRIBUTES = ("run_id", "run_name", "experiment", "status", "start_time", "duration_s", "stages", "loaded", "project_uri")
_COLUMN_HINT = "e.g. --columns params.alpha,metrics.evaluate.rmse,tags.team (metrics are STAGE.KEY)"


def run_name(record: RunRecord) -> str:
    return str(record.tags.get("mlflow.runName") or "")


def parse_columns(text: str) -> tuple[str, ...]:
    """``params.alpha,metrics.evaluate.rmse`` as column names (short entity names expanded).

    Raises:
        BadInputError: a column that is not ``params.KEY``, ``metrics.STAGE.KEY`` or ``tags.KEY``.
    """
    out = []
    for raw in (part.strip() for part in (text or "").split(",")):
        if not raw:
            continue
        entity, _, key = raw.partition(".")
        entity = {"p": "params", "m": "metrics", "t": "tags", "param": "params", "metric": "metrics",
                  "tag": "tags"}.get(entity, entity)
        if entity not in ("params", "metrics", "tags") or not key or (entity == "metrics" and "." not in key):
            raise BadInputError(f"bad column {raw!r}", where="--columns", hint=_COLUMN_HINT)
        out.append(f"{entity}.{key}")
    return tuple(out)


def select(filter_text: str = "", sort: str = "-start_time", limit: int = 100, *,
           sweep: str | None = None, experiment: str | None = None, status: str | None = None) -> list[RunRecord]:
    """Stored runs matching the filter (plus the sweep, experiment and status shortcuts), sorted.

    ``sort`` is ``[-]COLUMN``: an attribute (``start_time``, ``run_name``, ``status``, ``duration``…),
    ``params.KEY`` or ``metrics.STAGE.KEY``; runs without the key come last.

    Raises:
        BadInputError: a filter outside the grammar, a bad sort key, a limit below 1.
    """
    if limit < 1:
        raise BadInputError(f"--limit {limit}: must be at least 1", where="--limit", hint="e.g. --limit 20")
    clauses = list(runfilter.parse(filter_text))
    for key, value in ((SWEEP_TAG, sweep), ("experiment", experiment), ("status", status)):
        if value:
            entity = "tags" if key == SWEEP_TAG else "attributes"
            clauses.append(runfilter.Clause(entity, key, "=", value.upper() if key == "status" else value))
    descending = sort.startswith("-")
    key = sort.lstrip("-+") or "start_time"
    if key.startswith("m."):
        key = "metrics." + key[2:]
    if key.startswith("p."):
        key = "params." + key[2:]
    reaper.reap_stale_runs()
    page = runquery.select_runs(runs.db(), tuple(clauses), key, descending, 0, limit)
    return [runs.get_run(row["run_id"]) for row in page.rows]


def value_of(record: RunRecord, column: str) -> Any:
    """The value of ``params.KEY`` / ``metrics.STAGE.KEY`` / ``tags.KEY`` in ``record`` (None if absent)."""
    entity, _, key = column.partition(".")
    if entity == "params":
        return record.params.get(key)
    if entity == "metrics":
        return record.metrics.get(key)
    if entity == "tags":
        return record.tags.get(key)
    return None


def row(record: RunRecord, columns: Sequence[str] = ()) -> dict[str, Any]:
    """One line of ``runs list``: the run's attributes and the chosen columns (full precision)."""
    duration = (record.end_time - record.start_time) if record.end_time and record.start_time else None
    out: dict[str, Any] = {
        "run_id": record.run_id, "run_name": run_name(record), "experiment": record.experiment,
        "status": str(record.status), "start_time": record.start_time, "duration_s": duration,
        "stages": len(record.stages), "loaded": sum(1 for s in record.stages if s.status == StageStatus.LOADED),
        "project_uri": record.project_uri,
    }
    for column in columns:
        out[column] = value_of(record, column)
    return out


def flat(record: RunRecord) -> dict[str, Any]:
    """A run as one flat mapping, as ``mlflow.search_runs`` gives it: attributes, then
    ``params.*``, ``metrics.*`` (``metrics.STAGE.KEY``) and ``tags.*``."""
    out = row(record)
    out.update({f"params.{k}": v for k, v in sorted(record.params.items())})
    out.update({f"metrics.{k}": v for k, v in record.metrics.items()})
    out.update({f"tags.{k}": v for k, v in sorted(record.tags.items())})
    return out


def readable(value: Any) -> str:
    """A value rounded for reading (4 significant digits for floats); ``-`` when absent."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def compare(records: Sequence[RunRecord]) -> dict[str, Any]:
    """``runs compare``: params that differ, every metric side by side with its delta to the first
    run, and per stage whether each run ran or loaded it (and why: the key components that
    differ from the first run's stage, or where it was loaded from). Full precision."""
    first = records[0]
    every = [_params(r) for r in records]
    param_keys = sorted({key for params in every for key in params})
    differing = {key: [params.get(key) for params in every] for key in param_keys
                 if len({params.get(key) for params in every}) > 1}
    metric_keys = list(dict.fromkeys(key for r in records for key in r.metrics))
    metrics = {}
    for key in metric_keys:
        values = [r.metrics.get(key) for r in records]
        base = values[0]
        deltas = [None if base is None or v is None else v - base for v in values]
        metrics[key] = {"values": values, "deltas": deltas}
    stage_names = list(dict.fromkeys(s.name for r in records for s in r.stages))
    stages = {name: [_stage_why(r, first, name) for r in records] for name in stage_names}
    return {"runs": [{"run_id": r.run_id, "run_name": run_name(r), "status": str(r.status)} for r in records],
            "params": differing, "same_params": {k: every[0].get(k) for k in param_keys if k not in differing},
            "metrics": metrics, "stages": stages}


def _params(record: RunRecord) -> dict[str, str]:
    """The run's params, and as ``<stage>.<key>`` what stage code logged besides them (mlflow.log_param)."""
    logged = {f"{s.name}.{k}": v for s in record.stages for k, v in (s.params or {}).items() if k not in record.params}
    return {**record.params, **logged}


def _stage_why(record: RunRecord, first: RunRecord, name: str) -> dict[str, Any]:
    stage, base = record.stage(name), first.stage(name)
    if stage is None:
        return {"status": None, "why": "not in this run", "loaded_from": None}
    loaded = stage.loaded_from
    why = [f"loaded from run {loaded.run_id[:8]}"] if loaded is not None else []
    if record is not first and base is not None and stage.components and base.components:
        changes = differences(base.components, stage.components)
        why.append("key same" if not changes else "; ".join(changes))
    elif loaded is None and stage.message:
        why.append(stage.message)
    return {"status": str(stage.status), "why": ", ".join(why),
            "loaded_from": {"run_id": loaded.run_id, "stage": loaded.stage} if loaded else None}
