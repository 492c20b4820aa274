"""The background sender: posts due deliveries from the outbox, one in flight per receiver URL.

A dispatcher thread claims due rows (oldest first, one per free URL) and hands each to a small
daemon thread; a slow or dead receiver therefore holds up only its own events, never another
receiver's, and never the pipeline (which only writes rows). Every outcome is written back to
the outbox before the next attempt to that URL is claimed.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path

from orchestra.integrations.hooks import outbox
from orchestra.integrations.hooks.deliver import DISABLED, Policy, post

log = logging.getLogger(__name__)

# The dispatcher re-reads the outbox at least this often, so rows written by other processes
# (or a redeliver command) are noticed without a wake-up from this one.
POLL_S = 1.0


class Sender:
    """Delivers pending rows of one ``hooks.sqlite`` until stopped.

    Args:
        home: the ORCHESTRA_HOME holding ``hooks.sqlite``.
        policy: timeouts and retry schedule.
        max_workers: receivers served at the same time.
    """

    def __init__(self, home: Path, policy: Policy = Policy(), max_workers: int = 8) -> None:
        self.home = home
        self.policy = policy
        self._cond = threading.Condition()
        self._busy: set[str] = set()
        self._stopping = False
        self._kick = False
        self._idle = False  # the last pass found nothing due before the next wake-up
        self._max_workers = max_workers
        self._thread = threading.Thread(target=self._run, name="orchestra-hooks", daemon=True)
        self._started = False

    def start(self) -> None:
        """Start the dispatcher thread (idempotent)."""
        with self._cond:
            if not self._started:
                self._started = True
                self._thread.start()

    def wake(self) -> None:
        """Tell the dispatcher that new rows are due."""
        with self._cond:
            self._kick = True
            self._idle = False
            self._cond.notify_all()

    def drain(self, timeout_s: float) -> int:
        """Wait until nothing is in flight and nothing is due within ``timeout_s``; at most that long.

        Returns:
            The number of deliveries still pending (retries scheduled later, or cut by the timeout).
        """
        deadline = time.time() + max(0.0, timeout_s)
        self.start()
        conn = outbox.open_db(self.home)
        while True:
            with self._cond:
                busy = bool(self._busy)
                idle = self._idle and not self._kick
            if not busy and idle:
                upcoming = outbox.next_wake(conn, set())
                if upcoming is None or upcoming > deadline:
                    break
            remaining = deadline - time.time()
            if remaining <= 0:
                break
            with self._cond:
                self._cond.wait(min(remaining, 0.1))
        return outbox.pending_count(conn)

    def stop(self) -> None:
        """Stop dispatching; attempts in flight go on in daemon threads, which never delay exit."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()

    def _run(self) -> None:
        try:
            conn = outbox.open_db(self.home)
        except Exception:  # noqa: BLE001 - a broken store must not take the run down
            log.warning("webhook sender cannot open the outbox", exc_info=True)
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
                upcoming = outbox.next_wake(conn, busy)
            except Exception:  # noqa: BLE001 - e.g. a locked database: try again shortly
                log.warning("webhook sender pass failed", exc_info=True)
                upcoming = time.time() + POLL_S
            with self._cond:
                if self._stopping:
                    return
                if upcoming is None or len(self._busy) >= self._max_workers:
                    wait = POLL_S  # a finishing attempt notifies us before that
                else:
                    # Floor: a row due now that could not be claimed must not make this loop spin.
                    wait = min(POLL_S, max(0.01, upcoming - time.time()))
                if not self._kick:
                    self._idle = True
                    self._cond.notify_all()
                    self._cond.wait(wait)

    def _dispatch(self, conn: sqlite3.Connection, busy: set[str]) -> None:
        outbox.disable_known(conn)
        for row in outbox.due(conn, time.time(), busy):
            with self._cond:
                if self._stopping or len(self._busy) >= self._max_workers:
                    return
            claimed = outbox.claim(conn, row, self.policy.lease_s)
            if claimed is None:
                continue
            with self._cond:
                self._busy.add(claimed.target.url)
                self._idle = False
            # Daemon threads, not a ThreadPoolExecutor: its exit hook joins workers, so a hanging
            # receiver would hold the process past --hooks-drain. A claim cut short by exit is
            # taken over by the next sender (the pid is gone).
            threading.Thread(target=self._send, args=(claimed,), name="orchestra-hook-post", daemon=True).start()

    def _send(self, claimed: outbox.Claimed) -> None:
        try:
            outcome = post(claimed.target, claimed.event_id, claimed.event_name, claimed.attempt,
                           claimed.body, self.policy)
            delay = self.policy.next_delay(claimed.attempt, outcome.retry_after_s)
            state = outbox.finish(outbox.open_db(self.home), claimed, outcome, delay)
            if state == DISABLED:
                log.warning("webhook %s answered 410 Gone: hook disabled", claimed.target.name)
        except Exception:  # noqa: BLE001 - never let a worker die silently; the lease retries it
            log.warning("webhook delivery %s failed unexpectedly", claimed.id, exc_info=True)
        finally:
            with self._cond:
                self._busy.discard(claimed.target.url)
                self._kick = True
                self._idle = False
                self._cond.notify_all()
