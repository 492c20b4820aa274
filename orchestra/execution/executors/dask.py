"""The Dask executor: ready stages go to an existing Dask cluster (``--executor dask://HOST:PORT``).

orchestra keeps the DAG; Dask only places single attempts on workers, honouring each stage's
``resources``. Only the attempt description goes out and only a small outcome comes back (as an
event on the client's topic, in the worker's batch that reports the task's end, so a stage costs
no gather round trip; output lines come the same way):
files move through the driver's shared paths or the ``ORCHESTRA_ARTIFACTS`` store (where the
files the driver itself received for an attempt, the tracking endpoint's artifact uploads, join
the worker's outputs when they are pulled). A worker that
dies mid-stage makes the attempt fail (the stage's ``retries`` apply) instead of Dask silently
running it again: the driver watches the scheduler's ``remove-worker`` events.

Requirements on the cluster: the same orchestra (and distributed) importable on the scheduler
and every worker. Imported only when a dask executor is asked for.
"""

from __future__ import annotations

import pickle
import queue
import shutil
import threading
import uuid
from pathlib import Path
from typing import Any, Callable, Mapping

from orchestra import __version__
from orchestra.core import settings
from orchestra.core.errors import BadInputError, OrchestraError
from orchestra.core.status import AttemptStatus
from orchestra.execution.executors.base import StageTask, TaskOutcome
from orchestra.execution.executors.daskconnect import connect, probe_worker, prompt_submits
from orchestra.execution.executors.worker import RemoteTask, run_dask
from orchestra.execution.process import LineSink
from orchestra.store import artifacts

