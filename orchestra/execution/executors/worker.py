"""The worker side of remote executors: one attempt on a machine that is not the driver.

``execute_remote`` is engine-agnostic: it resolves the stage's environment here (the same
``envs.ensure`` and cache keys as the driver), stages the inputs, runs the command through
``base.execute`` and publishes the outputs. Two ways to move files:

- no artifact store (``store_url`` None): the driver's paths are shared (same machine or a
  shared filesystem at the same mount point). The command writes into the driver's staging
  directory and the driver publishes it; nothing here touches the driver's stores.
- an artifact store: the project and every upstream output are downloaded (verified) into this
  host's cache under ``ORCHESTRA_WORKER_DIR`` (keyed by content, so each is fetched once per
  host; remove the directory to reclaim space), the command runs in a private scratch
  directory, and the outputs are uploaded file by file, the manifest last, then the logs.

``run_dask`` wraps it for Dask with the supervisor: a watchdog per worker process kills every
stage group if the worker dies (SIGKILL included), and a watcher thread kills the attempt's
group when Dask cancels or releases the task.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from orchestra import envs
from orchestra.core import settings
from orchestra.execution import process
from orchestra.execution.executors.base import StageTask, TaskOutcome, execute
from orchestra.execution.process import LineSink, ProcessRegistry
from orchestra.store import artifacts

_SAFE_PATH = re.compile(r"^[A-Za-z0-9_./,:+@-]+$")
CANCEL_POLL_S = 0.1
_CLOSING = frozenset({"closing", "closed", "closing_gracefully", "failed"})


@dataclass(frozen=True, slots=True)
class RemoteTask:
    """What travels to the worker: the attempt plus how to reach its files.

    Attributes:
        task: the attempt, as the driver built it (its ``env`` emptied: the worker uses its own).
        key: the engine's id for this attempt (Dask key), to notice cancellation.
        store_url: the shared artifact store, or None when the driver's paths are shared.
        code_manifest: the project tree in the store (store mode only).
        lines_topic: where to send output lines for the driver's console (None: don't).
    """

    task: StageTask
    key: str
    store_url: str | None = None
    code_manifest: Mapping[str, Mapping[str, Any]] | None = None
    lines_topic: str | None = None


def scratch_root() -> Path:
    """This host's working directory for remote attempts (``ORCHESTRA_WORKER_DIR`` or tmp)."""
    root = Path(settings.current().worker_dir or Path(tempfile.gettempdir()) / f"orchestra-worker-{os.getuid()}")
    root.mkdir(parents=True, exist_ok=True)
    resolved = root.resolve()
    if not _SAFE_PATH.match(str(resolved)):
        # Paths are substituted into already-quoted commands: they must need no quoting.
        raise RuntimeError(f"worker directory {resolved} has characters that need shell quoting; "
                           "set ORCHESTRA_WORKER_DIR to a plain path")
    return resolved


class _Rewriter:
    """Replaces the driver's paths by this host's in commands and variables, in one pass
    (longest path first; a chain's late stages have hundreds of upstream paths)."""

    def __init__(self, mapping: Mapping[str, str]) -> None:
        self.mapping = dict(mapping)
        keys = sorted(self.mapping, key=len, reverse=True)
        self.pattern = re.compile("|".join(map(re.escape, keys))) if keys else None

    def __call__(self, text: str) -> str:
        exact = self.mapping.get(text)
        if exact is not None:
            return exact
        if self.pattern is None or "/" not in text:
            return text
        return self.pattern.sub(lambda m: self.mapping[m.group(0)], text)


def _stage_env(task: StageTask, project_root: Path, rewrite: _Rewriter) -> dict[str, str]:
    """This worker's environment + orchestra's variables + the stage environment built here."""
    spec = task.env_spec
    if spec is not None and getattr(spec, "file", None) is not None:
        try:  # the spec file lives in the project: find it in this host's copy
            spec = dataclasses.replace(spec, file=project_root / Path(spec.file).relative_to(task.cwd))
        except ValueError:
            pass
    environment = envs.ensure(spec, project_root=project_root, env_manager=task.env_manager)
    if not task.overlay_env:  # a task built without the split: its env is complete as it is
        return {k: rewrite(v) for k, v in task.env.items()}
    overlay = {k: rewrite(v) for k, v in task.overlay_env.items()}
    env = dict(os.environ)
    env.update((k, v) for k, v in overlay.items() if not k.startswith("ORCHESTRA_"))
    env = environment.apply(env)  # the env's variables, PATH first, outer envs' variables removed
    env.update((k, v) for k, v in overlay.items() if k.startswith("ORCHESTRA_"))
    return env


