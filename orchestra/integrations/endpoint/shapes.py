"""MLflow's REST JSON: the shapes of experiments, runs and logged models, and its error answers."""

from __future__ import annotations

from typing import Any

from orchestra.integrations.endpoint.state import Experiment, LocalModel, LocalRun


class ApiError(Exception):
    """An MLflow error answer: ``{"error_code": code, "message": message}`` with HTTP ``status``."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status

    def body(self) -> dict[str, str]:
        return {"error_code": self.code, "message": self.message}


class NotHere(ApiError):
    """A read of something this pipeline did not create: the configured server may know it."""

    def __init__(self, what: str) -> None:
        super().__init__("RESOURCE_DOES_NOT_EXIST", f"{what} not found", 404)


def invalid(message: str) -> ApiError:
    return ApiError("INVALID_PARAMETER_VALUE", message, 400)


def kv(mapping: dict[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in mapping.items()]


def experiment(e: Experiment) -> dict[str, Any]:
    return {"experiment_id": e.experiment_id, "name": e.name, "artifact_location": f"mlflow-artifacts:/{e.experiment_id}",
            "lifecycle_stage": "active", "creation_time": e.created_ms, "last_update_time": e.created_ms,
            "tags": kv(e.tags)}


def latest(run: LocalRun) -> list[dict[str, Any]]:
    """Each metric's latest value (highest step, then latest timestamp), as runs/get shows them."""
    best: dict[str, tuple[str, float, int, int, str | None]] = {}
    for row in run.metrics:
        seen = best.get(row[0])
        if seen is None or (row[3], row[2]) >= (seen[3], seen[2]):
            best[row[0]] = row
    return [metric(row) for row in best.values()]


def metric(row: tuple[str, float, int, int, str | None]) -> dict[str, Any]:
    key, value, ms, step, model_id = row
    out: dict[str, Any] = {"key": key, "value": value, "timestamp": ms, "step": step}
    if model_id:
        out["model_id"] = model_id
    return out


def run_info(run: LocalRun) -> dict[str, Any]:
    info: dict[str, Any] = {"run_id": run.run_id, "run_uuid": run.run_id, "run_name": run.name,
                            "experiment_id": run.experiment_id, "user_id": run.user, "status": run.status,
                            "start_time": run.start_ms, "artifact_uri": run.artifact_uri,
                            "lifecycle_stage": "deleted" if run.deleted else "active"}
    if run.end_ms is not None:
        info["end_time"] = run.end_ms
    return info


def run(r: LocalRun) -> dict[str, Any]:
    return {"info": run_info(r),
            "data": {"metrics": latest(r), "params": kv(r.params), "tags": kv(r.tags)},
            "inputs": {"dataset_inputs": list(r.inputs), "model_inputs": list(r.model_inputs)},
            "outputs": {"model_outputs": list(r.model_outputs)}}


def model(m: LocalModel, runs: dict[str, LocalRun]) -> dict[str, Any]:
    info: dict[str, Any] = {"model_id": m.model_id, "experiment_id": m.experiment_id, "name": m.name,
                            "creation_timestamp_ms": m.created_ms, "last_updated_timestamp_ms": m.updated_ms,
                            "artifact_uri": m.artifact_uri, "status": m.status, "tags": kv(m.tags)}
    if m.model_type:
        info["model_type"] = m.model_type
    if m.source_run_id:
        info["source_run_id"] = m.source_run_id
    metrics = [metric(row) for r in runs.values() for row in r.metrics if row[4] == m.model_id]
    return {"info": info, "data": {"params": kv(m.params), "metrics": metrics}}
