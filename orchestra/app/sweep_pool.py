"""One scheduling pool for every member of a sweep, and the in-flight registry that makes a
stage instance shared by several members run once.

Members are normal runs, each driven by its own engine in its own thread; what they share:

- one thread pool of ``jobs`` workers: at most ``jobs`` stage processes run at once across
  the sweep (each member's executor submits into it, with its own process registry);
- an in-flight registry keyed by cache key. The first member that decides RUN for a key owns
  it; another member deciding RUN for the same key waits (in its engine thread) until the
  owner's attempt has published, then LOADs it through the normal load path, with the
  owner's manifest as the source. The owner's worker thread signals publication (not its
  engine thread), so a waiting member never waits on another waiting member. If the owner
  fails, a waiter takes the key over and runs it.
"""

from __future__ import annotations

import concurrent.futures as cf
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from orchestra.core.pids import signal_group
from orchestra.core.status import AttemptStatus
from orchestra.execution.executors.base import TaskOutcome, execute, latest_metrics
from orchestra.execution.process import ProcessRegistry
from orchestra.planning import plan as planmod
from orchestra.store.runs import Candidate


@dataclass
class _Flight:
    """A cache key being computed by one member's stage; ``done`` is set once it has an outcome."""

    run_id: str
    stage: str
    done: threading.Event = field(default_factory=threading.Event)
    outcome: TaskOutcome | None = None
    components: Mapping[str, Any] | None = None
    outputs_dir: str = ""


class SharedPool:
    """What the members of one sweep share (see the module docstring)."""

    def __init__(self, jobs: int) -> None:
        self.jobs = max(1, jobs)
        self.pool = cf.ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="sweep-stage")
        self._lock = threading.Lock()
        self._flights: dict[str, _Flight] = {}
        self._owned: dict[tuple[str, str], str] = {}  # (run id, stage) → the key it computes
        self._executors: list[_MemberExecutor] = []
        self.cancelled = threading.Event()

    def executor(self, run_id: str, *, pgid_file: Path, sink_for: Callable[[str], Any] | None) -> tuple[Any, int]:
        member = _MemberExecutor(self, run_id, pgid_file=pgid_file, sink_for=sink_for)
        with self._lock:
            self._executors.append(member)
        if self.cancelled.is_set():  # started after the sweep was cancelled: runs nothing
            member.cancel()
        return member, self.jobs

    def driver(self, inner: Any, run_id: str) -> _SharingDriver:
        return _SharingDriver(self, inner, run_id)

    def cancel(self) -> None:
        self.cancelled.set()
        with self._lock:
            members = list(self._executors)
        for member in members:
            member.cancel()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def claim(self, key: str, run_id: str, stage: str, components: Mapping[str, Any] | None,
              outputs_dir: str) -> _Flight | None:
        """None: this member owns ``key`` now (it runs it); else the flight to wait for."""
        with self._lock:
            flight = self._flights.get(key)
            if flight is not None and flight.run_id != run_id and (not flight.done.is_set() or _ok(flight)):
                return flight  # another member computes (or computed) it
            if flight is not None and flight.run_id == run_id and not flight.done.is_set():
                return None  # decided again (there was no free slot the first time): still ours
            self._flights[key] = _Flight(run_id, stage, components=components, outputs_dir=outputs_dir)
            self._owned[(run_id, stage)] = key
            return None

    def finished(self, run_id: str, stage: str, outcome: TaskOutcome | None, *, only_if_waiting: bool = False) -> None:
        """An attempt's worker returned (None: it was cancelled): wake the members waiting for its key."""
        with self._lock:
            key = self._owned.get((run_id, stage))
            flight = self._flights.get(key) if key else None
            if flight is None or flight.run_id != run_id or (only_if_waiting and flight.done.is_set()):
                return
            flight.outcome = outcome
            flight.done.set()

    def release(self, run_id: str, stage: str) -> None:
        """The member's stage ended (maybe without an attempt: skipped, killed): its waiters stop waiting."""
        self.finished(run_id, stage, None, only_if_waiting=True)


