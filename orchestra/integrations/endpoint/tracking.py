"""The tracking API of the endpoint: experiments, runs, params, metrics, tags (``api/2.0/mlflow/…``).

Each handler takes a :class:`Call` and returns the JSON answer or raises an ``ApiError``.
Writes go to runs of this pipeline only; a read of something it did not create raises
``NotHere`` (the server passes it through to the configured tracking server, when there is one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from orchestra.integrations.endpoint import shapes
from orchestra.integrations.endpoint.shapes import ApiError, NotHere, invalid
from orchestra.integrations.endpoint.state import LocalRun, Registry, StageSlot, now_ms, pairs

_TERMINAL = frozenset({"FINISHED", "FAILED", "KILLED"})
MAX_PARAM_VALUE = 6000


@dataclass(frozen=True, slots=True)
class Call:
    """One authenticated request: the registry, the calling stage, its arguments, path parts."""

    registry: Registry
    slot: StageSlot
    args: Mapping[str, Any]
    parts: tuple[str, ...] = ()

    def arg(self, name: str) -> str:
        value = self.args.get(name)
        if value is None or value == "":
            raise invalid(f"Missing value for required parameter '{name}'")
        return str(value)


Handler = Callable[[Call], dict[str, Any]]


def _run(call: Call, key: str = "run_id") -> LocalRun:
    run_id = str(call.args.get(key) or call.args.get("run_uuid") or "")
    if not run_id:
        raise invalid("Missing value for required parameter 'run_id'")
    found = call.registry.runs.get(run_id)
    if found is None:
        raise NotHere(f"Run with id={run_id}")
    return found


def _writable(call: Call) -> LocalRun:
    found = _run(call)
    if found.deleted:
        raise ApiError("INVALID_STATE", f"The run {found.run_id} must be in the 'active' state")
    return found


# -- experiments ---------------------------------------------------------------------------------
def get_experiment(call: Call) -> dict[str, Any]:
    found = call.registry.experiments.get(call.arg("experiment_id"))
    if found is None:
        raise NotHere(f"Experiment {call.args['experiment_id']}")
    return {"experiment": shapes.experiment(found)}


def get_experiment_by_name(call: Call) -> dict[str, Any]:
    found = call.registry.experiment_by_name(call.arg("experiment_name"))
    if found is None:
        raise NotHere(f"Experiment '{call.args['experiment_name']}'")
    return {"experiment": shapes.experiment(found)}


def create_experiment(call: Call) -> dict[str, Any]:
    name = call.arg("name")
    if call.registry.experiment_by_name(name) is not None:
        raise ApiError("RESOURCE_ALREADY_EXISTS", f"Experiment '{name}' already exists.")
    return {"experiment_id": call.registry.add_experiment(name, pairs(call.args.get("tags"))).experiment_id}


def search_experiments(call: Call) -> dict[str, Any]:
    return {"experiments": [shapes.experiment(e) for e in call.registry.experiments.values()]}


def set_experiment_tag(call: Call) -> dict[str, Any]:
    found = call.registry.experiments.get(call.arg("experiment_id"))
    if found is None:
        raise NotHere(f"Experiment {call.args['experiment_id']}")
    found.tags[call.arg("key")] = str(call.args.get("value", ""))
    return {}


# -- runs ----------------------------------------------------------------------------------------
def create_run(call: Call) -> dict[str, Any]:
    experiment_id = str(call.args.get("experiment_id") or call.registry.experiment_id)
    made = call.registry.new_run(call.slot, experiment_id, call.args.get("run_name"), call.args.get("start_time"),
                                 pairs(call.args.get("tags")), str(call.args.get("user_id") or ""))
    return {"run": shapes.run(made)}


def get_run(call: Call) -> dict[str, Any]:
    return {"run": shapes.run(_run(call))}


def update_run(call: Call) -> dict[str, Any]:
    found = _writable(call)
    status = call.args.get("status")
    if status:
        found.status = str(status)
        if found.status in _TERMINAL:
            found.end_ms = int(call.args.get("end_time") or now_ms())
    elif call.args.get("end_time"):
        found.end_ms = int(call.args["end_time"])
    if call.args.get("run_name"):
        found.name = str(call.args["run_name"])
        found.tags["mlflow.runName"] = found.name
    return {"run_info": shapes.run_info(found)}


def delete_run(call: Call) -> dict[str, Any]:
    _run(call).deleted = True
    return {}


def restore_run(call: Call) -> dict[str, Any]:
    _run(call).deleted = False
    return {}


def set_tag(call: Call) -> dict[str, Any]:
    found = _writable(call)
    found.tags[call.arg("key")] = str(call.args.get("value", ""))
    if call.args["key"] == "mlflow.runName":
        found.name = found.tags["mlflow.runName"]
    return {}


def delete_tag(call: Call) -> dict[str, Any]:
    found = _writable(call)
    key = call.arg("key")
    if key not in found.tags:
        raise NotHere(f"No tag with name: {key} in run with id {found.run_id}")
    del found.tags[key]
    return {}


def _param(found: LocalRun, key: str, value: Any) -> None:
    text = "" if value is None else str(value)
    if len(text) > MAX_PARAM_VALUE:
        raise invalid(f"Param value '{text[:100]}...' had length {len(text)}, which exceeded length limit of "
                      f"{MAX_PARAM_VALUE}")
    old = found.params.get(key)
    if old is not None and old != text:
        raise invalid(f"Changing param values is not allowed. Param with key='{key}' was already logged with "
                      f"value='{old}' for run ID='{found.run_id}'. Attempted logging new value '{text}'.")
    found.params[key] = text


def log_param(call: Call) -> dict[str, Any]:
    _param(_writable(call), call.arg("key"), call.args.get("value"))
    return {}


def _metric(found: LocalRun, item: Mapping[str, Any]) -> None:
    try:
        value = float(item["value"]) if item.get("value") is not None else float("nan")
        row = (str(item["key"]), value, int(item.get("timestamp") or now_ms()), int(item.get("step") or 0),
               item.get("model_id") or None)
    except (KeyError, TypeError, ValueError):
        raise invalid(f"Invalid metric {dict(item)!r}") from None
    if row[4]:  # the same value again, now linked to a logged model (MLflow 3's log_model does that)
        for index, seen in enumerate(found.metrics):
            if seen[:4] == row[:4] and seen[4] in (None, row[4]):
                found.metrics[index] = row
                return
    found.metrics.append(row)


def log_metric(call: Call) -> dict[str, Any]:
    call.arg("key")
    _metric(_writable(call), call.args)
    return {}


def log_batch(call: Call) -> dict[str, Any]:
    found = _writable(call)
    for item in call.args.get("params") or ():
        _param(found, str(item.get("key")), item.get("value"))
    for item in call.args.get("metrics") or ():
        _metric(found, item)
    found.tags.update(pairs(call.args.get("tags")))
    return {}


def log_inputs(call: Call) -> dict[str, Any]:
    found = _writable(call)
    found.inputs.extend(call.args.get("datasets") or ())
    found.model_inputs.extend(call.args.get("models") or ())
    return {}


def log_outputs(call: Call) -> dict[str, Any]:
    found = _writable(call)
    found.model_outputs.extend(call.args.get("models") or ())
    return {}


def log_model(call: Call) -> dict[str, Any]:
    """MLflow 2's ``runs/log-model``: the model's description in the run's history tag."""
    found = _writable(call)
    history = found.tags.get("mlflow.log-model.history", "[]")
    found.tags["mlflow.log-model.history"] = history[:-1] + ("," if history != "[]" else "") + \
        str(call.args.get("model_json") or "{}") + "]"
    return {}


