"""The scheduler's notion of time, injectable so tests drive it without sleeping."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from typing import Protocol


class Clock(Protocol):
    """``now()`` is aware UTC; ``wait(seconds, wake)`` returns early when ``wake`` is set."""

    def now(self) -> datetime: ...

    def wait(self, seconds: float, wake: threading.Event) -> None: ...


class SystemClock:
    """The real clock (wall time, so a suspend or an NTP step is noticed at the next wake-up)."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def wait(self, seconds: float, wake: threading.Event) -> None:
        wake.wait(max(0.0, seconds))


class FakeClock:
    """A clock tests move by hand; ``wait`` advances it instead of sleeping."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FakeClock needs an aware datetime")
        self._now = start.astimezone(timezone.utc)
        self.waits: list[float] = []

    def now(self) -> datetime:
        return self._now

    def set(self, moment: datetime) -> None:
        self._now = moment.astimezone(timezone.utc)

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)

    def wait(self, seconds: float, wake: threading.Event) -> None:
        self.waits.append(seconds)
        self.advance(max(0.0, seconds))
