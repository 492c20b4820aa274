"""MirrorListener: the events.Listener that mirrors one orchestra run to an MLflow tracking server.

Nothing happens on the server in the engine's thread: stage code logs to the run's own tracking
endpoint (``integrations/endpoint``), whose data is recorded with each stage; the listener
registers the parent and child targets and writes what to send into the outbox (mirror.sqlite):
the MLflow runs themselves are created by the outbox's dispatcher, in order, before their first
operation. ``close`` waits a bounded time for it, and what is left is sent by ``orchestra runs
sync`` (or by the next run mirrored to the same server).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from orchestra.core import log as logger
from orchestra.core import events
from orchestra.core.errors import OrchestraError
from orchestra.core.report import STDERR
from orchestra.core.status import EventStatus, StageStatus, event_mlflow
from orchestra.core.tracking_uri import TrackingURI
from orchestra.integrations.outbox.breaker import Breaker
from orchestra.integrations.outbox.dispatch import Dispatcher
from orchestra.integrations.tracking import ops as opsmod
from orchestra.integrations.tracking import logged, queue
from orchestra.integrations.tracking.deliverer import Policy, dispatcher
from orchestra.integrations.tracking.queue import PARENT
from orchestra.integrations.tracking.rest import Rejected, RestClient, Timeouts, Unavailable
from orchestra.store import runs as runstore

if TYPE_CHECKING:
    from orchestra.core.options import RunOptions
    from orchestra.core.report import Reporter
    from orchestra.planning.prepared import Prepared

log = logger.get(__name__)
REPORT_ARTIFACT = "orchestra/report.html"
_LAST_TRY_S = 2.0  # at the end, a server found down gets one more chance this long


class MirrorListener:
    """Mirrors one run; see the module docstring.

    Args:
        uri: the tracking server.
        prepared: the run's prepared project (stage params and environments).
        options: the run's options (experiment, ``mlflow_artifacts``).
        home: ORCHESTRA_HOME.
        policy: retry delays and synchronous timeouts (tests inject short ones).
        reporter: where notices go (the run's console).
    """

    waits_for = "the MLflow mirror"  # what the run's closing line says it waited for while closing

    def __init__(self, uri: TrackingURI, prepared: Prepared, options: RunOptions, *, home: Path,
                 policy: Policy = Policy(), reporter: Reporter = STDERR) -> None:
        self.uri = uri
        self.key = uri.display
        self.prepared = prepared
        self.experiment = options.recording.experiment
        self.experiment_id = options.recording.experiment_id  # --experiment-id wins over the name
        self.parent_run_id = options.recording.parent_run_id  # --run-id: attach to this run as parent
        self.upload_outputs = bool(options.recording.mlflow_artifacts)
        self.home = home
        self.quiet = options.quiet
        self.policy = policy
        self.reporter = reporter
        self.breaker = Breaker(policy.cooldown_s)
        self._creation_lock = threading.Lock()
        self._sender: Dispatcher | None = None  # the run's background sender, from run_started on
        self.run_id: str | None = None
        self.run_tags: dict[str, str] = {}
        self._children: set[str] = set()
        queue.open_db(home)  # schema now, not at the first event

    # -- engine thread: bookkeeping only ----------------------------------------------------
    def _stage_started(self, event: events.Event) -> None:
        """Register the stage's child run (created on the server by the outbox's sender, in order).

        Stage code logs to the run's own endpoint (``MLFLOW_RUN_ID`` is its local run): nothing here
        waits on the tracking server, so a down or cold server never slows or misroutes a stage."""
        name = event.stage
        if self.run_id is None or name is None or name in self._children:
            return
        environment = self.prepared.environments.get(name)
        queue.add_target(queue.open_db(self.home), self.key, self.run_id, name, experiment=self.experiment,
                         start_time=event.timestamp, run_name=name,
                         tags=opsmod.child_tags(self.run_tags, self.run_id, name,
                                                env_kind=environment.kind if environment else None,
                                                cache_key=event.cache_key,
                                                container=environment.container if environment else None))
        self._children.add(name)
        declared = self._declared(name)  # the MLproject params go first, as `mlflow run` logs them
        self._enqueue(name, [("create", {}), *([("params", {"params": declared})] if declared else [])])

    # -- events --------------------------------------------------------------------------
    def handle(self, event: events.Event) -> None:
        try:
            if event.name == events.RUN_STARTED:
                self._run_started(event)
            elif event.name == events.STAGE_STARTED and event.stage is not None:
                self._stage_started(event)
            elif event.name == events.STAGE_ENDED and event.stage is not None:
                self._stage_ended(event)
            elif event.name == events.RUN_ENDED and self.run_id is not None:
                pipeline = opsmod.pipeline_metric_ops(runstore.get_run(self.run_id).metrics, event.timestamp)
                self._enqueue(PARENT, [*pipeline, ("status", {"status": str(event_mlflow(event.status)),
                                                              "end_time": event.timestamp})])
        except Exception:  # noqa: BLE001 - a listener never breaks a run
            log.warning("MLflow mirror: event %s not recorded", event.name, exc_info=True)

    def wants_report(self) -> bool:
        """False while the server is known to be down (its breaker is open): the run's end then
        spends nothing on a report that could not be sent now."""
        return not self.breaker.is_open(self.key)

    def attach_report(self, path: Path) -> None:
        """Upload the run's HTML report (a file the application wrote at run end) to the parent
        MLflow run as ``orchestra/report.html``, through the outbox like every other operation."""
        self._enqueue(PARENT, [("upload", {"file": str(path), "artifact": REPORT_ARTIFACT})])

    def _enqueue(self, stage: str, ops: opsmod.OpList) -> None:
        if self.run_id is None or not ops:
            return
        queue.enqueue(queue.open_db(self.home), self.key, self.run_id, stage, ops)
        if self._sender is not None:
            self._sender.wake()

    def _run_started(self, event: events.Event) -> None:
        self.run_id = event.run_id
        self.run_tags = dict(event.tags)
        spec_name = getattr(self.prepared.spec, "name", None)
        queue.add_target(queue.open_db(self.home), self.key, event.run_id, PARENT, experiment=self.experiment,
                         start_time=event.timestamp, run_name=event.tags.get("mlflow.runName") or opsmod.run_name(spec_name, event.run_id),
                         tags=opsmod.parent_tags(event.tags, event.run_id))
        self._sender = dispatcher(self.uri, self.home, event.run_id, breaker=self.breaker, policy=self.policy,
                                  creation_lock=self._creation_lock, reporter=self.reporter)
        self._preset_parent(event.run_id)
        self._enqueue(PARENT, [("create", {})])
        if event.params:
            self._enqueue(PARENT, [("params", {"params": {k: str(v) for k, v in event.params.items()}})])
        self._sender.start()

    def _declared(self, name: str) -> dict[str, str]:
        """The stage's MLproject params as the text that was given (MLflow's rule: ``-P alpha=5``
        is ``5``, on the parent and on the child alike)."""
        p = self.prepared.params.get(name)
        return {**dict(p.text), **dict(p.extras)} if p is not None else {}

    def _preset_parent(self, run_id: str) -> None:
        """mlflow run's ``--experiment-id`` (the experiment by id, not by name) and ``--run-id``
        (an existing MLflow run becomes the parent: no new one is created, the stages' child runs
        nest under it and it ends with the run's status)."""
        conn = queue.open_db(self.home)
        target = queue.get_target(conn, self.key, run_id, PARENT)
        if target is None or target.mlflow_run_id:
            return
        if self.experiment_id:
            queue.set_experiment_id(conn, target, self.experiment_id)
        if not self.parent_run_id:
            return
        connect, read = self.policy.sync_timeouts
        client = RestClient(self.uri, Timeouts(quick=(connect, read), transfer=(connect, read)))
        try:
            info = client.get_run(self.parent_run_id)["info"]
        except (Unavailable, Rejected) as exc:
            self.reporter.notice(f"--run-id {self.parent_run_id}: cannot read it from {self.key} ({exc}); "
                                 "the run is mirrored to a new MLflow run")
            return
        queue.set_created(conn, target, experiment_id=str(info["experiment_id"]), mlflow_run_id=self.parent_run_id,
                          artifact_uri=info.get("artifact_uri") or "")

    def _stage_ended(self, event: events.Event) -> None:
        name = event.stage
        assert name is not None and self.run_id is not None
        if event.status == EventStatus.LOADED and event.loaded_from:
            self._loaded(event, name, self._declared(name))
            return
        if name not in self._children:
            return  # skipped, or killed before it started: no child run
        declared: dict[str, str] = {}  # sent when the stage started, before anything the stage logged
        conn = runstore.db()
        record = opsmod.stage_row(conn, self.run_id, name)
        if record is None:
            return
        ops = opsmod.stage_end_ops(record, metrics=opsmod.metric_rows(conn, self.run_id, name), declared_params=declared,
                                   run_id=self.run_id, upload_outputs=self.upload_outputs,
                                   end_time=record.get("end_time") or event.timestamp)
        self._enqueue(name, ops)

    def _loaded(self, event: events.Event, name: str, declared: Mapping[str, str]) -> None:
        source = runstore.stage_of(event.loaded_from["run_id"], event.loaded_from["stage"])  # type: ignore[index]
        environment = self.prepared.environments.get(name)
        loaded = f"{event.loaded_from['run_id']}/{event.loaded_from['stage']}"  # type: ignore[index]
        queue.add_target(queue.open_db(self.home), self.key, self.run_id, name, experiment=self.experiment,  # type: ignore[arg-type]
                         start_time=event.timestamp, run_name=name,
                         tags=opsmod.child_tags(self.run_tags, self.run_id, name,  # type: ignore[arg-type]
                                                env_kind=environment.kind if environment else None,
                                                cache_key=event.cache_key, loaded_from=loaded,
                                                container=environment.container if environment else None))
        record = {"name": name, "status": StageStatus.LOADED, "cache_key": event.cache_key, "loaded_from": event.loaded_from,
                  "manifest": source.manifest if source else None,
                  "manifest_digest": source.manifest_digest if source else None,
                  "components": source.components if source else {}, "metrics": source.metrics if source else {},
                  "env_key": environment.key if environment else None,
                  "models": logged.models_of(runstore.db(), event.loaded_from["run_id"], event.loaded_from["stage"])}  # type: ignore[index]
        metrics = opsmod.loaded_metric_rows(runstore.db(), event.loaded_from, source.metrics if source else {},
                                            event.timestamp)
        ref = (opsmod.outputs_ref(queue.open_db(self.home), runstore.db(), self.key, event.loaded_from)
               if self.upload_outputs else None)
        ops = opsmod.stage_end_ops(record, metrics=metrics, declared_params=declared, run_id=self.run_id,  # type: ignore[arg-type]
                                   upload_outputs=self.upload_outputs, end_time=event.timestamp, outputs_ref=ref)
        # What its stage code logged straight to this server is on the earlier child run: copied too.
        earlier = queue.get_target(queue.open_db(self.home), self.key, event.loaded_from["run_id"],  # type: ignore[index]
                                   event.loaded_from["stage"])  # type: ignore[index]
        if earlier is not None and earlier.mlflow_run_id:
            ops.insert(len(ops) - 1, ("copy_metrics", {"from": earlier.mlflow_run_id, "skip": sorted({m[0] for m in metrics})}))
        self._enqueue(name, ops)

    # -- end of run ------------------------------------------------------------------------
    def _last_try(self, sender: Dispatcher) -> None:
        """The server was found down: one more attempt (at most _LAST_TRY_S), not a full drain."""
        assert self.run_id is not None
        queue.make_due(queue.open_db(self.home), self.key, self.run_id)
        self.breaker.try_now(self.key)
        sender.drain(_LAST_TRY_S, stop_on_failure=True)

    def _catch_up(self, conn: Any, deadline: float) -> None:
        """Earlier runs mirrored to this server left operations pending (it was down, or their
        orchestra was killed). It answers now, and this process has its credentials: send those
        too, within what is left of the drain, as webhook deliveries are resumed by later runs."""
        from orchestra.integrations.tracking.sync import sync

        for earlier in queue.runs_pending(conn, self.key, except_run=self.run_id):
            left = deadline - time.monotonic()
            if left <= 0.1:
                return
            try:
                sync(earlier, self.uri, upload_outputs=False, timeout_s=left)
            except OrchestraError as exc:  # still running elsewhere, or the server stopped answering
                log.info("MLflow mirror of earlier run %s not caught up: %s", earlier, exc)
                continue
            if not self.quiet:
                self.reporter.notice(f"also sent the pending mirror of earlier run {earlier} to {self.key}")

    def close(self, drain_s: float) -> None:
        """Wait at most ``drain_s`` for the outbox (one quick last try when the server is known down)."""
        try:
            sender = self._sender
            if self.run_id is None or sender is None:
                return
            conn = queue.open_db(self.home)
            if self.breaker.is_open(self.key):
                self._last_try(sender)
            down = self.breaker.is_open(self.key)
            deadline = time.monotonic() + (0.0 if down else max(0.0, drain_s))
            if not down:
                sender.drain(drain_s)
            sender.stop()
            pending = queue.counts(conn, self.key, self.run_id).get(queue.PENDING, 0)
            if not pending and not self.breaker.is_open(self.key):
                self._catch_up(conn, deadline)
            parent = queue.get_target(conn, self.key, self.run_id, PARENT)
            if pending:
                why = f" ({sender.last_error})" if sender.last_error else ""
                self.reporter.notice(f"{pending} MLflow mirror operation(s) of run {self.run_id} not sent to "
                                     f"{self.key}{why}; send them with: orchestra runs sync {self.run_id} "
                                     f"--tracking-uri {self.key}")
            elif parent is not None and parent.mlflow_run_id and not self.quiet:
                self.reporter.notice(f"mirrored to {self.key} as MLflow run {parent.mlflow_run_id} "
                                     f"(experiment {parent.experiment_id})")
        except Exception:  # noqa: BLE001
            log.warning("MLflow mirror did not close cleanly", exc_info=True)
