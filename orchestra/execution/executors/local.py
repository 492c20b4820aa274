"""The local executor: stage attempts on worker threads, each a subprocess in its own group.

Its own small pool rather than ``concurrent.futures``: finished attempts arrive on one queue,
so waiting for the next costs the same whatever the number running (``concurrent.futures.wait``
registers a waiter on every pending future at each call), and a run does not import
``concurrent.futures`` with ``logging`` for it (~3 ms of every run's fixed cost).

A stage may be submitted ahead of its parent's end (``submit_after``, a chain): it is held (its
log and staging directories made meanwhile), and the thread that ran the parent starts it as
soon as the parent's outputs are published, with the parent's manifest as its inputs', then
queues the parent's outcome: no round trip through the driver between one stage's end and the
next one's start (the driver records the parent's end, then the child's start, while the
child's command runs). A held stage whose parent did not end OK never starts: the engine takes
it back (``withdraw``).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from queue import Empty, SimpleQueue

from orchestra.core.status import AttemptStatus
from orchestra.execution.executors.base import StageTask, TaskOutcome, execute, prepare, unprepare
from orchestra.execution.process import LineSink, ProcessRegistry
from orchestra.planning import fingerprint

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_Finished = TaskOutcome | BaseException


class LocalExecutor:
    """Runs up to ``jobs`` stages at once on this machine."""

    # Stages may be submitted ahead of their parent's end (``submit_after``); one that started is
    # never taken back, so the engine submits ahead only when no other stage's failure can race
    # it (without keep_going), and only down a stage's only child (a chain: the parent's end then
    # makes no other stage ready, which would wait behind the ones ahead).
    ahead = True
    withdraws_started = False
    ahead_chains_only = True

    def __init__(self, jobs: int, *, pgid_file: Path | None = None,
                 sink_for: Callable[[str], LineSink | None] | None = None,
                 on_start: Callable[[StageTask, int], None] | None = None) -> None:
        self.registry = ProcessRegistry(pgid_file)
        self._jobs = max(1, jobs)
        self._todo: deque[StageTask | None] = deque()
        self._ready = threading.Condition(threading.Lock())
        self._finished: SimpleQueue[_Finished] = SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._pending = 0
        self._sink_for = sink_for or (lambda _stage: None)
        self._on_start = on_start
        # Submitted ahead: stage → (task, the stages it waits for, its step key's parts), and the
        # stages that ended OK → (manifest, digest), what a held stage's inputs are (kept for the
        # run: a held stage may wait for one the engine has settled already; the driver keeps
        # the same manifests).
        self._held: dict[str, tuple[StageTask, tuple[str, ...], Mapping[str, Any] | None]] = {}
        self._done: dict[str, tuple[Mapping[str, Any], str | None]] = {}
        self._prepared: set[str] = set()  # held stages whose directories are made (``prepare``)

    def submit(self, task: StageTask) -> None:
        with self._ready:
            self._pending += 1
        self._enqueue(task)

    def submit_after(self, task: StageTask, after: tuple[str, ...], step_parts: Mapping[str, Any] | None) -> None:
        """Hold ``task`` until every stage of ``after`` (submitted, still running) ended OK; the
        thread that ran the last of them then starts it (see the module docstring)."""
        try:  # its directories made now, off the path from the parent's end to its start
            prepare(task)
            self._prepared.add(task.stage)
        except OSError:
            pass  # (made when it starts, as usual)
        with self._ready:
            self._pending += 1
            self._held[task.stage] = (task, after, step_parts)
            ready = self._release()
        if ready is not None:
            self._enqueue(ready)

    def _enqueue(self, task: StageTask) -> None:
        with self._ready:
            self._todo.append(task)
            if len(self._todo) > self._idle and len(self._threads) < self._jobs:  # (idle ones wake for the rest)
                thread = threading.Thread(target=self._work, name=f"stage_{len(self._threads)}", daemon=True)
                self._threads.append(thread)
                thread.start()
            else:
                self._ready.notify()

    def withdraw(self, stage: str) -> None:
        """Forget a held stage (its upstream stage did not end OK, or is retried): it never starts."""
        with self._ready:
            held = self._held.pop(stage, None)
            if held is not None:
                self._pending -= 1
        if held is not None and stage in self._prepared:
            self._prepared.discard(stage)
            unprepare(held[0])

    def spoiled(self, stage: str) -> bool:
        return False  # the parent's files are all published here before a held stage starts

    def _release(self) -> StageTask | None:
        """(Under the lock.) A held stage whose every awaited stage ended OK, taken out, with its
        inputs' manifests and step base filled in from their outcomes; None when there is none."""
        for stage, (task, after, step_parts) in self._held.items():
            if all(parent in self._done for parent in after):
                del self._held[stage]
                return _filled(task, {parent: self._done[parent] for parent in after}, step_parts)
        return None

    def _work(self) -> None:
        task: StageTask | None = None
        parent: list[_Finished] = []  # the outcome of the stage whose held child this thread starts
        while True:
            if task is None:
                with self._ready:
                    self._idle += 1
                    while not self._todo:
                        self._ready.wait()
                    self._idle -= 1
                    task = self._todo.popleft()
                if task is None:
                    return

            def report_parent() -> None:
                if parent:
                    self._finished.put(parent.pop())

            def started(pid: int, task: StageTask = task) -> None:
                report_parent()
                if self._on_start is not None:
                    self._on_start(task, pid)

            prepared = task.stage in self._prepared
            self._prepared.discard(task.stage)
            try:
                finished: _Finished = execute(task, self.registry, self._sink_for(task.stage), started,
                                              prepared=prepared)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the driver's thread by wait_any
                finished = exc
            report_parent()
            task = None
            with self._ready:
                ok = isinstance(finished, TaskOutcome) and finished.status == AttemptStatus.OK
                if ok and finished.manifest is not None:  # (a stage may be held for it later)
                    self._done[finished.stage] = (finished.manifest, finished.manifest_digest)  # type: ignore[union-attr]
                if ok and self._held:
                    task = self._release()  # the next stage of the chain starts here and now
                if task is None:
                    self._finished.put(finished)
                else:
                    # Its outcome goes to the driver once the child's process started: the driver's
                    # recording then overlaps the child's command, not its start (one GIL).
                    parent.append(finished)

    def wait_any(self, timeout: float | None = None) -> list[TaskOutcome]:
        if not self._pending:
            return []
        try:
            done = [self._finished.get(timeout=timeout)]
        except Empty:
            return []
        while True:
            try:
                done.append(self._finished.get_nowait())
            except Empty:
                break
        self._pending -= len(done)
        for item in done:
            if isinstance(item, BaseException):
                raise item
        return done  # type: ignore[return-value]

    @property
    def pending(self) -> int:
        return self._pending

    def cancel(self) -> None:
        """Attempts not started yet end as killed without running; running ones are killed."""
        with self._ready:
            unstarted = [task for task in self._todo if task is not None]
            held = [task for task, _after, _parts in self._held.values()]
            unstarted += held
            self._todo.clear()
            self._held.clear()
        now = time.time()
        for task in unstarted:
            self._finished.put(TaskOutcome(stage=task.stage, attempt=task.attempt, status=AttemptStatus.KILLED,
                                           exit_code=None, start_time=now, end_time=now, message="interrupted"))
        self.registry.terminate_all()
        for task in held:
            if task.stage in self._prepared:
                self._prepared.discard(task.stage)
                unprepare(task)

    def close(self) -> None:
        with self._ready:
            self._todo.clear()
            self._held.clear()
            self._done.clear()
            self._todo.extend([None] * len(self._threads))
            self._ready.notify_all()
        for thread in self._threads:
            thread.join()
        self.registry.close()


def _filled(task: StageTask, ended: Mapping[str, tuple[Mapping[str, Any], str | None]],
            step_parts: Mapping[str, Any] | None) -> StageTask:
    """A task submitted ahead, its awaited stages ended OK: their manifests are its inputs' (the
    input check), and its step base is computed with their digests, as the engine's decision
    once they ended has them (``ORCHESTRA_STEP_BASE``)."""
    manifests = {**task.input_manifests,
                 **{parent: manifest for parent, (manifest, _digest) in ended.items() if parent in task.input_dirs}}
    env, overlay = task.env, task.overlay_env
    if step_parts is not None:
        known = step_parts.get("upstream") or {}
        upstream = {parent: (ended[parent][1] or "") if digest is None and parent in ended else digest
                    for parent, digest in known.items()}
        base = fingerprint.step_base({**step_parts, "upstream": upstream})
        if base:
            env = {**env, "ORCHESTRA_STEP_BASE": base}
            overlay = {**overlay, "ORCHESTRA_STEP_BASE": base}
    return dataclasses.replace(task, input_manifests=manifests, env=env, overlay_env=overlay)
