"""The local executor: stage attempts on worker threads, each a subprocess in its own group.

Its own small pool rather than ``concurrent.futures``: finished attempts arrive on one queue,
so waiting for the next costs the same whatever the number running (``concurrent.futures.wait``
registers a waiter on every pending future at each call), and a run does not import
``concurrent.futures`` with ``logging`` for it (~3 ms of every run's fixed cost).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from pathlib import Path
from queue import Empty, SimpleQueue
from typing import Callable, Union

from orchestra.core.status import AttemptStatus
from orchestra.execution.executors.base import StageTask, TaskOutcome, execute
from orchestra.execution.process import LineSink, ProcessRegistry

_Finished = Union[TaskOutcome, BaseException]


class LocalExecutor:
    """Runs up to ``jobs`` stages at once on this machine."""

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

    def submit(self, task: StageTask) -> None:
        with self._ready:
            self._pending += 1
            self._todo.append(task)
            if len(self._todo) > self._idle and len(self._threads) < self._jobs:  # (idle ones wake for the rest)
                thread = threading.Thread(target=self._work, name=f"stage_{len(self._threads)}", daemon=True)
                self._threads.append(thread)
                thread.start()
            else:
                self._ready.notify()

    def _work(self) -> None:
        while True:
            with self._ready:
                self._idle += 1
                while not self._todo:
                    self._ready.wait()
                self._idle -= 1
                task = self._todo.popleft()
            if task is None:
                return
            started = (lambda pid, task=task: self._on_start(task, pid)) if self._on_start else None
            try:
                finished: _Finished = execute(task, self.registry, self._sink_for(task.stage), started)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the driver's thread by wait_any
                finished = exc
            self._finished.put(finished)

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
            self._todo.clear()
        now = time.time()
        for task in unstarted:
            self._finished.put(TaskOutcome(stage=task.stage, attempt=task.attempt, status=AttemptStatus.KILLED,
                                           exit_code=None, start_time=now, end_time=now, message="interrupted"))
        self.registry.terminate_all()

    def close(self) -> None:
        with self._ready:
            self._todo.clear()
            self._todo.extend([None] * len(self._threads))
            self._ready.notify_all()
        for thread in self._threads:
            thread.join()
        self.registry.close()
