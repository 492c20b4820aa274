"""``orchestra runs sync RUN_ID``: finish (or redo from the run store) the mirror of one run.

A run whose mirror left operations pending (server down, orchestra killed) has them in
mirror.sqlite: they are sent in order, now. A run never mirrored to this server (no tracking
URI at the time, or another server) is replayed from the run store: parent, one child per stage
that ran or loaded, params, metrics history, tags, logs, manifests (and outputs with
``--mlflow-artifacts``), statuses and times.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from orchestra.core.errors import OrchestraError, RunNotFoundError
from orchestra.core.layout import orchestra_home
from orchestra.core.status import RunStatus, StageStatus, run_mlflow, stage_mlflow
from orchestra.core.tracking_uri import TrackingURI
from orchestra.integrations.tracking import ops as opsmod
from orchestra.integrations.tracking import queue
from orchestra.integrations.tracking.deliverer import send_pending
from orchestra.integrations.tracking.queue import PARENT
from orchestra.store import runs as runstore


class SyncError(OrchestraError):
    """The server could not take everything; what is left stays queued (exit 1)."""


@dataclass(frozen=True, slots=True)
class SyncReport:
    """What one mirror sync sent to the MLflow server."""

    run_id: str
    mlflow_run_id: str | None
    experiment_id: str | None
    sent: int
    replayed: bool
    dropped: tuple[str, ...]


def sync(run_id: str, uri: TrackingURI, *, upload_outputs: bool, timeout_s: float,
         experiment: str | None = None) -> SyncReport:
    """See the module docstring. Raises SyncError when operations are still pending afterwards."""
    try:
        full = runstore.resolve_run_id(run_id)
    except RunNotFoundError:
        sweep = queue.get_target(queue.open_db(orchestra_home()), uri.display, run_id.strip(), queue.SWEEP)
        if sweep is None:
            raise
        return _sync_sweep(sweep, uri, timeout_s)
    record = runstore.get_run(full)
    if record.status == RunStatus.RUNNING:
        raise RunNotFoundError(f"run {full} is still running", hint="its own process mirrors it; sync it after it ends")
    home = orchestra_home()
    conn = queue.open_db(home)
    replayed = not queue.targets_of(conn, full, uri.display)
    if replayed:
        _replay(conn, record, uri, upload_outputs=upload_outputs, experiment=experiment)
    else:
        _close_unfinished(conn, record, uri, upload_outputs=upload_outputs)
    before = queue.counts(conn, uri.display, full)
    ok, reason = send_pending(uri, home, full, timeout_s)
    after = queue.counts(conn, uri.display, full)
    parent = queue.get_target(conn, uri.display, full, PARENT)
    if not ok:
        pending = after.get(queue.PENDING, 0)
        raise SyncError(f"{pending} operation(s) of run {full} not sent to {uri.display}: {reason or 'timed out'}",
                        hint="they stay queued: run `orchestra runs sync` again when the server answers")
    sent = after.get(queue.DONE, 0) - before.get(queue.DONE, 0)
    return SyncReport(full, parent.mlflow_run_id if parent else None, parent.experiment_id if parent else None,
                      sent, replayed, tuple(queue.dead_errors(conn, uri.display, full)))


def _sync_sweep(sweep: queue.Target, uri: TrackingURI, timeout_s: float) -> SyncReport:
    """A sweep id: send what is left of the sweep's own MLflow run (its members are synced by run id)."""
    home = orchestra_home()
    ok, reason = send_pending(uri, home, sweep.run_id, timeout_s)
    conn = queue.open_db(home)
    if not ok:
        raise SyncError(f"the MLflow run of sweep {sweep.run_id} is not complete on {uri.display}: {reason or 'timed out'}",
                        hint="it stays queued: run `orchestra runs sync` again when the server answers")
    done = queue.get_target(conn, uri.display, sweep.run_id, queue.SWEEP)
    return SyncReport(sweep.run_id, done.mlflow_run_id if done else None, done.experiment_id if done else None,
                      queue.counts(conn, uri.display, sweep.run_id).get(queue.DONE, 0), False,
                      tuple(queue.dead_errors(conn, uri.display, sweep.run_id)))


