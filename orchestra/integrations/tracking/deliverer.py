"""The MLflow mirror as a deliverer of the shared outbox.

:class:`MirrorDeliverer` applies one op per attempt (:class:`~orchestra.integrations.tracking.apply.Applier`):
the ops of a run are *ordered* (a later op waits while an earlier one is pending). A server that
cannot take a request (no connection, timeout, 429, 5xx) is ``unavailable``: its breaker opens,
which also makes the run's stages stop waiting on it. :func:`dispatcher` is the background sender
of one run; :func:`send_pending` is what ``orchestra runs sync`` does in the foreground.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path

from orchestra.core import log as logger
from orchestra.core import settings
from orchestra.core.report import STDERR
from orchestra.core.tracking_uri import TrackingURI
from orchestra.integrations.outbox.breaker import Breaker
from orchestra.integrations.outbox.dispatch import Dispatcher
from orchestra.integrations.outbox.model import Message, Outcome, State, Verdict
from orchestra.integrations.outbox.retry_policy import RetryPolicy
from orchestra.integrations.tracking import queue
from orchestra.integrations.tracking.apply import Applier
from orchestra.integrations.tracking.queue import Op
from orchestra.integrations.tracking.rest import Rejected, RestClient, Unavailable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from orchestra.core.report import Reporter

log = logger.get(__name__)


@dataclass(frozen=True, slots=True)
class Policy:
    """Retries of the background sender, its breaker, and the timeouts of the synchronous calls.

    Attributes:
        retry: when a failed op goes again (ops never die of retries: the server comes back).
        sync_timeouts: (connect, read) of the calls a stage waits for (its child run).
        cooldown_s: after the server could not take a request, nothing is sent to it for this long.
        lease_s: how long a claimed op stays invisible to other senders (an upload may be slow).
    """

    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy((0.5, 1.0, 2.0, 5.0, 10.0, 30.0)))
    sync_timeouts: tuple[float, float] = (1.0, 3.0)
    cooldown_s: float = 2.0
    lease_s: float = 900.0

    @classmethod
    def from_env(cls) -> Policy:
        """The default policy; ``ORCHESTRA_MLFLOW_TIMEOUT`` (seconds) raises the synchronous read
        timeout for a server known to be slow (a bad value is ignored: mirroring never fails a run)."""
        read = settings.current().mlflow_timeout_s
        if read is None:
            return cls()
        return cls(sync_timeouts=(min(read, 5.0), read))


class MirrorDeliverer:
    """Sends the ops of runs mirrored to one server; see the module docstring.

    Args:
        uri: the server (with this process's credentials, which are never stored).
        home: ORCHESTRA_HOME of mirror.sqlite.
        creation_lock: shared with the engine thread's Applier, so a target is created once.
    """

    ordered = True

    def __init__(self, uri: TrackingURI, home: Path | None, creation_lock: threading.Lock,
                 reporter: Reporter = STDERR) -> None:
        self.uri = uri
        self.reporter = reporter
        self.home = home
        self.creation_lock = creation_lock
        self._idle: list[RestClient] = []  # a requests.Session per attempt in flight, reused after
        self._lock = threading.Lock()

    def deliver(self, message: Message) -> Outcome:
        op = Op.of(message)
        with self._lock:
            client = self._idle.pop() if self._idle else RestClient(self.uri)
        applier = Applier(self.uri, client, self.home, self.creation_lock)
        try:
            note = applier.apply(op)
        except Unavailable as exc:
            return Outcome(Verdict.RETRY, error=str(exc), retry_after_s=exc.retry_after_s, unavailable=True)
        except Rejected as exc:  # dead for good: said once, kept in the outbox (never retried) for runs sync
            self.reporter.line(f"orchestra: warning: MLflow rejected the {op.kind} of "
                               f"{f'stage {op.stage}' if op.stage else 'the parent'} of orchestra run "
                               f"{op.run_id[:8]} on {self.uri.display}: {exc}")
            return Outcome(Verdict.DEAD, error=str(exc))
        except Exception as exc:  # noqa: BLE001 - a bug or a broken file must not stop the queue for good
            log.warning("MLflow mirror: %s failed unexpectedly", op.kind, exc_info=True)
            return Outcome(Verdict.RETRY, error=f"{type(exc).__name__}: {exc}")
        finally:
            with self._lock:
                self._idle.append(client)
        for line in applier.rejected:  # the rest of the op landed; the refused items are said once
            self.reporter.line(f"orchestra: warning: {line}")
        return Outcome(Verdict.DELIVERED, error=note)

    def sweep(self, conn: sqlite3.Connection) -> None:
        pass

    def record(self, conn: sqlite3.Connection, message: Message, outcome: Outcome, state: State) -> None:
        pass


def dispatcher(uri: TrackingURI, home: Path | None, run_id: str, *, breaker: Breaker, policy: Policy,
               creation_lock: threading.Lock | None = None, reporter: Reporter = STDERR) -> Dispatcher:
    """The sender of one run's ops to ``uri`` (not started); ``reporter`` hears what the server refused."""
    deliverer = MirrorDeliverer(uri, home, creation_lock or threading.Lock(), reporter)
    return Dispatcher(queue.box(home), deliverer, policy.retry, breaker=breaker, lease_s=policy.lease_s, lanes=[queue.lane(uri.display, run_id)],
                      name="orchestra-mlflow")


def send_pending(uri: TrackingURI, home: Path | None, run_id: str, timeout_s: float) -> tuple[bool, str | None]:
    """Foreground: send the run's pending ops in order until none is left, the server is
    unavailable (or an op failed otherwise), or ``timeout_s`` passes.

    Returns:
        (everything sent, why not).
    """
    policy = Policy()
    queue.make_due(queue.open_db(home), uri.display, run_id)
    sender = dispatcher(uri, home, run_id, breaker=Breaker(policy.cooldown_s), policy=policy)
    try:
        pending = sender.drain(timeout_s, stop_on_failure=True)
    finally:
        sender.stop()
    return pending == 0, sender.last_error
