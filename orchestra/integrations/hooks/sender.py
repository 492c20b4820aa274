"""Webhooks as a deliverer of the shared outbox, and the background sender built on it.

:class:`WebhookDeliverer` makes one signed POST per attempt and keeps the webhook's own
records (the attempts log, the hooks disabled by HTTP 410). Deliveries are independent of each
other; the dispatcher keeps one in flight per receiver URL, so a slow or dead receiver holds up
only its own events, and a receiver's events arrive in order while nothing fails.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from orchestra.core import log as logger
from orchestra.integrations.hooks import outbox
from orchestra.integrations.hooks.deliver import DISABLED, Policy, post
from orchestra.integrations.outbox.breaker import Breaker
from orchestra.integrations.outbox.dispatch import POLL_S, Dispatcher
from orchestra.integrations.outbox.model import Message, Outcome, State

__all__ = ["POLL_S", "Sender", "WebhookDeliverer"]

log = logger.get(__name__)


class WebhookDeliverer:
    """Posts one delivery per attempt; see the module docstring."""

    ordered = False

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    def deliver(self, message: Message) -> Outcome:
        body = message.payload if isinstance(message.payload, bytes) else message.payload.encode()
        target = outbox.target_of(message)
        outcome = post(target, message.ref, message.kind, message.attempt, body, self.policy)
        if outcome.verdict == DISABLED:
            log.warning("webhook %s answered 410 Gone: hook disabled", target.name)
        return outcome

    def sweep(self, conn: sqlite3.Connection) -> None:
        outbox.disable_known(conn)

    def record(self, conn: sqlite3.Connection, message: Message, outcome: Outcome, state: State) -> None:
        outbox.record_attempt(conn, message, outcome, state)


class Sender(Dispatcher):
    """Delivers pending webhooks of one ``hooks.sqlite`` until stopped.

    Args:
        home: the ORCHESTRA_HOME holding ``hooks.sqlite``.
        policy: timeouts, retry schedule and breaker cool-down.
        max_workers: receivers served at the same time.
    """

    def __init__(self, home: Path, policy: Policy = Policy(), max_workers: int = 8) -> None:
        super().__init__(outbox.box(home), WebhookDeliverer(policy), policy.retry, breaker=Breaker(policy.cooldown_s),
                         lease_s=policy.lease_s, max_workers=max_workers, name="orchestra-hooks")
        self.home = home
        self.policy = policy
