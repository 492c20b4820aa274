"""Breaker: stop trying a destination for a while once it could not be reached.

One breaker per process and deliverer, keyed by destination. A failure opens it: the dispatcher
leaves that destination's messages alone until the cool-down is over, then lets one attempt
through; a delivered message closes it. Callers that wait on a destination synchronously (the
mirror creating a stage's MLflow run) ask :meth:`Breaker.is_open` and skip the wait while it is
open, so a server found down costs one timeout, not one per stage.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class _Open:
    """An open circuit: no attempt before ``until``."""

    until: float  # time.time() when an attempt may go through again
    reason: str


class Breaker:
    """Per-destination breaker; thread-safe.

    Args:
        cooldown_s: how long a destination is left alone after a failure.
    """

    def __init__(self, cooldown_s: float) -> None:
        self.cooldown_s = cooldown_s
        self._lock = threading.Lock()
        self._open: dict[str, _Open] = {}

    def failed(self, destination: str, reason: str) -> None:
        """The destination could not take a request: open (again) for a cool-down."""
        with self._lock:
            self._open[destination] = _Open(time.time() + self.cooldown_s, reason)

    def succeeded(self, destination: str) -> None:
        """A message was delivered: close."""
        with self._lock:
            self._open.pop(destination, None)

    def is_open(self, destination: str) -> bool:
        """Failed and not closed by a success since (cool-down over or not)."""
        with self._lock:
            return destination in self._open

    def retry_at(self, destination: str) -> float | None:
        """When the next attempt may go (``time.time()``), or None when the breaker is closed."""
        with self._lock:
            state = self._open.get(destination)
        return state.until if state else None

    def reason(self, destination: str) -> str | None:
        """Why it opened, or None when closed."""
        with self._lock:
            state = self._open.get(destination)
        return state.reason if state else None

    def try_now(self, destination: str) -> None:
        """End the cool-down now (one last attempt before exit); the breaker stays open until it succeeds."""
        with self._lock:
            state = self._open.get(destination)
            if state is not None:
                self._open[destination] = _Open(time.time(), state.reason)
