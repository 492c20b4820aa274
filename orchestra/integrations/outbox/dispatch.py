"""The dispatcher: sends what is due in one outbox through one deliverer, in the background.

A dispatcher thread claims due messages (oldest first, one per free lane) and hands each to a
small daemon thread; a slow or dead destination therefore holds up only its own lane, never
another one, and never the code that enqueues (which only writes rows). Every outcome is
written back before the next attempt of that lane is claimed. The breaker keeps the dispatcher
away from a destination found unreachable; the retry policy decides when a failed message is
tried again and when it is dead.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from typing import Collection

from orchestra.core import log as logger
from orchestra.integrations.outbox import messages
from orchestra.integrations.outbox.breaker import Breaker
from orchestra.integrations.outbox.model import Deliverer, Message, Outcome, Verdict
from orchestra.integrations.outbox.retry_policy import RetryPolicy

log = logger.get(__name__)

# The dispatcher re-reads the outbox at least this often, so messages written by other
# processes (or a redeliver command) are noticed without a wake-up from this one.
POLL_S = 1.0


class Dispatcher:
    """Delivers the pending messages of one outbox until stopped.

    Args:
        box: the outbox file.
        deliverer: makes the attempts.
        retry: when a failed message goes again.
        breaker: shared with anyone who waits on the same destinations.
        lease_s: how long a claimed message stays invisible to other senders (one attempt and margin).
        lanes: only these lanes (None: every lane of the file).
        max_workers: lanes served at the same time.
        name: the thread's name.
    """

    def __init__(self, box: messages.Outbox, deliverer: Deliverer, retry: RetryPolicy, *, breaker: Breaker,
                 lease_s: float, lanes: Collection[str] | None = None, max_workers: int = 8,
                 name: str = "orchestra-outbox") -> None:
        self.box = box
        self.deliverer = deliverer
        self.retry = retry
        self.breaker = breaker
        self.lease_s = lease_s
        self.lanes = tuple(lanes) if lanes is not None else None
        self.last_error: str | None = None
        self._cond = threading.Condition()
        self._busy: set[str] = set()
        self._stopping = False
        self._kick = False
        self._idle = False  # the last pass found nothing due before the next wake-up
        self._failures = 0  # attempts that ended RETRY
        self._max_workers = max_workers
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._started = False

    def start(self) -> None:
        """Start the dispatcher thread (idempotent)."""
        with self._cond:
            if not self._started:
                self._started = True
                self._thread.start()

    def wake(self) -> None:
        """Tell the dispatcher that new messages are due."""
        with self._cond:
            self._kick = True
            self._idle = False
            self._cond.notify_all()

    def drain(self, timeout_s: float, *, stop_on_failure: bool = False) -> int:
        """Wait until nothing is in flight and nothing is due within ``timeout_s``; at most that long.

        Args:
            timeout_s: the longest wait.
            stop_on_failure: also stop once an attempt failed (to be retried) since the call.

        Returns:
            The number of messages still pending (retries scheduled later, or cut by the timeout).
        """
        deadline = time.time() + max(0.0, timeout_s)
        with self._cond:
            failures = self._failures
        self.start()
        self.wake()
        conn = self.box.conn()
        while True:
            with self._cond:
                busy = bool(self._busy)
                idle = self._idle and not self._kick
                failed = self._failures > failures
            if not busy and failed and stop_on_failure:
                break
            if not busy and idle:
                upcoming = self._next_wake(conn, set())
                if upcoming is None or upcoming > deadline:
                    break
            remaining = deadline - time.time()
            if remaining <= 0:
                break
            with self._cond:
                self._cond.wait(min(remaining, 0.1))
        return messages.pending_count(conn, self.lanes)

    def stop(self) -> None:
        """Stop dispatching; attempts in flight go on in daemon threads, which never delay exit."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()

    def _next_wake(self, conn: sqlite3.Connection, busy: set[str]) -> float | None:
        return messages.next_wake(conn, busy, ordered=self.deliverer.ordered, lanes=self.lanes,
                                  retry_at=self.breaker.retry_at)

    def _run(self) -> None:
        try:
            conn = self.box.conn()
        except Exception:  # noqa: BLE001 - a broken store must not take the caller down
            log.warning("%s cannot open %s", self._thread.name, self.box.path, exc_info=True)
            return
        while True:
            with self._cond:
                if self._stopping:
                    return
                self._kick = False
                busy = set(self._busy)
            try:
                self._dispatch(conn, busy)
                with self._cond:
                    busy = set(self._busy)
                upcoming = self._next_wake(conn, busy)
            except Exception:  # noqa: BLE001 - e.g. a locked database: try again shortly
                log.warning("%s pass failed", self._thread.name, exc_info=True)
                upcoming = time.time() + POLL_S
            with self._cond:
                if self._stopping:
                    return
                if upcoming is None or len(self._busy) >= self._max_workers:
                    wait = POLL_S  # a finishing attempt notifies us before that
                else:
                    # Floor: a message due now that could not be claimed must not make this loop spin.
                    wait = min(POLL_S, max(0.01, upcoming - time.time()))
                if not self._kick:
                    self._idle = True
                    self._cond.notify_all()
                    self._cond.wait(wait)

    def _dispatch(self, conn: sqlite3.Connection, busy: set[str]) -> None:
        self.deliverer.sweep(conn)
        rows = messages.due(conn, time.time(), busy, ordered=self.deliverer.ordered, lanes=self.lanes,
                            retry_at=self.breaker.retry_at)
        for row in rows:
            with self._cond:
                if self._stopping or len(self._busy) >= self._max_workers:
                    return
            claimed = messages.claim(conn, row, self.lease_s)
            if claimed is None:
                continue
            with self._cond:
                self._busy.add(claimed.lane)
                self._idle = False
            # Daemon threads, not a ThreadPoolExecutor: its exit hook joins workers, so a hanging
            # destination would hold the process past its drain. A claim cut short by exit is
            # taken over by the next sender (the pid is gone).
            threading.Thread(target=self._send, args=(claimed,), name=f"{self._thread.name}-send",
                             daemon=True).start()

    def _send(self, message: Message) -> None:
        try:
            try:
                outcome = self.deliverer.deliver(message)
            except Exception as exc:  # noqa: BLE001 - a deliverer bug is retried, never fatal
                log.warning("%s: delivery of message %s failed unexpectedly", self._thread.name, message.id,
                            exc_info=True)
                outcome = Outcome(Verdict.RETRY, error=f"{type(exc).__name__}: {exc}")
            if outcome.unavailable:
                self.breaker.failed(message.destination, outcome.error or "unavailable")
            elif outcome.verdict == Verdict.DELIVERED:
                self.breaker.succeeded(message.destination)
            delay = (self.retry.next_delay(message.attempt, outcome.retry_after_s)
                     if outcome.verdict == Verdict.RETRY else None)
            messages.finish(self.box.conn(), message, outcome, delay, self.deliverer.record)
            if outcome.verdict == Verdict.RETRY:
                with self._cond:
                    self._failures += 1
                    self.last_error = outcome.error
        except Exception:  # noqa: BLE001 - never let a worker die silently; the lease retries it
            log.warning("%s: message %s not finished", self._thread.name, message.id, exc_info=True)
        finally:
            with self._cond:
                self._busy.discard(message.lane)
                self._kick = True
                self._idle = False
                self._cond.notify_all()