def metric_history(call: Call) -> dict[str, Any]:
    found = _run(call)
    key = call.arg("metric_key")
    return {"metrics": [shapes.metric(row) for row in found.metrics if row[0] == key]}


def search_runs(call: Call) -> dict[str, Any]:
    registry = call.registry
    wanted = [str(e) for e in call.args.get("experiment_ids") or ()]
    if wanted and not any(e in registry.experiments for e in wanted):
        raise NotHere(f"Experiments {', '.join(wanted)}")
    view = str(call.args.get("run_view_type") or "ACTIVE_ONLY")
    test = _filter(str(call.args.get("filter") or ""))
    found = [r for r in registry.runs.values() if (not wanted or r.experiment_id in wanted)
             and (view == "ALL" or (view == "DELETED_ONLY") == r.deleted) and test(r)]
    found.sort(key=lambda r: r.start_ms, reverse=True)
    limit = int(call.args.get("max_results") or 1000)
    return {"runs": [shapes.run(r) for r in found[:limit]]}


_CLAUSE = re.compile(r"\s*(?P<kind>[A-Za-z_]+)\.(?P<key>`[^`]+`|\"[^\"]+\"|[\w.\-/]+)\s*"
                     r"(?P<op>=|!=|>=|<=|>|<|(?i:LIKE|ILIKE))\s*(?P<value>'[^']*'|\"[^\"]*\"|[-+\w.]+)\s*$")