def _ok(flight: _Flight) -> bool:
    outcome = flight.outcome
    return outcome is not None and outcome.status == AttemptStatus.OK and outcome.manifest is not None


class _Registry(ProcessRegistry):
    """A member's process registry: a process that registers after the sweep was cancelled (its
    attempt passed the cancelled check just before) is killed at once, not left running."""

    def add(self, proc: Any, cleanup: Any = ()) -> None:
        super().add(proc, cleanup)
        if self.cancelled.is_set():  # terminate_all took its list before this process was in it
            signal_group(proc.pid, signal.SIGKILL)


class _MemberExecutor:
    """A member's executor: its own process registry and futures, the sweep's worker pool."""

    def __init__(self, shared: SharedPool, run_id: str, *, pgid_file: Path,
                 sink_for: Callable[[str], Any] | None) -> None:
        self._pool = shared.pool
        self._futures: set[cf.Future[TaskOutcome]] = set()
        self.registry = _Registry(pgid_file)
        self._sink_for = sink_for or (lambda _stage: None)
        self._on_start: Callable[[Any, int], None] | None = None
        self._shared, self._run_id = shared, run_id

    def submit(self, task: Any) -> None:
        started = (lambda pid: self._on_start(task, pid)) if self._on_start else None
        future = self._pool.submit(execute, task, self.registry, self._sink_for(task.stage), started)
        stage = task.stage
        future.add_done_callback(lambda done: self._done(stage, done))
        self._futures.add(future)

    def _done(self, stage: str, future: cf.Future[TaskOutcome]) -> None:
        ok = not future.cancelled() and future.exception() is None
        self._shared.finished(self._run_id, stage, future.result() if ok else None)

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
        """Kill this member's stage processes. Its attempts still queued in the shared pool are not
        cancelled as futures (the engine expects an outcome for each): they start, find the
        registry cancelled, and end KILLED without running."""
        self.registry.terminate_all()

    def close(self) -> None:  # the pool is the sweep's
        pass


class _SharingDriver:
    """The member's engine driver, with RUN decisions checked against the in-flight registry."""

    def __init__(self, shared: SharedPool, inner: Any, run_id: str) -> None:
        self.shared, self.inner, self.run_id = shared, inner, run_id
        options = inner.prepared.options
        self._sharing = not options.no_cache

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def decide(self, name: str, upstream: Mapping[str, str]) -> planmod.StagePlan:
        decision = self.inner.decide(name, upstream)
        if not self._sharing or decision.action != planmod.RUN or decision.key is None \
                or name in self.inner.prepared.options.force:
            return decision
        while True:
            flight = self.shared.claim(decision.key, self.run_id, name, decision.components,
                                       self.inner.out_strs[name])
            if flight is None:
                return decision  # ours to run
            flight.done.wait()
            if _ok(flight):
                return _load_from(decision, flight)
            if self.shared.cancelled.is_set():
                raise KeyboardInterrupt  # the engine kills this member's stages
            # the owner failed: claim it again (this member runs it)


    def ended(self, name: str, status: Any, decision: Any, outcome: Any, message: Any) -> None:
        self.inner.ended(name, status, decision, outcome, message)
        self.shared.release(self.run_id, name)


def _load_from(decision: planmod.StagePlan, flight: _Flight) -> planmod.StagePlan:
    outcome = flight.outcome
    assert outcome is not None
    source = Candidate(run_id=flight.run_id, stage=flight.stage, cache_key=decision.key or "",
                       components=flight.components or {}, manifest=outcome.manifest or {},
                       manifest_digest=outcome.manifest_digest or "", outputs_dir=flight.outputs_dir,
                       metrics=latest_metrics(outcome.metrics), end_time=outcome.end_time or time.time())
    return planmod.StagePlan(decision.name, planmod.LOAD, decision.key, decision.components,
                             (f"computed in this sweep by run {flight.run_id[:8]}",), source=source)