class DaskExecutor:
    """Runs StageTasks on a Dask cluster."""

    def __init__(self, address: str, *, store_url: str | None = None,
                 sink_for: Callable[[str], LineSink | None] | None = None,
                 connect_timeout: float | None = None) -> None:
        self.address = address
        self.store = None
        if store_url:  # a bad store URL is a configuration error: say so before any network
            from orchestra.store.remote import RemoteStore

            self.store = RemoteStore(store_url)
        self.client = connect(address, connect_timeout)
        prompt_submits(self.client)
        self._events: queue.Queue[tuple[str, str, Any]] = queue.Queue()
        self._running: dict[str, tuple[Any, StageTask]] = {}
        self._code: dict[str, Mapping[str, Any]] = {}
        self._settled: dict[str, Any] = {}  # key → future, released once the next stages are submitted
        # Submitting ahead: each stage's key and future while it runs (its children's upstream),
        # the stages submitted ahead of each stage, those whose upstream outputs changed here.
        self._keys: dict[str, str] = {}
        self._futures: dict[str, Any] = {}
        self._below: dict[str, list[str]] = {}
        self._spoiled: set[str] = set()
        self._publish_here = False
        self._home = str(settings.home())
        self._lock = threading.Lock()
        self._cancelling = False
        self.client.subscribe_topic("all", self._on_cluster_event)
        # Workers send outcomes (with the tasks' end, in one batch: no gather round trip per stage)
        # and output lines as events on the client's own topic, which the scheduler empties once
        # the client is gone: a long-lived scheduler keeps nothing of past runs.
        self._topic = str(self.client.id)
        self.client.subscribe_topic(self._topic, self._on_event)
        self._sink_for = sink_for
        self._sinks: dict[str, LineSink | None] = {}

    # -- cluster facts, checked before the run starts -----------------------------------
    def workers(self) -> dict[str, dict[str, Any]]:
        return dict(self.client.scheduler_info(n_workers=-1)["workers"])

    def slots(self) -> int:
        """Total worker threads: the default number of stages in flight."""
        return max(1, sum(int(w.get("nthreads", 1)) for w in self.workers().values()))

    def preflight(self, requests: Mapping[str, Mapping[str, Any]], probe: Path | None = None,
                  project_dir: Path | None = None) -> None:
        """Fail fast (exit 2): no workers, a stage no worker can ever satisfy, workers with another
        orchestra, or — without an artifact store — workers that cannot see the driver's files
        (``probe``, a file written here, and ``project_dir``)."""
        from orchestra.mlproject import resources

        workers = self.workers()
        if not workers:
            raise BadInputError(f"the Dask scheduler at {self.address} has no workers",
                                where="--executor", hint="start one with dask worker " + self.address)
        offers = {addr: {k: float(v) for k, v in (w.get("resources") or {}).items()} for addr, w in workers.items()}
        resources.check_satisfiable(requests, offers, cluster=self.address)
        self._check_workers(probe if self.store is None else None, project_dir)

    def _check_workers(self, probe: Path | None, project_dir: Path | None) -> None:
        token = uuid.uuid4().hex
        if probe is not None:
            probe.write_text(token)
        try:
            seen = self.client.run(probe_worker, str(probe) if probe else None, str(project_dir or ""))
        finally:
            if probe is not None:
                probe.unlink(missing_ok=True)
        # Workers unpickle orchestra's task and result types: another version breaks subtly.
        other = sorted(f"{addr} has {version}" for addr, (version, _t, _h) in seen.items() if version != __version__)
        if other:
            raise BadInputError(f"Dask workers run another orchestra than this machine ({__version__}): "
                                + ", ".join(other), where="--executor",
                                hint="install the same orchestra on the driver, the scheduler and every worker")
        blind = sorted(addr for addr, (_v, value, _h) in seen.items() if value != token)
        if probe is not None and blind:
            raise BadInputError(f"Dask workers {', '.join(blind)} cannot see this machine's files "
                                f"({probe.parent}, {project_dir})", where="--executor",
                                hint="set ORCHESTRA_ARTIFACTS=s3://bucket/prefix or a file:// URL on a shared "
                                     "filesystem, or share ORCHESTRA_HOME and the project at the same paths")
        # Workers that see this machine's files and use its ORCHESTRA_HOME publish outputs
        # themselves: a stage submitted ahead then finds its upstream outputs without the driver.
        self._publish_here = probe is not None and all(h == self._home for _v, _t, h in seen.values())

    # -- the Executor protocol ------------------------------------------------------------
    @property
    def ahead(self) -> bool:
        """Whether a stage may be submitted before its upstream stage ended (``submit_after``):
        its worker must get that stage's published outputs without the driver, so an artifact
        store, or shared paths with workers that use this machine's ``ORCHESTRA_HOME``."""
        return self.store is not None or self._publish_here

    def submit_after(self, task: StageTask, after: tuple[str, ...], step_parts: Mapping[str, Any] | None) -> None:
        """Submit ``task`` ahead of the end of ``after`` (stages submitted and still running): Dask
        starts it on their end, with their outcomes; if one did not end OK, its command never runs
        (see ``worker.after_upstream``). Its inputs' manifests and step base come from them."""
        futures = tuple(self._futures[parent] for parent in after)
        self.submit(task, after=after, upstream=futures, step_parts=step_parts)

    def withdraw(self, stage: str) -> None:
        """Forget a stage submitted ahead whose start the engine took back (its upstream stage
        failed or is retried, or the run stops): its task is cancelled, its outcome never reported."""
        key = self._keys.pop(stage, None)
        with self._lock:
            entry = self._running.pop(key, None) if key else None
        self._futures.pop(stage, None)
        self._below.pop(stage, None)
        self._spoiled.discard(stage)
        if entry is not None:
            self._sinks.pop(stage, None)
            entry[0].cancel(force=True)

    def spoiled(self, stage: str) -> bool:
        """A stage submitted ahead whose upstream outputs changed here after the worker sent them
        (files the tracking endpoint received joined them): it must be withdrawn and submitted again."""
        return stage in self._spoiled

    def submit(self, task: StageTask, *, after: tuple[str, ...] = (), upstream: tuple[Any, ...] = (),
               step_parts: Mapping[str, Any] | None = None) -> None:
        from orchestra.mlproject import resources

        key = f"orchestra-{task.stage}-{task.attempt}-{uuid.uuid4().hex[:12]}"
        code = None
        if self.store is not None:
            from orchestra.store import remote

            code = self._code_manifest(task.cwd)
            for manifest in task.input_manifests.values():
                if manifest:
                    remote.push(self.store, manifest)  # loaded upstream outputs may exist only here
        shipped = task if not task.overlay_env else _without_env(task)
        remote_task = RemoteTask(task=shipped, key=key, store_url=self.store.url if self.store else None,
                                 code_manifest=code, lines_topic=self._topic if self._sink_for else None,
                                 outcome_topic=self._topic, publish_here=self._publish_here, home=self._home, after=after,
                                 step_parts=step_parts)
        if self._sink_for is not None:
            self._sinks[task.stage] = self._sink_for(task.stage)
        future = self.client.submit(run_dask, remote_task, *upstream, key=key, pure=False,
                                    resources=resources.labels(task.resources) or None)
        with self._lock:
            self._running[key] = (future, task)
        self._keys[task.stage] = key
        self._futures[task.stage] = future
        for parent in after:
            self._below.setdefault(parent, []).append(task.stage)
        future.add_done_callback(lambda _f, key=key: self._on_done(key))

    def wait_any(self, timeout: float | None = None) -> list[TaskOutcome]:
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        # Released only now, after the engine submitted what their outcomes made ready: the
        # scheduler's "free" message to a worker would otherwise hold back (by its batching
        # interval) the next stage sent to the same worker.
        self._settled.clear()
        while self._running:
            wait = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
            if wait <= 0:
                return []
            try:
                first = self._events.get(timeout=wait)  # short slices: signals stay prompt
            except queue.Empty:
                continue
            batch = [first]
            while True:
                try:
                    batch.append(self._events.get_nowait())
                except queue.Empty:
                    break
            outcomes = [o for o in (self._settle(*item) for item in batch) if o is not None]
            if outcomes:
                return outcomes
        return []

    def cancel(self) -> None:
        self._cancelling = True  # set first: the futures' own callbacks may report before ours
        with self._lock:
            futures = [future for future, _task in self._running.values()]
            keys = list(self._running)
        if futures:
            try:
                self.client.cancel(futures, force=True)
            except Exception:  # noqa: BLE001 - a dead scheduler: the workers free the keys anyway
                pass
        for key in keys:
            self._events.put(("cancelled", key, ""))

    def close(self) -> None:
        try:
            self.client.close(timeout=5)
        except Exception:  # noqa: BLE001 - closing must not hide the run's result
            pass

    @property
    def pending(self) -> int:
        return len(self._running)

    # -- internals ------------------------------------------------------------------------
    def _on_cluster_event(self, event: tuple[float, Any]) -> None:
        msg = event[1] if isinstance(event, (tuple, list)) else event
        if not isinstance(msg, dict) or msg.get("action") != "remove-worker" or msg.get("expected"):
            return
        worker = str(msg.get("worker", "?"))
        for key in msg.get("processing-tasks") or ():
            if key in self._running or key in self._settled:
                self._events.put(("lost", str(key), worker))

    def _on_done(self, key: str) -> None:
        if key in self._running:  # usually settled by its outcome event already: no wake-up then
            self._events.put(("done", key, ""))

    def _on_event(self, event: tuple[float, Any]) -> None:
        """A worker's ``["outcome", key, pickled outcome]`` or ``["line", stage, stream, line]``
        (the scheduler's own events about this client, dicts, are not ours)."""
        msg = event[1] if isinstance(event, (tuple, list)) and len(event) == 2 else None
        if not isinstance(msg, (list, tuple)) or len(msg) < 3:
            return
        if msg[0] == "outcome" and len(msg) == 3:
            self._events.put(("outcome", str(msg[1]), msg[2]))  # a key settled already is ignored
        elif msg[0] == "line" and len(msg) == 4:
            sink = self._sinks.get(msg[1])
            if sink is not None:
                sink(msg[2], msg[3])

    def _settle(self, kind: str, key: str, detail: Any) -> TaskOutcome | None:
        with self._lock:
            entry = self._running.pop(key, None)
        if entry is None:
            held = self._settled.get(key) if kind == "lost" else None
            if held is not None and not held.done():
                # Settled by its outcome event, but its worker died before the task returned:
                # Dask would run it again elsewhere while this client still holds it.
                held.cancel()
            return None  # already settled (by its outcome event; lost, then its cancellation reported done)
        future, task = entry
        self._settled[key] = future
        if self._keys.get(task.stage) == key:
            del self._keys[task.stage]
            self._futures.pop(task.stage, None)
        self._sinks.pop(task.stage, None)
        if kind == "outcome":
            try:
                outcome = pickle.loads(detail)
            except Exception as exc:  # noqa: BLE001 - a damaged event: the attempt failed, say why
                return _outcome(task, AttemptStatus.FAILED, f"unreadable outcome from the Dask worker: {exc}")
            return self._finish(task, outcome)
        worker = str(detail)
        if kind == "lost":
            future.cancel()  # Dask would run it again by itself: it counts as a failed attempt here
            return _outcome(task, AttemptStatus.FAILED, f"Dask worker {worker} was lost while running it")
        if kind == "cancelled" or (future.status == "cancelled" and self._cancelling):
            return _outcome(task, AttemptStatus.KILLED, "cancelled")
        if future.status == "cancelled":  # not by us: the scheduler dropped it or went away
            return _outcome(task, AttemptStatus.FAILED, f"the Dask scheduler at {self.address} dropped it "
                                                        "(connection lost or scheduler restarted)")
        try:
            if future.status == "finished":
                return self._finish(task, future.result())
            exc = future.exception()
        except Exception as err:  # noqa: BLE001 - the result could not be fetched (worker gone, bad pickle)
            exc = err
        if type(exc).__name__ == "KilledWorker":
            return _outcome(task, AttemptStatus.FAILED, f"Dask worker lost while running it ({exc})")
        return _outcome(task, AttemptStatus.FAILED, f"on the Dask worker: {type(exc).__name__}: {exc}")

    def _finish(self, task: StageTask, outcome: TaskOutcome) -> TaskOutcome:
        """Bring a worker's outputs and logs into this machine's stores."""
        import dataclasses

        below = self._below.pop(task.stage, ())
        try:
            if self.store is not None:
                from orchestra.store import remote

                attempt_key = self.store.attempt_key(task.run_id, task.stage, task.attempt)
                self.store.append_logs(attempt_key, Path(task.log_dir))
                if outcome.status == AttemptStatus.OK and outcome.manifest is not None:
                    received = _received_here(Path(task.staging_dir))
                    if received:  # into the store too: the stages below read their inputs from there
                        remote.push(self.store, received)
                    manifest = {**outcome.manifest, **received}
                    remote.pull(self.store, manifest, Path(task.outputs_dir))
                    if manifest != outcome.manifest:
                        self._spoiled.update(below)
                        return dataclasses.replace(outcome, manifest=manifest,
                                                   manifest_digest=artifacts.manifest_digest(manifest))
            elif outcome.status == AttemptStatus.OK and outcome.manifest is None:
                staging = Path(task.staging_dir)
                try:
                    manifest = artifacts.publish(staging, Path(task.outputs_dir), task.declared_outputs)
                finally:
                    shutil.rmtree(staging, ignore_errors=True)
                return dataclasses.replace(outcome, manifest=manifest,
                                           manifest_digest=artifacts.manifest_digest(manifest))
        except OrchestraError as exc:
            return dataclasses.replace(outcome, status=AttemptStatus.FAILED, message=str(exc), manifest=None,
                                       manifest_digest=None)
        return outcome

    def _code_manifest(self, cwd: str) -> Mapping[str, Any]:
        if cwd not in self._code:
            assert self.store is not None
            self._code[cwd] = self.store.push_tree(Path(cwd), skip=frozenset({".git"}))
        return self._code[cwd]


def _received_here(staging: Path) -> dict[str, Any]:
    """Files this machine received for the attempt while it ran on a worker with its own scratch
    directory (the tracking endpoint's artifact uploads land in the driver's staging directory):
    moved into the local object store, their manifest entries returned to join the worker's."""
    if not staging.is_dir() or not any(p.is_file() for p in staging.rglob("*")):
        return {}
    placed = staging.with_name(staging.name + ".received")  # swept like staging if this dies
    try:
        return artifacts.publish(staging, placed)
    finally:
        shutil.rmtree(placed, ignore_errors=True)


def _without_env(task: StageTask) -> StageTask:
    import dataclasses

    # The driver's whole environment (tokens included) stays here: workers use their own.
    return dataclasses.replace(task, env={})


def _outcome(task: StageTask, status: AttemptStatus, message: str) -> TaskOutcome:
    import time

    now = time.time()
    return TaskOutcome(stage=task.stage, attempt=task.attempt, status=status, exit_code=None, start_time=now,
                       end_time=now, message=message)
