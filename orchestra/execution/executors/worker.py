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
import pickle
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from orchestra import envs
from orchestra.core import settings
from orchestra.core.status import AttemptStatus
from orchestra.execution import process
from orchestra.execution.executors.base import StageTask, TaskOutcome, execute
from orchestra.execution.executors.daskconnect import with_the_end
from orchestra.execution.process import LineSink, ProcessRegistry
from orchestra.planning import fingerprint
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
        outcome_topic: where to also send the outcome, as an event (None: only the task's result).
        publish_here: with shared paths, publish the outputs into the object store here instead
            of leaving them to the driver, if this worker uses the driver's ``ORCHESTRA_HOME``
            (``home``; a worker that joined later may not).
        after: the upstream stages whose outcomes Dask passes to the task (submitted ahead of
            their end): it runs only if they all ended OK, with their manifests as its inputs'.
        step_parts: with ``after``, the stage's key components without those stages' digests
            (its ``ORCHESTRA_STEP_BASE`` is computed here once they are known).
    """

    task: StageTask
    key: str
    store_url: str | None = None
    code_manifest: Mapping[str, Mapping[str, Any]] | None = None
    lines_topic: str | None = None
    outcome_topic: str | None = None
    publish_here: bool = False
    home: str | None = None
    after: tuple[str, ...] = ()
    step_parts: Mapping[str, Any] | None = None


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
    """Replaces the driver's paths by this host's in commands and variables, in one left-to-right
    pass, the longest path first at each position (as an alternation of every path would, but
    without compiling one: a chain's late stages carry hundreds of upstream paths, and a regex of
    them all cost more than the stage).

    Candidate positions are the occurrences of the paths' common prefix; at each, the paths of
    each length (longest first) are looked up in a set.
    """

    def __init__(self, mapping: Mapping[str, str]) -> None:
        self.mapping = {k: v for k, v in mapping.items() if k}
        self.prefix = os.path.commonprefix(list(self.mapping)) if self.mapping else ""
        by_length: dict[int, set[str]] = {}
        for key in self.mapping:
            by_length.setdefault(len(key), set()).add(key)
        self.lengths = sorted(by_length.items(), reverse=True)

    def __call__(self, text: str) -> str:
        exact = self.mapping.get(text)
        if exact is not None:
            return exact
        if not self.prefix or self.prefix not in text:
            return text
        out: list[str] = []
        done = 0
        at = text.find(self.prefix)
        while at != -1:
            for length, keys in self.lengths:
                piece = text[at:at + length]
                if piece in keys:
                    out += (text[done:at], self.mapping[piece])
                    done = at + length
                    break
            at = text.find(self.prefix, max(done, at + 1))
        out.append(text[done:])
        return "".join(out)


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
        if remote.publish_here and str(settings.home()) == remote.home:  # into the shared object store
            if Path(task.outputs_dir).exists():
                return _ran_already(task)
            return execute(local, registry, sink)
        return execute(local, registry, sink, publisher=lambda staging: None)  # the driver publishes

    from orchestra.store.remote import RemoteStore

    store = RemoteStore(remote.store_url)
    attempt_key = store.attempt_key(task.run_id, task.stage, task.attempt)
    if store.fs.exists(f"{attempt_key}/manifest.json"):
        return _ran_already(task)
    root = scratch_root()
    code_dir = root / "code" / artifacts.manifest_digest(remote.code_manifest or {}).split(":")[1][:32]
    store.fetch_tree(remote.code_manifest or {}, code_dir)
    scratch = _thread_scratch(root)
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
        _clear(scratch)


def _ran_already(task: StageTask) -> TaskOutcome:
    """The attempt published its outputs already: Dask runs it again because the worker holding
    its result was lost before a stage submitted ahead of its end read it. Its command must not
    run twice (it would publish over outputs the driver recorded): that stage's attempt fails."""
    import time

    now = time.time()
    return TaskOutcome(stage=task.stage, attempt=task.attempt, status=AttemptStatus.FAILED, exit_code=None,
                       start_time=now, end_time=now, message="ran already; its result was lost with its Dask worker")


def _thread_scratch(root: Path) -> Path:
    """This worker thread's scratch directory, emptied: a thread runs one attempt at a time, and
    reusing its directories spares two directory creations and removals per attempt (each a
    metadata write, slow on a busy disk)."""
    scratch = root / f"thread-{os.getpid()}-{threading.get_ident()}"
    scratch.mkdir(exist_ok=True)
    _clear(scratch)  # what a killed attempt left
    return scratch


def _clear(scratch: Path) -> None:
    """Empty a scratch directory, keeping its ``logs`` directory (emptied too)."""
    try:
        entries = list(os.scandir(scratch))
    except FileNotFoundError:
        return
    for entry in entries:
        path = Path(entry.path)
        if entry.name == "logs" and entry.is_dir(follow_symlinks=False):
            for log in os.scandir(path):
                _remove(Path(log.path), log.is_dir(follow_symlinks=False))
        else:
            _remove(path, entry.is_dir(follow_symlinks=False))


def _remove(path: Path, is_dir: bool) -> None:
    if is_dir:
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


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
    """One per worker process: the stage groups alive here (a :class:`ProcessRegistry` over a
    pgid file, rewritten in place per stage start and end, with the stages' cleanup commands),
    its watchdog that kills them all once this process is gone (the worker was SIGKILLed, or
    its machine lost the driver), and one thread that watches every running attempt for
    cancellation."""

    def __init__(self) -> None:
        self.pgid_file = Path(tempfile.mkdtemp(prefix="supervisor-", dir=scratch_root())) / "pgids"
        self.pgid_file.write_text("")
        self.groups = ProcessRegistry(self.pgid_file)
        self.groups.arm()
        self._lock = threading.Lock()
        self._watched: dict[str, tuple[Any, ProcessRegistry]] = {}
        self._wake = threading.Event()
        self._watcher: threading.Thread | None = None

    def watch(self, worker: Any, key: str, registry: ProcessRegistry) -> None:
        with self._lock:
            self._watched[key] = (worker, registry)
            if self._watcher is None or not self._watcher.is_alive():
                self._watcher = threading.Thread(target=self._watch_loop, daemon=True, name="orchestra-cancel")
                self._watcher.start()

    def unwatch(self, key: str) -> None:
        with self._lock:
            self._watched.pop(key, None)

    def _watch_loop(self) -> None:
        # Dask cannot interrupt a running task: it only marks it cancelled (or forgets it).
        # Seeing that here turns a cancel, a lost client or a rescheduled duplicate into a
        # killed group.
        while True:
            self._wake.wait(CANCEL_POLL_S)
            with self._lock:
                watched = list(self._watched.items())
            for key, (worker, registry) in watched:
                if _released(worker, key):
                    self.unwatch(key)
                    threading.Thread(target=registry.terminate_all, args=(process.GRACE_SECONDS,),
                                     daemon=True, name=f"orchestra-kill-{key}").start()


def _released(worker: Any, key: str) -> bool:
    """The attempt ``key`` must stop: Dask cancelled, released or forgot it, or the worker is
    closing (its scheduler is gone, or it is told to), which waits for running tasks before its
    process can end: their groups must end first."""
    state = worker.state.tasks.get(key)
    closing = getattr(getattr(worker, "status", None), "name", "running") in _CLOSING
    return closing or state is None or state.state in ("cancelled", "released", "forgotten")


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
        self._sup.groups.add(proc, cleanup)

    def remove(self, proc) -> None:  # type: ignore[no-untyped-def]
        super().remove(proc)
        self._sup.groups.remove(proc)


def after_upstream(remote: RemoteTask, upstream: tuple[TaskOutcome, ...]) -> RemoteTask | TaskOutcome:
    """A task submitted ahead of its upstream stages' end, now that their outcomes are here: the
    task with their manifests (its inputs) and its step base, or, when one of them did not end
    OK, the outcome of an attempt that never ran its command."""
    import time

    task = remote.task
    ended = dict(zip(remote.after, upstream))
    for parent, outcome in ended.items():
        if outcome.status != AttemptStatus.OK or outcome.manifest is None:
            now = time.time()
            why = (f"not run: upstream {parent} {outcome.status} ({outcome.message})"
                   if outcome.status != AttemptStatus.OK
                   else f"not run: the outputs of upstream {parent} were left to the driver to publish")
            return TaskOutcome(stage=task.stage, attempt=task.attempt, status=AttemptStatus.FAILED, exit_code=None,
                               start_time=now, end_time=now, message=why)
    manifests = {**task.input_manifests, **{p: o.manifest for p, o in ended.items() if p in task.input_dirs}}
    overlay = dict(task.overlay_env)
    if remote.step_parts is not None:
        digests = {p: o.manifest_digest or artifacts.manifest_digest(o.manifest or {}) for p, o in ended.items()}
        known = remote.step_parts.get("upstream") or {}
        parts = {**remote.step_parts, "upstream": {p: digests.get(p) if d is None else d for p, d in known.items()}}
        overlay["ORCHESTRA_STEP_BASE"] = fingerprint.step_base(parts) or ""
    env = task.env if not task.env else {**task.env, **{k: v for k, v in overlay.items() if k == "ORCHESTRA_STEP_BASE"}}
    task = dataclasses.replace(task, input_manifests=manifests, overlay_env=overlay, env=env)
    return dataclasses.replace(remote, task=task, after=(), step_parts=None)


def run_dask(remote: RemoteTask, *upstream: TaskOutcome) -> TaskOutcome:
    """The function Dask runs on a worker for each attempt.

    With ``outcome_topic`` set, the outcome also goes to the driver as an event once everything
    it names is published, in the batch that reports the task's end (``with_the_end``): the
    driver needs no gather round trip per stage (the result stays for a driver that asks).
    ``upstream``: the outcomes of ``remote.after`` (a task submitted ahead, see
    :func:`after_upstream`); its command runs only if they all ended OK.
    """
    from distributed import get_worker

    if remote.after:
        ready = after_upstream(remote, upstream)
        if isinstance(ready, TaskOutcome):
            return ready  # no event: the driver settles it from its upstream stage's outcome
        remote = ready
    worker = get_worker()
    sup = supervisor()
    registry = _TaskRegistry(sup)
    sup.watch(worker, remote.key, registry)
    sink: LineSink | None = None
    if remote.lines_topic:
        topic, stage = remote.lines_topic, remote.task.stage

        def send_line(stream: str, line: str) -> None:
            worker.log_event(topic, ["line", stage, stream, line])  # batched, no round trip

        sink = send_line

    try:
        outcome = execute_remote(remote, registry, sink)
    finally:
        sup.unwatch(remote.key)
    if remote.outcome_topic is not None:
        with_the_end(worker, remote.outcome_topic, ["outcome", remote.key, pickle.dumps(outcome, protocol=5)])
    return outcome