def execute_remote(remote: RemoteTask, registry: ProcessRegistry, sink: LineSink | None = None) -> TaskOutcome:
    """Run one attempt on this host and publish its outputs where the driver will find them."""
    task = remote.task
    if remote.store_url is None:
        local = dataclasses.replace(task, env=_stage_env(task, Path(task.cwd), _Rewriter({})))
        return execute(local, registry, sink, publisher=lambda staging: None)  # the driver publishes

    from orchestra.store.remote import RemoteStore

    store = RemoteStore(remote.store_url)
    root = scratch_root()
    code_dir = root / "code" / artifacts.manifest_digest(remote.code_manifest or {}).split(":")[1][:32]
    store.fetch_tree(remote.code_manifest or {}, code_dir)
    scratch = Path(tempfile.mkdtemp(prefix="attempt-", dir=root))
    try:
        paths = {task.staging_dir: str(scratch / "out"), task.log_dir: str(scratch / "logs"),
                 task.metrics_file: str(scratch / "tracking.jsonl"), task.cwd: str(code_dir)}
        empty = str(_input_dir(store, root, {}))
        for parent, path in task.input_dirs.items():
            manifest = task.input_manifests.get(parent)
            paths[path] = str(_input_dir(store, root, manifest)) if manifest else empty
        rewrite = _Rewriter(paths)
        local = dataclasses.replace(
            task, command=rewrite(task.command), cwd=str(code_dir),
            env=_stage_env(task, code_dir, rewrite), log_dir=paths[task.log_dir],
            staging_dir=paths[task.staging_dir], metrics_file=paths[task.metrics_file], outputs_dir="",
        )
        attempt_key = store.attempt_key(task.run_id, task.stage, task.attempt)

        def publish(staging: Path) -> dict[str, Any]:
            manifest = store.push_tree(staging, task.declared_outputs)
            # Last: the attempt's outputs exist for anyone only once the manifest does.
            store.write_json(f"{attempt_key}/manifest.json",
                             {"manifest": manifest, "digest": artifacts.manifest_digest(manifest)})
            return manifest

        outcome = execute(local, registry, sink, publisher=publish)
        store.put_logs(attempt_key, Path(local.log_dir))
        return outcome
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _input_dir(store: Any, root: Path, manifest: Mapping[str, Mapping[str, Any]]) -> Path:
    """Upstream outputs on this host, downloaded once per content (a chain's later stages reuse
    them) and read-only, as the hardlinked inputs of local runs are."""
    if not manifest:
        empty = root / "inputs" / "empty"
        empty.mkdir(parents=True, exist_ok=True)
        return empty
    where = root / "inputs" / artifacts.manifest_digest(manifest).split(":")[1][:32]
    ro = {rel: {**entry, "mode": 0o555 if int(entry["mode"]) & 0o100 else 0o444} for rel, entry in manifest.items()}
    store.fetch_tree(ro, where)
    return where


# -- the supervisor -------------------------------------------------------------------------
class _Supervisor:
    """One per worker process: the stage groups alive here, and a watchdog that kills them all
    once this process is gone (the worker was SIGKILLed, or its machine lost the driver)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pids: set[int] = set()
        self.pgid_file = Path(tempfile.mkdtemp(prefix="supervisor-", dir=scratch_root())) / "pgids"
        self.pgid_file.write_text("")
        self.watchdog = process.start_watchdog(self.pgid_file)

    def _write(self) -> None:
        tmp = self.pgid_file.with_suffix(".tmp")
        tmp.write_text("".join(f"{pid}\n" for pid in self._pids))
        os.replace(tmp, self.pgid_file)

    def add(self, pid: int) -> None:
        with self._lock:
            self._pids.add(pid)
            self._write()

    def remove(self, pid: int) -> None:
        with self._lock:
            self._pids.discard(pid)
            self._write()


_supervisor: _Supervisor | None = None
_supervisor_lock = threading.Lock()


def supervisor() -> _Supervisor:
    global _supervisor
    with _supervisor_lock:
        if _supervisor is None or _supervisor.pgid_file.parent.exists() is False:
            _supervisor = _Supervisor()
        return _supervisor


class _TaskRegistry(ProcessRegistry):
    """The attempt's own registry (its cancel flag) that also tells the process supervisor."""

    def __init__(self, sup: _Supervisor) -> None:
        super().__init__(None)
        self._sup = sup

    def add(self, proc, cleanup=()) -> None:  # type: ignore[no-untyped-def]
        super().add(proc, cleanup)
        self._sup.add(proc.pid)

    def remove(self, proc) -> None:  # type: ignore[no-untyped-def]
        super().remove(proc)
        self._sup.remove(proc.pid)


def _watch_cancel(worker: Any, key: str, registry: ProcessRegistry, stop: threading.Event) -> None:
    # Dask cannot interrupt a running task: it only marks it cancelled (or forgets it). Seeing
    # that here turns a cancel, a lost client or a rescheduled duplicate into a killed group.
    while not stop.wait(CANCEL_POLL_S):
        state = worker.state.tasks.get(key)
        # A worker closing (its scheduler is gone, or it is told to) waits for running tasks
        # before its process can end: their groups must end first.
        closing = getattr(getattr(worker, "status", None), "name", "running") in _CLOSING
        if closing or state is None or state.state in ("cancelled", "released", "forgotten"):
            registry.terminate_all(grace=process.GRACE_SECONDS)
            return


def run_dask(remote: RemoteTask) -> TaskOutcome:
    """The function Dask runs on a worker for each attempt."""
    from distributed import get_worker

    worker = get_worker()
    registry = _TaskRegistry(supervisor())
    stop = threading.Event()
    watcher = threading.Thread(target=_watch_cancel, args=(worker, remote.key, registry, stop), daemon=True,
                               name=f"orchestra-cancel-{remote.key}")
    watcher.start()
    sink: LineSink | None = None
    if remote.lines_topic:
        topic, stage = remote.lines_topic, remote.task.stage

        def send_line(stream: str, line: str) -> None:
            worker.log_event(topic, [stage, stream, line])  # batched, no round trip

        sink = send_line

    try:
        return execute_remote(remote, registry, sink)
    finally:
        stop.set()
