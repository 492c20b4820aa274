"""Applying one mirror op: create the target's MLflow runs on demand, then the REST calls of the op.

:class:`Applier` turns one op into REST calls, creating the target's MLflow run first when it
does not exist yet (parent before child). The mirror's deliverer uses one per attempt; the
engine's thread uses one with short timeouts to create a stage's child run before it starts.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from orchestra.core.tracking_uri import TrackingURI
from orchestra.integrations.tracking import logged, queue
from orchestra.integrations.tracking.queue import PARENT, Op, Target
from orchestra.integrations.tracking.rest import Rejected, RestClient, Unavailable
from orchestra.store.artifacts import object_path


class Applier:
    """Applies ops of one tracking server with one client (one per thread).

    Args:
        uri: the server.
        client: this thread's REST client.
        home: ORCHESTRA_HOME of mirror.sqlite.
        creation_lock: shared by every Applier of a run, so a target is created once.
    """

    def __init__(self, uri: TrackingURI, client: RestClient, home: Path | None,
                 creation_lock: threading.Lock) -> None:
        self.uri = uri
        self.client = client
        self.home = home
        self.creation_lock = creation_lock

    def conn(self):  # -> sqlite3.Connection
        return queue.open_db(self.home)

    # -- targets -------------------------------------------------------------------------
    def ensure(self, run_id: str, stage: str, *, lock_timeout: float = -1) -> Target:
        """The target with its MLflow run created (parent first). Raises Unavailable/Rejected."""
        conn = self.conn()
        target = queue.get_target(conn, self.uri.display, run_id, stage)
        if target is None:
            raise Rejected(f"no mirror target for run {run_id[:8]} stage {stage or '(run)'}", status=0, code=None)
        if target.mlflow_run_id:
            return target
        if not self.creation_lock.acquire(timeout=lock_timeout):
            raise Unavailable("another thread is still creating runs on the tracking server")
        try:
            parent_id = None
            if stage != PARENT:
                parent = self._create(queue.get_target(conn, self.uri.display, run_id, PARENT), None)
                parent_id = parent.mlflow_run_id
            return self._create(queue.get_target(conn, self.uri.display, run_id, stage), parent_id)
        finally:
            self.creation_lock.release()

    def _create(self, target: Target | None, parent_id: str | None) -> Target:
        if target is None:
            raise Rejected("the run's parent target is missing", status=0, code=None)
        if target.mlflow_run_id:
            return target
        conn = self.conn()
        experiment_id = target.experiment_id or self._experiment_id(target)
        tags = dict(target.tags)
        if parent_id:
            tags["mlflow.parentRunId"] = parent_id
        info = None
        if target.create_attempts:
            # An earlier attempt may have reached the server with its answer lost: reuse that run.
            info = self._find_existing(experiment_id, target)
        if info is None:
            queue.note_create_attempt(conn, target)
            info = self.client.create_run(experiment_id, start_time=target.start_time, tags=tags,
                                          run_name=target.run_name)
        queue.set_created(conn, target, experiment_id=experiment_id, mlflow_run_id=info["run_id"],
                          artifact_uri=info.get("artifact_uri") or "")
        return queue.get_target(conn, target.uri, target.run_id, target.stage)  # type: ignore[return-value]

    def _experiment_id(self, target: Target) -> str:
        row = self.conn().execute("SELECT experiment_id FROM targets WHERE uri = ? AND run_id = ? AND"
                                  " experiment_id IS NOT NULL LIMIT 1", (target.uri, target.run_id)).fetchone()
        return row["experiment_id"] if row else self.client.experiment_id(target.experiment)

    def _find_existing(self, experiment_id: str, target: Target) -> dict[str, Any] | None:
        runs = self.client.search_runs([experiment_id], f"tags.`orchestra.run_id` = '{target.run_id}'")
        for run in runs:
            tags = {t["key"]: t["value"] for t in run.get("data", {}).get("tags", [])}
            if tags.get("orchestra.stage", PARENT) == target.stage:
                return run["info"]
        return None

    # -- ops ---------------------------------------------------------------------------
    def apply(self, op: Op) -> str | None:
        """Send one op; returns a note when it was skipped on purpose (e.g. a param conflict)."""
        target = self.ensure(op.run_id, op.stage)
        run_id = target.mlflow_run_id
        assert run_id is not None
        payload = op.payload
        if op.kind == "create":  # the run exists now (RUNNING in the MLflow UI while its stage runs)
            return None
        if op.kind == "params":
            return self._params(run_id, dict(payload["params"]))
        if op.kind == "batch":
            metrics = [tuple(m) for m in payload.get("metrics", ())]
            params = dict(payload.get("params") or {})
            try:
                self.client.log_batch(run_id, metrics=metrics, tags=payload.get("tags") or {}, params=params)  # type: ignore[arg-type]
                return None
            except Rejected as exc:
                if exc.code != "INVALID_PARAMETER_VALUE" or not params:
                    raise
            self.client.log_batch(run_id, metrics=metrics, tags=payload.get("tags") or {})  # type: ignore[arg-type]
            return self._params(run_id, params)
        if op.kind == "upload":
            return self._upload(target, payload)
        if op.kind == "model":
            logged.apply_model(self.client, target, payload, attempt=op.attempt)
            return None
        if op.kind == "status":
            self.client.update_run(run_id, payload["status"], payload.get("end_time"))
            return None
        raise Rejected(f"unknown op kind {op.kind!r}", status=0, code=None)

    def _params(self, run_id: str, params: dict[str, str]) -> str | None:
        try:
            self.client.log_batch(run_id, params=params)
            return None
        except Rejected as exc:
            if exc.code != "INVALID_PARAMETER_VALUE":
                raise
        # Stage code logged some of these itself with other text ("0.50" vs "0.5"): its value
        # stands, the others still go in.
        kept = []
        for key, value in params.items():
            try:
                self.client.log_batch(run_id, params={key: value})
            except Rejected as exc:
                if exc.code != "INVALID_PARAMETER_VALUE":
                    raise
                kept.append(key)
        return f"params already logged by the stage with other values: {', '.join(kept)}" if kept else None

    def _upload(self, target: Target, payload: dict[str, Any]) -> str | None:
        artifact = payload["artifact"]
        if "json" in payload:
            doc = payload["json"]
            self.client.upload(target.artifact_uri or "", artifact, json.dumps(doc, indent=1, sort_keys=True).encode())
            if doc.get("outputs"):  # later runs that load this stage point at these outputs
                queue.set_outputs_uri(self.conn(), target, doc.get("outputs_artifact_uri") or target.artifact_uri or "")
            return None
        if "object" in payload:
            path = object_path(payload["object"], bool(payload.get("executable")))
        else:
            path = Path(payload["file"])
        try:
            handle = open(path, "rb")
        except FileNotFoundError:
            if "object" in payload:
                raise Rejected(f"{artifact}: object {payload['object'][:12]} is gone from the object store",
                               status=0, code=None) from None
            return f"{artifact}: no such file {path}"
        with handle:
            if "file" in payload and not os.fstat(handle.fileno()).st_size:
                return None  # an empty log: nothing worth a request
            self.client.upload(target.artifact_uri or "", artifact, handle)
        return None
