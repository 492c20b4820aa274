"""The local executor: stage attempts on a thread pool, each a subprocess in its own group."""

from __future__ import annotations

import concurrent.futures as cf
from pathlib import Path
from typing import Callable

from orchestra.execution.executors.base import StageTask, TaskOutcome, execute
from orchestra.execution.process import LineSink, ProcessRegistry


class LocalExecutor:
    """Runs up to ``jobs`` stages at once on this machine."""

    def __init__(self, jobs: int, *, pgid_file: Path | None = None,
                 sink_for: Callable[[str], LineSink | None] | None = None,
                 on_start: Callable[[StageTask, int], None] | None = None) -> None:
        self.registry = ProcessRegistry(pgid_file)
        self._pool = cf.ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="stage")
        self._futures: set[cf.Future[TaskOutcome]] = set()
        self._sink_for = sink_for or (lambda _stage: None)
        self._on_start = on_start

    def submit(self, task: StageTask) -> None:
        started = (lambda pid: self._on_start(task, pid)) if self._on_start else None
        self._futures.add(self._pool.submit(execute, task, self.registry, self._sink_for(task.stage), started))

    def wait_any(self, timeout: float | None = None) -> list[TaskOutcome]:
        if not self._futures:
            return []
        done, _ = cf.wait(self._futures, timeout=timeout, return_when=cf.FIRST_COMPLETED)
        self._futures -= done
        return [future.result() for future in done]

    @property
    def pending(self) -> int:
        return len(self._futures)

    def cancel(self) -> None:
        for future in self._futures:
            future.cancel()
        self.registry.terminate_all()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.registry.close()
