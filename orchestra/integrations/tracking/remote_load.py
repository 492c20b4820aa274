"""``--load-from <MLflow run id>``: bring a mirrored run's stage outputs into this ORCHESTRA_HOME.

The MLflow parent run (a child id is followed to its parent) names its orchestra run in the tag
``orchestra.run_id``. If that run is local, nothing is downloaded. Otherwise, for each FINISHED
child run whose ``orchestra/manifest.json`` says its outputs were uploaded (``--mlflow-artifacts``),
every output is downloaded, checked against the manifest's sha256 and size, published into the
object store, and the stages are recorded as a local run with the original orchestra run id, so
the ordinary planner compares keys and loads them. A stage whose download does not match its
manifest is left out (and reported): it runs again, nothing unverified is ever used.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestra.core.errors import RunNotFoundError
from orchestra.core.layout import home_path
from orchestra.core.records import StageUpdate
from orchestra.core.report import STDERR
from orchestra.core.status import MlflowStatus, RunStatus, StageStatus
from orchestra.core.tracking_uri import TrackingURI
from orchestra.integrations.tracking import ops as opsmod
from orchestra.integrations.tracking.rest import (
    Rejected,
    RestClient,
    TrackingError,
    Unavailable,
    params_of,
    tags_of,
)
from orchestra.store import artifacts
from orchestra.store import runs as runstore

if TYPE_CHECKING:
    from orchestra.core.report import Reporter


def _note(reporter: Reporter, text: str) -> None:
    reporter.line(f"orchestra: note: {text}")


def import_run(mlflow_run_id: str, uri: TrackingURI, *, reporter: Reporter = STDERR) -> str:
    """Import the mirrored run ``mlflow_run_id``; return the local run id to load from.

    ``reporter`` gets a note per stage left out and one for the import.

    Raises:
        RunNotFoundError: no such MLflow run, not made by orchestra, or nothing loadable in it.
        TrackingError: the server cannot be reached (exit 1).
    """
    client = RestClient(uri)
    try:
        run = _get(client, mlflow_run_id, uri)
        tags = tags_of(run)
        if tags.get("orchestra.stage") and tags.get("mlflow.parentRunId"):
            run = _get(client, tags["mlflow.parentRunId"], uri)
            tags = tags_of(run)
        orchestra_id = tags.get("orchestra.run_id", "")
        if not re.fullmatch(r"[0-9a-f]{32}", orchestra_id):
            raise RunNotFoundError(f"--load-from {mlflow_run_id}: MLflow run on {uri.display} was not made by orchestra",
                                   hint="no orchestra.run_id tag; give the id of a run orchestra mirrored")
        try:
            return runstore.resolve_run_id(orchestra_id)  # mirrored from this home: use it as is
        except RunNotFoundError:
            pass
        info = run["info"]
        children = client.search_runs([info["experiment_id"]], f"tags.`mlflow.parentRunId` = '{info['run_id']}'")
        staging_root = Path(tempfile.mkdtemp(prefix="mlflow-import-", dir=_tmp_dir()))
        try:
            stages = [s for s in (_import_stage(client, child, orchestra_id, staging_root, reporter) for child in
                                  sorted(children, key=lambda c: c["info"].get("start_time") or 0)) if s]
        finally:
            shutil.rmtree(staging_root, ignore_errors=True)
        if not stages:
            raise RunNotFoundError(
                f"--load-from {mlflow_run_id}: the MLflow run has no stage outputs on {uri.display} to load",
                hint="mirror runs with --mlflow-artifacts so their outputs are uploaded")
        experiment = _experiment_name(client, info["experiment_id"])
    except Unavailable as exc:
        raise TrackingError(f"--load-from {mlflow_run_id}: cannot reach the tracking server ({exc})",
                            hint="start it, or load from a local run (see 'orchestra runs list')") from None
    finally:
        client.close()
    _record(orchestra_id, run, tags, experiment, stages, mlflow_run_id, uri)
    _note(reporter, f"imported {len(stages)} stage(s) of MLflow run {info['run_id']} as run {orchestra_id}")
    return orchestra_id


def _get(client: RestClient, run_id: str, uri: TrackingURI) -> dict[str, Any]:
    try:
        return client.get_run(run_id)
    except Rejected as exc:
        if exc.code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE") or exc.status == 404:
            raise RunNotFoundError(f"no run {run_id!r} in this ORCHESTRA_HOME nor on the tracking server {uri.display}",
                                   hint="see 'orchestra runs list' or the MLflow UI") from None
        raise TrackingError(f"tracking server refused to look up run {run_id}: {exc}") from None


def _experiment_name(client: RestClient, experiment_id: str) -> str:
    try:
        return client.experiment_name(experiment_id)
    except (Rejected, KeyError):
        return "Default"


def _tmp_dir() -> Path:
    return home_path("tmp")


def _import_stage(client: RestClient, child: dict[str, Any], orchestra_id: str, staging_root: Path,
                  reporter: Reporter) -> dict[str, Any] | None:
    info = child["info"]
    tags = tags_of(child)
    name = tags.get("orchestra.stage")
    if not name or info.get("status") != MlflowStatus.FINISHED:
        return None
    try:
        doc = json.loads(client.read_artifact(info["artifact_uri"], opsmod.MANIFEST_ARTIFACT))
    except Rejected:
        _note(reporter, f"stage {name}: MLflow run {info['run_id']} has no {opsmod.MANIFEST_ARTIFACT}; "
                        "it will not be loaded")
        return None
    except ValueError:
        _note(reporter, f"stage {name}: unreadable {opsmod.MANIFEST_ARTIFACT}; it will not be loaded")
        return None
    if not doc.get("outputs"):
        _note(reporter, f"stage {name}: outputs were not uploaded (mirror with --mlflow-artifacts); "
                        "it will not be loaded")
        return None
    manifest = doc.get("manifest") or {}
    staging = staging_root / f"s{len(list(staging_root.iterdir()))}"
    staging.mkdir()
    prefix = doc.get("outputs_prefix") or opsmod.OUTPUTS_PREFIX
    # A stage that loaded its outputs points at the run that uploaded them (same server).
    outputs_at = doc.get("outputs_artifact_uri") or info["artifact_uri"]
    for rel, entry in sorted(manifest.items()):
        target = (staging / rel).resolve()
        if not target.is_relative_to(staging.resolve()):
            _note(reporter, f"stage {name}: manifest path {rel!r} escapes the output directory; it will not be loaded")
            return None
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            sha, size = client.download(outputs_at, f"{prefix}/{rel}", target)
        except Rejected as exc:
            _note(reporter, f"stage {name}: cannot download {rel} ({exc}); it will not be loaded")
            return None
        if sha != entry["sha256"] or size != entry["size"]:
            _note(reporter, f"stage {name}: downloaded {rel} does not match its manifest (sha256 {sha[:12]}, "
                            f"expected {str(entry['sha256'])[:12]}); it will not be loaded")
            return None
        os.chmod(target, 0o755 if int(entry["mode"]) & 0o100 else 0o644)
    dest = home_path("runs", orchestra_id) / (re.sub(r"[^A-Za-z0-9._-]", "_", name) + "-import") / "out"
    published = artifacts.publish(staging, dest)
    if {k: (v["sha256"], v["size"]) for k, v in published.items()} != {k: (v["sha256"], v["size"]) for k, v in manifest.items()}:
        _note(reporter, f"stage {name}: outputs changed while importing; it will not be loaded")
        return None
    return {"name": name, "status": StageStatus.FINISHED, "cache_key": doc.get("cache_key"), "components": doc.get("components") or {},
            "env_key": doc.get("env_key"), "manifest": published, "manifest_digest": artifacts.manifest_digest(published),
            "outputs_dir": str(dest), "metrics": doc.get("metrics") or {},
            "start_time": (info.get("start_time") or 0) / 1000 or None, "end_time": (info.get("end_time") or 0) / 1000 or None,
            "params": {}, "tags": {"orchestra.imported_from": f"mlflow:{info['run_id']}",
                                   "orchestra.imported_server": client.uri.display,
                                   "orchestra.outputs_artifact_uri": outputs_at}}


def _record(orchestra_id: str, run: dict[str, Any], tags: dict[str, str], experiment: str,
            stages: list[dict[str, Any]], ref: str, uri: TrackingURI) -> None:
    local_tags = {k: v for k, v in tags.items() if not k.startswith("mlflow.parentRunId")}
    local_tags["orchestra.imported_from"] = f"mlflow:{run['info']['run_id']}@{uri.display}"
    runstore.create_run(orchestra_id, experiment=experiment, project_uri=tags.get("mlflow.source.name", ""),
                        targets=[s["name"] for s in stages], params=params_of(run), tags=local_tags,
                        stages=[s["name"] for s in stages])
    runstore.update_stages(orchestra_id, [(s["name"], StageUpdate(**{k: v for k, v in s.items() if k != "name"}))
                                          for s in stages])
    runstore.finish_run(orchestra_id, RunStatus.FINISHED, f"imported from MLflow run {ref}")
    end = (run["info"].get("end_time") or 0) / 1000 or time.time()
    runstore.update_run(orchestra_id, start_time=(run["info"].get("start_time") or 0) / 1000 or end, end_time=end)
