"""What the outbox moves and what a deliverer answers: messages, outcomes, the Deliverer protocol."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class State(StrEnum):
    """Where a message is: waiting to be sent, or one of the three ends."""

    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"  # out of attempts, or refused for good
    DISABLED = "disabled"  # the destination asked never to be sent to again (webhooks: HTTP 410)


class Verdict(StrEnum):
    """What one attempt means for its message."""

    DELIVERED = "delivered"
    RETRY = "retry"
    DEAD = "dead"
    DISABLED = "disabled"


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message to enqueue, due at once.

    Attributes:
        lane: at most one message of a lane is in flight; with an ordered deliverer a lane's
            messages also go strictly in enqueue order (webhooks: the receiver URL; the mirror:
            one run on one server).
        destination: what the breaker watches (webhooks: the URL; the mirror: the server).
        ref: the deliverer's group of messages (webhooks: the event id; the mirror: the run id).
        subject: the deliverer's item within the group (webhooks: the hook name; the mirror: the stage).
        kind: what the message is (webhooks: the event name; the mirror: the operation).
        payload: what to send (webhooks: the body bytes; the mirror: the operation as JSON text).
        route: the deliverer's other fields, as JSON text (webhooks: secret variable names and
            ``allow_http``; never a secret itself).
    """

    lane: str
    destination: str
    ref: str
    subject: str
    kind: str
    payload: bytes | str
    route: str = "{}"


@dataclass(frozen=True, slots=True)
class Message:
    """A message claimed for one attempt; ``attempt`` is this attempt's number (1 for the first)."""

    id: int
    lane: str
    destination: str
    ref: str
    subject: str
    kind: str
    payload: bytes | str
    route: str
    attempt: int


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one attempt.

    Attributes:
        verdict: delivered, retry (later, per the retry policy), dead, or disabled.
        status_code: the destination's status code, when it answered.
        error: why it failed (or a note on a delivered message), without secrets.
        latency_ms: how long the attempt took.
        answer: the start of the answer, for the deliverer's own log.
        retry_after_s: the destination asked to wait this long before the next attempt.
        unavailable: the destination could not take the request (no connection; for the mirror
            also 429/5xx): its breaker opens.
    """

    verdict: Verdict
    status_code: int | None = None
    error: str | None = None
    latency_ms: int = 0
    answer: str = ""
    retry_after_s: float | None = None
    unavailable: bool = False


class Deliverer(Protocol):
    """Sends messages of one outbox; plugged into a :class:`~orchestra.integrations.outbox.dispatch.Dispatcher`.

    ``ordered``: True when a lane's messages must go strictly in order (a later one waits while
    an earlier one is pending), False when they are independent (one in flight per lane still).
    """

    ordered: bool

    def deliver(self, message: Message) -> Outcome:
        """Make one attempt; never raises (an unexpected error is a RETRY)."""

    def sweep(self, conn: sqlite3.Connection) -> None:
        """Before each pass: settle messages whose fate is known without a request."""

    def record(self, conn: sqlite3.Connection, message: Message, outcome: Outcome, state: State) -> None:
        """The deliverer's own bookkeeping of an attempt, in the transaction that finishes it."""
