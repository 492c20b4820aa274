"""Logged models (MLflow 3): create, get, finalize, search, tags, params (``api/2.0/mlflow/logged-models``)."""

from __future__ import annotations

from typing import Any

from orchestra.integrations.endpoint import shapes
from orchestra.integrations.endpoint.shapes import ApiError, NotHere
from orchestra.integrations.endpoint.state import LocalModel, now_ms, pairs
from orchestra.integrations.endpoint.tracking import Call, Handler


def _model(call: Call) -> LocalModel:
    model_id = call.parts[0] if call.parts else str(call.args.get("model_id") or "")
    found = call.registry.models.get(model_id)
    if found is None or found.deleted:
        raise NotHere(f"Logged model with ID '{model_id}'")
    return found


def _answer(call: Call, found: LocalModel) -> dict[str, Any]:
    return {"model": shapes.model(found, call.registry.runs)}


def create(call: Call) -> dict[str, Any]:
    experiment_id = str(call.args.get("experiment_id") or call.registry.experiment_id)
    made = call.registry.new_model(call.slot, experiment_id, call.args.get("name"), call.args)
    return _answer(call, made)


def get(call: Call) -> dict[str, Any]:
    return _answer(call, _model(call))


def finalize(call: Call) -> dict[str, Any]:
    found = _model(call)
    if found.stage != call.slot.name:
        raise ApiError("PERMISSION_DENIED", f"logged model {found.model_id} belongs to stage {found.stage}", 403)
    status = call.args.get("status")
    if status:
        found.status = str(status)
    found.updated_ms = now_ms()
    return _answer(call, found)


def delete(call: Call) -> dict[str, Any]:
    _model(call).deleted = True
    return {}


def set_tags(call: Call) -> dict[str, Any]:
    found = _model(call)
    found.tags.update(pairs(call.args.get("tags")))
    found.updated_ms = now_ms()
    return {}


def delete_tag(call: Call) -> dict[str, Any]:
    found = _model(call)
    found.tags.pop(call.parts[2] if len(call.parts) > 2 else "", None)
    return {}


def log_params(call: Call) -> dict[str, Any]:
    found = _model(call)
    found.params.update(pairs(call.args.get("params")))
    return {}


def search(call: Call) -> dict[str, Any]:
    registry = call.registry
    wanted = [str(e) for e in call.args.get("experiment_ids") or ()]
    if wanted and not any(e in registry.experiments for e in wanted):
        raise NotHere(f"Experiments {', '.join(wanted)}")
    found = [m for m in registry.models.values() if not m.deleted and (not wanted or m.experiment_id in wanted)]
    found.sort(key=lambda m: m.created_ms, reverse=True)
    limit = int(call.args.get("max_results") or 100)
    return {"models": [shapes.model(m, registry.runs) for m in found[:limit]]}


# Path after ``logged-models``: "" (collection), "{id}", "{id}/tags", "{id}/tags/{key}", "{id}/params".
ROUTES: dict[tuple[str, str], Handler] = {
    ("POST", ""): create,
    ("POST", "search"): search,
    ("GET", "{id}"): get,
    ("PATCH", "{id}"): finalize,
    ("DELETE", "{id}"): delete,
    ("PATCH", "{id}/tags"): set_tags,
    ("DELETE", "{id}/tags/{key}"): delete_tag,
    ("POST", "{id}/params"): log_params,
}


def route(method: str, rest: str) -> tuple[Handler | None, tuple[str, ...]]:
    """The handler of ``logged-models/<rest>`` and its path parts (id, "tags", key)."""
    if rest in ("", "search"):
        return ROUTES.get((method, rest)), ()
    parts = tuple(rest.split("/", 2))
    if len(parts) == 1:
        shape = "{id}"
    elif len(parts) == 2:
        shape = f"{{id}}/{parts[1]}"
    else:
        shape = f"{{id}}/{parts[1]}/{{key}}"
    return ROUTES.get((method, shape)), parts
