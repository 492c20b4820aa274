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

_SWEEP_LOCK = threading.Lock()  # one sweep run, however many members create their parent at once


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
        self.rejected: list[str] = []  # what the server refused while applying (one line each)

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
            return self._create_nested(conn, run_id, stage)
        finally:
            self.creation_lock.release()

    def _create_nested(self, conn: Any, run_id: str, stage: str) -> Target:
        """Create the target and the runs above it: sweep run, then member's parent, then stage."""
        target = queue.get_target(conn, self.uri.display, run_id, stage)
        parent_id = None
        if stage == PARENT and target is not None and target.tags.get(queue.SWEEP_TAG):
            with _SWEEP_LOCK:  # members' senders run at once, each with its own creation lock
                sweep = queue.get_target(conn, self.uri.display, target.tags[queue.SWEEP_TAG], queue.SWEEP)
                parent_id = self._create(sweep, None).mlflow_run_id if sweep is not None else None
        elif stage not in (PARENT, queue.SWEEP):
            parent_id = self._create_nested(conn, run_id, PARENT).mlflow_run_id
        return self._create(target, parent_id)

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
        if target.stage == queue.SWEEP:  # a sweep run carries the sweep id, not a run id
            runs = self.client.search_runs([experiment_id], f"tags.`{queue.SWEEP_RUN_TAG}` = '{target.run_id}'")
            return runs[0]["info"] if runs else None
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
            return self._batch(target, [], {}, dict(payload["params"]))
        if op.kind == "batch":
            return self._batch(target, [tuple(m) for m in payload.get("metrics", ())], dict(payload.get("tags") or {}),
                               dict(payload.get("params") or {}))
        if op.kind == "copy_metrics":
            source = self.client.get_run(payload["from"]).get("data", {}).get("metrics", [])
            skip = set(payload.get("skip") or ())
            rows = [(m["key"], m["value"], int(m.get("step") or 0), (m.get("timestamp") or 0) / 1000)
                    for m in source if m["key"] not in skip]
            return self._batch(target, rows, {}, {})
        if op.kind == "upload":
            return self._upload(target, payload)
        if op.kind == "model":
            logged.apply_model(self.client, target, payload, attempt=op.attempt)
            return None
        if op.kind == "status":
            self.client.update_run(run_id, payload["status"], payload.get("end_time"))
            return None
        raise Rejected(f"unknown op kind {op.kind!r}", status=0, code=None)

    def _batch(self, target: Target, metrics: list[Any], tags: dict[str, str], params: dict[str, str]) -> str | None:
        """One log-batch; when the server refuses it (a param logged before with other text, a key
        too long, …) every item goes on its own, so the rest lands and each refusal is named once."""
        run_id = target.mlflow_run_id
        assert run_id is not None
        try:
            self.client.log_batch(run_id, metrics=metrics, tags=tags, params=params)
            return None
        except Rejected as exc:
            if exc.status != 400:
                raise
        by_key: dict[str, list[Any]] = {}
        for row in metrics:
            by_key.setdefault(row[0], []).append(row)
        items = [*(("metric", k, rows[-1][1], {"metrics": rows}) for k, rows in by_key.items()),
                 *(("tag", k, v, {"tags": {k: v}}) for k, v in tags.items()),
                 *(("param", k, v, {"params": {k: v}}) for k, v in params.items())]
        refused = []
        for kind, key, value, body in items:
            try:
                self.client.log_batch(run_id, **body)
            except Rejected as exc:
                if exc.status != 400:
                    raise
                shown = str(value) if len(str(value)) <= 100 else str(value)[:100] + "…"
                refused.append(f"{kind} {key}")
                self.rejected.append(f"MLflow rejected {kind} {key}={shown} on run {run_id} "
                                     f"({f'stage {target.stage}' if target.stage else 'the parent'} of orchestra run "
                                     f"{target.run_id[:8]}): {exc}")
        return f"refused by the server: {', '.join(refused)}" if refused else None

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
