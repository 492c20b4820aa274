"""``orchestra scheduler``: one long-running process per ORCHESTRA_HOME that ticks on time.

Exclusion: a filelock on ``ORCHESTRA_HOME/scheduler.lock``; the holder's pid is written to
``scheduler.pid`` so a second scheduler can say whom it found. (``run-due`` needs no lock: the
per-slot claims make it safe beside a daemon.) The loop ticks, then waits until the next fire
time but at most 60 s — in steps of at most a second, so a SIGTERM, a definition changed by
another command, or a run ending while a slot waits in the queue is noticed promptly. On SIGTERM
or SIGINT it finishes the tick it is in (claims are never cut in half), sends SIGTERM to the
runs it started and waits for them, and exits 0.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Callable

from orchestra.core import log as logger
from orchestra.app.schedule import store
from orchestra.app.schedule.clock import Clock, SystemClock
from orchestra.app.schedule.tick import TickReport, tick
from orchestra.core.errors import OrchestraError
from orchestra.core.layout import orchestra_home
from orchestra.core.options import NotificationOptions
from orchestra.integrations.hooks import resume_pending

log = logger.get(__name__)

MAX_SLEEP_S = 60.0
STEP_S = 1.0


class SchedulerRunningError(OrchestraError):
    """Another scheduler holds this ORCHESTRA_HOME (exit 1)."""


def _pid_file(home: Path) -> Path:
    return home / "scheduler.pid"


def acquire_lock(home: Path) -> Any:
    """Take the scheduler lock or raise :class:`SchedulerRunningError` naming the holder's pid."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(home / "scheduler.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        try:
            holder = _pid_file(home).read_text().strip() or "?"
        except OSError:
            holder = "?"
        raise SchedulerRunningError(f"another scheduler is already running for {home} (pid {holder})",
                                    hint="stop it first, or use another ORCHESTRA_HOME") from None
    tmp = _pid_file(home).with_suffix(".tmp")
    tmp.write_text(f"{os.getpid()}\n")
    os.replace(tmp, _pid_file(home))
    return lock


class Scheduler:
    """The loop. ``clock`` and ``launcher`` are injectable; ``stop`` ends it after the current tick.

    Args:
        clock: time source (:class:`SystemClock` for the real daemon).
        launcher: starts runs (a :class:`~orchestra.app.schedule.launch.ProcessLauncher`).
        on_tick: called with every report (the CLI prints; tests count).
    """

    def __init__(self, clock: Clock, launcher: Any, on_tick: Callable[[TickReport], None] | None = None) -> None:
        self.clock = clock
        self.launcher = launcher
        self.on_tick = on_tick
        self.stopping = threading.Event()

    def stop(self) -> None:
        self.stopping.set()

    def run(self, max_ticks: int | None = None) -> int:
        ticks = 0
        while not self.stopping.is_set():
            self._reap()
            report = tick(self.clock.now(), self.launcher)
            ticks += 1
            if self.on_tick:
                self.on_tick(report)
            if max_ticks is not None and ticks >= max_ticks:
                break
            self._wait(report)
        return ticks

    def _reap(self) -> None:
        reap = getattr(self.launcher, "reap", None)
        if reap:
            reap()

    def _wait(self, report: TickReport) -> None:
        """Sleep until the next fire time (≤ 60 s), waking early for a stop, an edit or a queue."""
        now = self.clock.now().timestamp()
        target = now + MAX_SLEEP_S
        if report.next_fire_at is not None:
            target = min(target, max(now, report.next_fire_at))
        version = store.data_version()
        running = self._running()
        while not self.stopping.is_set():
            remaining = target - self.clock.now().timestamp()
            if remaining <= 0:
                return
            self.clock.wait(min(STEP_S, remaining), self.stopping)
            if store.data_version() != version:
                return  # another process added, changed or paused a schedule: re-plan
            if report.waiting and self._running() < running:
                return  # a run ended while a slot waits for it


    def _running(self) -> int:
        count = getattr(self.launcher, "running", None)
        return count() if count else 0


def serve(*, clock: Clock | None = None, out=sys.stderr) -> int:
    """Run the daemon in this process until SIGTERM/SIGINT; returns the exit code."""
    from orchestra.app.schedule.launch import ProcessLauncher
    from orchestra.integrations.hooks import config as hooks_config

    home = orchestra_home()
    hooks_config.load(None)  # a broken ORCHESTRA_HOOKS_URI is exit 2 now, not a silent gap later
    lock = acquire_lock(home)
    launcher = ProcessLauncher()
    sender = start_sender(home)

    def report(rep: TickReport) -> None:
        for outcome in rep.outcomes:
            extra = f" (pid {outcome.pid})" if outcome.pid else (f": {outcome.reason}" if outcome.reason else "")
            print(f"orchestra: scheduler: {outcome.schedule} {outcome.slot} {outcome.state}{extra}", file=out, flush=True)
        if sender is not None and rep.outcomes:
            sender.wake()

    scheduler = Scheduler(clock or SystemClock(), launcher, report)
    previous = {sig: signal.signal(sig, lambda *_: scheduler.stop()) for sig in (signal.SIGTERM, signal.SIGINT)}
    print(f"orchestra: scheduler started (pid {os.getpid()}, home {home}, "
          f"{len(store.all_schedules())} schedule(s))", file=out, flush=True)
    try:
        scheduler.run()
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        if launcher.children:
            print(f"orchestra: scheduler stopping: sending SIGTERM to {len(launcher.children)} run(s)", file=out,
                  flush=True)
        launcher.terminate_all()
        finish_sender(sender)
        try:
            _pid_file(home).unlink()
        except OSError:
            pass
        lock.release()
    print("orchestra: scheduler stopped", file=out, flush=True)
    return 0


def start_sender(home: Path | None = None) -> Any:
    """A background webhook sender (the daemon keeps one for its lifetime; it also delivers what
    runs left pending), or None when it cannot start."""
    if home is None:
        home = orchestra_home()
    try:
        from orchestra.integrations.hooks.deliver import Policy
        from orchestra.integrations.hooks.sender import Sender

        sender = Sender(home, Policy())
        sender.start()
        return sender
    except Exception:  # noqa: BLE001 - webhooks never stop the scheduler
        log.warning("webhook sender not started", exc_info=True)
        return None


def finish_sender(sender: Any, drain_s: float | None = None) -> int:
    """Deliver what is pending — attempts in flight included — for at most ``drain_s`` seconds
    (default: a run's ``--hooks-drain``), then stop the sender; returns what is still pending.

    A process that exits with an attempt in flight loses that attempt: its claim then waits for
    the next orchestra command, which may be a minute (system cron) or never away. So a command
    that queued schedule events waits for their answers, as a run waits for its own. ``sender``
    None: a short-lived sender delivers what this process queued (nothing to do, nothing imported).
    """
    if drain_s is None:
        drain_s = NotificationOptions().hooks_drain
    try:
        if sender is None:
            return resume_pending(drain_s)
        try:
            return sender.drain(drain_s)
        finally:
            sender.stop()
    except Exception:  # noqa: BLE001 - a webhook never changes the scheduler's outcome
        log.warning("webhooks not delivered before exit", exc_info=True)
        return -1
