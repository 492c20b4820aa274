"""RetryPolicy: when a failed message is tried again, and when it is given up."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Jittered backoff with a maximum number of attempts.

    Attributes:
        delays_s: the backoff schedule, growing roughly exponentially: the delay after failed
            attempt n (1-based) is ``delays_s[n-1]``; past the end the last one repeats.
        max_attempts: a message is tried at most this often (None: until it succeeds).
        jitter: each delay is multiplied by a uniform factor in this range.
        retry_after_cap_s: a destination's ``retry_after`` is honoured up to this.
    """

    delays_s: tuple[float, ...]
    max_attempts: int | None = None
    jitter: tuple[float, float] = (1.0, 1.0)
    retry_after_cap_s: float = 3600.0

    def next_delay(self, attempts: int, retry_after_s: float | None = None) -> float | None:
        """Seconds until the next try after ``attempts`` tries failed, or None when out of tries."""
        if attempts < 1 or not self.delays_s:
            return None
        if self.max_attempts is not None and attempts >= self.max_attempts:
            return None
        delay = self.delays_s[min(attempts, len(self.delays_s)) - 1] * random.uniform(*self.jitter)
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, self.retry_after_cap_s))
        return delay


def parse_retry_after(value: str | None) -> float | None:
    """An HTTP ``Retry-After`` value (seconds, or a date) in seconds from now; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError):
        return None
