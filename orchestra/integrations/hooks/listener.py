"""HookListener: the events.Listener that turns lifecycle events into outbox rows.

``handle`` does no network I/O: it numbers the event within its run, writes the event and one
delivery per matching hook in one SQLite transaction, wakes the sender and returns (well under a
millisecond or two on a local disk). ``close`` gives the sender at most ``drain_s`` seconds;
whatever is left stays in the outbox for the next orchestra command.
"""

from __future__ import annotations

import threading
from pathlib import Path

from orchestra.core import log as logger
from orchestra.core.events import Event
from orchestra.core.report import STDERR
from orchestra.integrations.hooks import outbox
from orchestra.integrations.hooks.config import HooksConfig
from orchestra.integrations.hooks.deliver import Policy, Target
from orchestra.integrations.hooks.payload import build_body, encode, event_status, new_event_id
from orchestra.integrations.hooks.sender import Sender

TYPE_CHECKING = False
if TYPE_CHECKING:
    from orchestra.core.report import Reporter

log = logger.get(__name__)


class HookListener:
    """Writes matching events to the outbox and delivers them in the background.

    Args:
        config: the run's hooks.
        home: the ORCHESTRA_HOME holding ``hooks.sqlite``.
        policy: timeouts and retry schedule (tests inject short ones).
        reporter: where the end-of-run notice goes (the run's console).
    """

    waits_for = "webhook deliveries"  # what the run's closing line says it waited for while closing

    def __init__(self, config: HooksConfig, *, home: Path, policy: Policy = Policy(),
                 reporter: Reporter = STDERR) -> None:
        self.config = config
        self.home = home
        self.reporter = reporter
        self.sender = Sender(home, policy)
        self._lock = threading.Lock()
        self._sequences: dict[str, int] = {}
        self._sent_any = False
        self._closed = False
        # Open (and create) the outbox now, so the first event of the run pays no schema setup.
        outbox.open_db(home)

    def handle(self, event: Event) -> None:
        """Record the event for every hook that wants it; never raises, never waits on a receiver."""
        try:
            if self._record(event):
                if not self._closed:
                    self.sender.start()
                    self.sender.wake()
        except Exception:  # noqa: BLE001 - hooks never break a run
            log.warning("webhook event %s could not be recorded", event.name, exc_info=True)

    def close(self, drain_s: float) -> None:
        """Wait at most ``drain_s`` seconds for deliveries, then stop; never raises."""
        try:
            self._closed = True
            if not self._sent_any:
                return
            remaining = self.sender.drain(drain_s)
            self.sender.stop()
            if remaining:
                noun = "delivery" if remaining == 1 else "deliveries"
                self.reporter.notice(f"{remaining} webhook {noun} still pending; the next orchestra command "
                                     "retries them (see `orchestra hooks log --failed`)")
        except Exception:  # noqa: BLE001
            log.warning("webhook sender did not close cleanly", exc_info=True)

    def _record(self, event: Event) -> bool:
        status = event_status(event)
        # One lock around numbering and writing: the outbox order is the sequence order even when
        # the engine reports stages from several threads.
        with self._lock:
            sequence = self._sequences.get(event.run_id, 0) + 1
            self._sequences[event.run_id] = sequence
            hooks = self.config.matching(event.name, status)
            if not hooks:
                return False
            event_id = new_event_id()
            bodies: dict[bool, bytes] = {}
            deliveries = []
            for hook in hooks:
                with_params = "params" in hook.include
                if with_params not in bodies:
                    bodies[with_params] = encode(build_body(event, event_id, sequence, include_params=with_params))
                target = Target(hook.url, hook.name, hook.secret_envs, hook.allow_http)
                deliveries.append(outbox.NewDelivery(target, bodies[with_params]))
            outbox.record_event(
                outbox.open_db(self.home), event_id=event_id, run_id=event.run_id, name=event.name,
                status=status, stage=event.stage, sequence=sequence, occurred_at=event.timestamp,
                deliveries=deliveries,
            )
            self._sent_any = True
        return True
