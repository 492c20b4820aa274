"""What to send for a run and its stages: tags, params, metrics, uploads and statuses as queue ops.

Pure builders over plain records (the run store's shapes), shared by the live mirror and by
``orchestra runs sync``'s replay, so a run mirrored live and one replayed later look the same.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

from orchestra.core.status import StageStatus, stage_mlflow
from orchestra.core.tracking_uri import redact
from orchestra.integrations.tracking import logged

OpList = list[tuple[str, dict[str, Any]]]
# The stage record status → MLflow run status of its child run.
# Run-level tags a child run repeats, so it reads well on its own in the MLflow UI.
_INHERITED = ("mlflow.user", "mlflow.source.name", "mlflow.source.type", "mlflow.source.git.commit",
              "mlflow.source.git.repoURL", "mlflow.source.git.branch", "mlflow.project.backend",
              "orchestra.source.git.dirty")
MANIFEST_ARTIFACT = "orchestra/manifest.json"
OUTPUTS_PREFIX = "outputs"
MANIFEST_FORMAT = 1


def clean_tags(tags: Mapping[str, Any]) -> dict[str, str]:
    """Tags as strings with credentials removed from any URL inside them."""
    return {str(k): redact(str(v)) for k, v in tags.items() if v is not None}


def parent_tags(run_tags: Mapping[str, str], run_id: str) -> dict[str, str]:
    return {**clean_tags(run_tags), "orchestra.run_id": run_id}


def child_tags(run_tags: Mapping[str, str], run_id: str, stage: str, *, env_kind: str | None,
               cache_key: str | None, loaded_from: str | None = None, container: Any = None) -> dict[str, str]:
    """A stage's MLflow run tags; ``container`` (a docker_env stage's image) adds MLflow's
    ``mlflow.docker.image.uri`` / ``.id``."""
    tags = {k: v for k, v in clean_tags(run_tags).items() if k in _INHERITED}
    tags.update({"mlflow.project.entryPoint": stage, "mlflow.project.env": env_kind or "local",
                 "orchestra.run_id": run_id, "orchestra.stage": stage})
    if container is not None:
        tags.update({"mlflow.docker.image.uri": container.ref, "mlflow.docker.image.id": container.image})
    if cache_key:
        tags["orchestra.cache_key"] = cache_key
    if loaded_from:
        tags["orchestra.loaded_from"] = loaded_from
    return tags


def run_name(project_name: str | None, run_id: str) -> str:
    return f"{project_name or 'orchestra'}-{run_id[:8]}"


def stage_end_ops(stage: Mapping[str, Any], *, metrics: Sequence[Sequence[Any]], declared_params: Mapping[str, str],
                  run_id: str, upload_outputs: bool, end_time: float, outputs_ref: str | None = None) -> OpList:
    """Ops closing one stage's child run.

    Args:
        stage: the stage record (runs store shape: status, exit_code, attempts, params, tags,
            log_dir, manifest, manifest_digest, cache_key, components, env_key, loaded_from, metrics).
        metrics: ``(key, value, step, timestamp_s)`` rows the stage logged (history, not only latest).
        declared_params: the stage's resolved MLproject params (text).
        run_id: the orchestra run.
        upload_outputs: ``--mlflow-artifacts``: upload the outputs (the manifest goes up always).
        end_time: seconds since the epoch.
        outputs_ref: for a loaded stage, the artifact URI (on the same server) already holding
            these outputs: the manifest points there instead of uploading them again.
    """
    status = stage["status"]
    ops: OpList = []
    params = {**{k: str(v) for k, v in declared_params.items()},
              **{k: str(v) for k, v in (stage.get("params") or {}).items()}}
    tags = clean_tags(stage.get("tags") or {})
    if stage.get("exit_code") is not None:
        tags["orchestra.exit_code"] = str(stage["exit_code"])
    if stage.get("attempts"):
        tags["orchestra.attempts"] = str(stage["attempts"])
    if stage.get("cache_key"):
        tags["orchestra.cache_key"] = stage["cache_key"]
    if stage.get("message"):
        tags["orchestra.message"] = redact(str(stage["message"]))[:1000]
    loaded = stage.get("loaded_from")
    if loaded:
        tags["orchestra.loaded_from"] = f"{loaded['run_id']}/{loaded['stage']}"
    # One request for params, metrics and tags (the sender splits params off if stage code
    # already logged one of them with other text).
    ops.append(("batch", {"metrics": [list(m) for m in metrics], "tags": tags, "params": params}))
    if StageStatus(status).has_outputs:  # what its code logged through the run's endpoint
        ops.extend(logged.ops(stage))
    log_dir = stage.get("log_dir")
    if log_dir:
        for name in ("stdout.log", "stderr.log"):
            ops.append(("upload", {"file": f"{log_dir}/{name}", "artifact": f"logs/{name}"}))
    manifest = stage.get("manifest")
    if StageStatus(status).has_outputs and manifest is not None:
        if upload_outputs and not outputs_ref:
            for rel, entry in sorted(manifest.items()):
                ops.append(("upload", {"object": entry["sha256"], "executable": bool(int(entry["mode"]) & 0o100),
                                       "artifact": f"{OUTPUTS_PREFIX}/{rel}"}))
        # Written after the outputs: a manifest that says "outputs": true means they are all there.
        ops.append(("upload", {"artifact": MANIFEST_ARTIFACT, "json": {
            "format": MANIFEST_FORMAT, "orchestra_run_id": run_id, "stage": stage["name"],
            "cache_key": stage.get("cache_key"), "components": stage.get("components") or {},
            "env_key": stage.get("env_key"), "manifest": manifest, "manifest_digest": stage.get("manifest_digest"),
            "metrics": stage.get("metrics") or {}, "outputs": upload_outputs, "outputs_prefix": OUTPUTS_PREFIX,
            **({"outputs_artifact_uri": outputs_ref} if upload_outputs and outputs_ref else {}),
        }}))
    ops.append(("status", {"status": str(stage_mlflow(status)), "end_time": end_time}))
    return ops


def pipeline_metric_ops(metrics: Mapping[str, float], timestamp: float | None) -> OpList:
    """The parent run's pipeline metrics (``<stage>.<metric>``: each stage's last values), so
    pipelines sort and compare in the MLflow runs table; nothing when no stage logged any."""
    if not metrics:
        return []
    return [("batch", {"metrics": [[k, float(v), 0, timestamp or 0.0] for k, v in metrics.items()], "tags": {},
                       "params": {}})]


def stage_row(conn: Any, run_id: str, name: str) -> dict[str, Any] | None:
    """One stage of the run store as a record (without loading the whole run)."""
    row = conn.execute("SELECT * FROM stages WHERE run_id = ? AND name = ?", (run_id, name)).fetchone()
    if row is None:
        return None
    record = dict(row)
    for key in ("components", "metrics", "params", "tags"):
        record[key] = json.loads(record[key] or "{}")
    record["manifest"] = json.loads(record["manifest"]) if record["manifest"] else None
    record["loaded_from"] = ({"run_id": record["loaded_from_run"], "stage": record["loaded_from_stage"]}
                             if record["loaded_from_run"] else None)
    owner = (record["loaded_from_run"], record["loaded_from_stage"]) if record["loaded_from_run"] else (run_id, name)
    record["models"] = logged.models_of(conn, *owner)  # a loaded stage has those of its source
    return record


def metric_rows(conn: Any, run_id: str, stage: str) -> list[tuple[str, float, int, float]]:
    rows = conn.execute("SELECT key, value, step, timestamp FROM metrics WHERE run_id = ? AND stage = ? ORDER BY rowid",
                        (run_id, stage)).fetchall()
    return [(r["key"], r["value"], r["step"], r["timestamp"]) for r in rows]


def loaded_metric_rows(conn: Any, loaded_from: Mapping[str, str] | None, latest: Mapping[str, float],
                       timestamp: float) -> list[tuple[str, float, int, float]]:
    """The metrics a loaded stage's child run gets: the history of the stage it was loaded from
    (steps and times as logged), else its last values (a stage imported from another machine)."""
    rows = metric_rows(conn, loaded_from["run_id"], loaded_from["stage"]) if loaded_from else []
    return rows or [(k, float(v), 0, timestamp) for k, v in latest.items()]


def outputs_ref(conn: Any, store: Any, uri: str, loaded_from: Mapping[str, str] | None) -> str | None:
    """Where on server ``uri`` the outputs of the stage a loaded stage came from already are."""
    if not loaded_from:
        return None
    from orchestra.integrations.tracking import queue

    found = queue.outputs_uri(conn, uri, loaded_from["run_id"], loaded_from["stage"])
    if found:
        return found
    source = stage_row(store, loaded_from["run_id"], loaded_from["stage"])  # imported from this server?
    tags = (source or {}).get("tags") or {}
    if tags.get("orchestra.imported_server") == uri and tags.get("orchestra.outputs_artifact_uri"):
        return tags["orchestra.outputs_artifact_uri"]
    return None
