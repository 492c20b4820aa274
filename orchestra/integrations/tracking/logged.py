"""What stage code logged through the run's endpoint, as mirror ops: its artifacts and logged models.

The endpoint keeps a stage's MLflow artifacts among its outputs under ``mlflow-artifacts/`` and
the files of each logged model under ``mlflow-models/<id>/`` (recorded in the run store's
``models`` table). The mirror uploads the artifacts to the stage's child run at the paths the
stage gave them (always: they are what the stage logged, not orchestra's outputs), and recreates
each logged model on the server: created with the child run as its source, its files uploaded,
then finalized. A retried model op first looks for the model an earlier attempt created (tag
``orchestra.model_id``), so a model is created once.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from orchestra.core.records import MLFLOW_ARTIFACTS_PREFIX
from orchestra.integrations.tracking.queue import Target
from orchestra.integrations.tracking.rest import RestClient
from orchestra.store.artifacts import object_path

_NESTED = MLFLOW_ARTIFACTS_PREFIX + "runs/"  # artifacts of runs the stage's code started itself


def ops(stage: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Upload ops for the stage's own MLflow artifacts, and one op per logged model."""
    manifest = stage.get("manifest") or {}
    out: list[tuple[str, dict[str, Any]]] = []
    for rel, entry in sorted(manifest.items()):
        if rel.startswith(MLFLOW_ARTIFACTS_PREFIX) and not rel.startswith(_NESTED):
            out.append(("upload", {"object": entry["sha256"], "executable": bool(int(entry["mode"]) & 0o100),
                                   "artifact": rel[len(MLFLOW_ARTIFACTS_PREFIX):]}))
    for model in stage.get("models") or ():
        prefix = str(model.get("files") or "")
        files = [[rel[len(prefix):], entry["sha256"], bool(int(entry["mode"]) & 0o100)]
                 for rel, entry in sorted(manifest.items()) if prefix and rel.startswith(prefix)]
        out.append(("model", {**{k: model.get(k) for k in ("model_id", "name", "model_type", "params", "tags",
                                                          "status")}, "files": files}))
    return out


def models_of(conn: Any, run_id: str, stage: str) -> list[dict[str, Any]]:
    """The logged models of one stage in the run store (``conn``: runs.sqlite)."""
    rows = conn.execute("SELECT body FROM models WHERE run_id = ? AND stage = ? ORDER BY rowid", (run_id, stage))
    return [json.loads(row["body"]) for row in rows]


def apply_model(client: RestClient, target: Target, payload: Mapping[str, Any], *, attempt: int) -> None:
    """Create (or find) the logged model on the server, upload its files, finalize it."""
    local_id = str(payload["model_id"])
    model = _existing(client, target, local_id) if attempt > 1 else None
    if model is None:
        tags = {**(payload.get("tags") or {}), "orchestra.model_id": local_id}
        body: dict[str, Any] = {"experiment_id": target.experiment_id, "name": payload.get("name") or local_id,
                                "source_run_id": target.mlflow_run_id,
                                "tags": [{"key": k, "value": str(v)} for k, v in tags.items()],
                                "params": [{"key": k, "value": str(v)} for k, v in (payload.get("params") or {}).items()]}
        if payload.get("model_type"):
            body["model_type"] = payload["model_type"]
        model = client._call("POST", "logged-models", body)["model"]
    info = model["info"]
    for rel, sha, executable in payload.get("files") or ():
        with open(object_path(sha, executable), "rb") as handle:
            client.upload(info["artifact_uri"], rel, handle)
    status = payload.get("status") or "LOGGED_MODEL_READY"
    client._call("PATCH", f"logged-models/{info['model_id']}", {"model_id": info["model_id"], "status": status})


def _existing(client: RestClient, target: Target, local_id: str) -> dict[str, Any] | None:
    page = client._call("POST", "logged-models/search", {"experiment_ids": [target.experiment_id], "max_results": 1000})
    for model in page.get("models", []):
        tags = {t["key"]: t["value"] for t in model.get("info", {}).get("tags", [])}
        if tags.get("orchestra.model_id") == local_id:
            return model
    return None