def _filter(text: str) -> Callable[[LocalRun], bool]:
    """MLflow's search filter for the common clauses (``tags.k = 'v'``, ``metrics.m > 1``, … joined by AND)."""
    clauses = [c for c in re.split(r"\s+(?i:and)\s+", text.strip()) if c.strip()]
    tests = []
    for clause in clauses:
        match = _CLAUSE.match(clause)
        if match is None:
            raise invalid(f"Invalid filter '{text}'")
        tests.append(_test(match["kind"].lower(), match["key"].strip("`\""), match["op"].upper(),
                           match["value"].strip("'\"")))
    return lambda r: all(t(r) for t in tests)


def _test(kind: str, key: str, op: str, value: str) -> Callable[[LocalRun], bool]:
    def field(r: LocalRun) -> Any:
        if kind in ("tag", "tags"):
            return r.tags.get(key)
        if kind in ("param", "params"):
            return r.params.get(key)
        if kind in ("metric", "metrics"):
            rows = [m for m in shapes.latest(r) if m["key"] == key]
            return rows[0]["value"] if rows else None
        return {"run_id": r.run_id, "run_name": r.name, "status": r.status, "start_time": r.start_ms,
                "end_time": r.end_ms, "user_id": r.user}.get(key)

    def test(r: LocalRun) -> bool:
        have = field(r)
        if have is None:
            return False
        want: Any = float(value) if isinstance(have, (int, float)) else value
        if op in ("LIKE", "ILIKE"):
            pattern = re.escape(want).replace("%", ".*").replace("_", ".")
            return re.fullmatch(pattern, str(have), re.I if op == "ILIKE" else 0) is not None
        return {"=": have == want, "!=": have != want, ">": have > want, "<": have < want,
                ">=": have >= want, "<=": have <= want}[op]

    return test


ROUTES: dict[tuple[str, str], Handler] = {
    ("GET", "experiments/get"): get_experiment,
    ("GET", "experiments/get-by-name"): get_experiment_by_name,
    ("POST", "experiments/create"): create_experiment,
    ("POST", "experiments/search"): search_experiments,
    ("GET", "experiments/search"): search_experiments,
    ("POST", "experiments/set-experiment-tag"): set_experiment_tag,
    ("POST", "runs/create"): create_run,
    ("GET", "runs/get"): get_run,
    ("POST", "runs/update"): update_run,
    ("POST", "runs/delete"): delete_run,
    ("POST", "runs/restore"): restore_run,
    ("POST", "runs/search"): search_runs,
    ("POST", "runs/set-tag"): set_tag,
    ("POST", "runs/delete-tag"): delete_tag,
    ("POST", "runs/log-parameter"): log_param,
    ("POST", "runs/log-metric"): log_metric,
    ("POST", "runs/log-batch"): log_batch,
    ("POST", "runs/log-inputs"): log_inputs,
    ("POST", "runs/outputs"): log_outputs,
    ("POST", "runs/log-model"): log_model,
    ("GET", "metrics/get-history"): metric_history,
}