def _replay(conn, record, uri: TrackingURI, *, upload_outputs: bool, experiment: str | None) -> None:  # noqa: ANN001

    run_id = record.run_id
    key = uri.display
    tags = record.tags
    with queue.transaction(conn):
        queue.add_target(conn, key, run_id, PARENT, experiment=experiment or record.experiment,
                         start_time=record.start_time, tags=opsmod.parent_tags(tags, run_id),
                         run_name=opsmod.run_name(None, run_id))
    if record.params:
        queue.enqueue(conn, key, run_id, PARENT, [("params", {"params": {k: str(v) for k, v in record.params.items()}})])
    store = runstore.db()
    for stage in record.stages:
        if stage_mlflow(stage.status) is None or (stage.status != StageStatus.LOADED and not stage.start_time):
            continue  # pending/skipped, or killed before it started: no child run, as when mirrored live
        row = opsmod.stage_row(store, run_id, stage.name)
        if row is None:
            continue
        loaded = row["loaded_from"]
        with queue.transaction(conn):
            queue.add_target(conn, key, run_id, stage.name, experiment=experiment or record.experiment,
                             start_time=row["start_time"] or record.start_time, run_name=stage.name,
                             tags=opsmod.child_tags(tags, run_id, stage.name, env_kind=None,
                                                    cache_key=row["cache_key"],
                                                    loaded_from=f"{loaded['run_id']}/{loaded['stage']}" if loaded else None))
        if loaded:
            metrics = opsmod.loaded_metric_rows(store, loaded, row["metrics"], row["end_time"] or record.start_time)
        else:
            metrics = opsmod.metric_rows(store, run_id, stage.name)
        declared = _declared(record.params, stage.name, row["components"] or {})
        ref = opsmod.outputs_ref(conn, store, key, loaded) if upload_outputs else None
        queue.enqueue(conn, key, run_id, stage.name, opsmod.stage_end_ops(
            row, metrics=metrics, declared_params=declared, run_id=run_id, upload_outputs=upload_outputs,
            end_time=row["end_time"] or record.end_time or time.time(), outputs_ref=ref))
    queue.enqueue(conn, key, run_id, PARENT, [*opsmod.pipeline_metric_ops(record.metrics, record.end_time),
                                              ("status", {"status": str(run_mlflow(record.status)),
                                                          "end_time": record.end_time})])


def _declared(run_params: dict[str, str], stage: str, components: dict) -> dict[str, str]:  # type: ignore[type-arg]
    """A stage's MLproject params as given: recorded at run level as "k" (all stages agree) or
    "stage.k"; which names the stage declares, its key components say."""
    names = [*(components.get("params") or {}), *(components.get("extras") or {})]
    found = {k: run_params.get(f"{stage}.{k}", run_params.get(k)) for k in names}
    prefix = stage + "."
    found.update({k[len(prefix):]: v for k, v in run_params.items() if k.startswith(prefix)})
    return {k: str(v) for k, v in found.items() if v is not None}


def _close_unfinished(conn, record, uri: TrackingURI, *, upload_outputs: bool) -> None:  # noqa: ANN001
    """A process that died (SIGKILL) never queued the end of its run: queue it from the run store."""
    run_id = record.run_id
    closed = {row["stage"] for row in conn.execute(
        "SELECT DISTINCT stage FROM ops WHERE uri = ? AND run_id = ? AND kind = 'status'", (uri.display, run_id))}
    store = runstore.db()
    for target in queue.targets_of(conn, run_id, uri.display):
        if target.stage in closed or target.stage == PARENT:
            continue
        row = opsmod.stage_row(store, run_id, target.stage)
        if row is None or stage_mlflow(row["status"]) is None:
            continue
        queue.enqueue(conn, uri.display, run_id, target.stage, opsmod.stage_end_ops(
            row, metrics=opsmod.metric_rows(store, run_id, target.stage), declared_params={}, run_id=run_id,
            upload_outputs=upload_outputs, end_time=row["end_time"] or record.end_time or time.time()))
    if PARENT not in closed:
        status = str(run_mlflow(record.status))
        queue.enqueue(conn, uri.display, run_id, PARENT, [*opsmod.pipeline_metric_ops(record.metrics, record.end_time),
                                                          ("status", {"status": status, "end_time": record.end_time})])
