"""Is there webhook work left behind? Answered with sqlite3 alone, so every command can ask cheaply.

Kept apart from the outbox module on purpose: this import must not pull in the delivery code.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from orchestra.core.pids import pid_alive

__all__ = ["earliest_pending", "pid_alive"]


def earliest_pending(path: Path) -> float | None:
    """When the first pending delivery in ``path`` (a hooks.sqlite) may be tried; None if none.

    A delivery claimed by a process that is gone may be tried now. Read-only and schema-free,
    so a command with nothing to resume stays cheap.
    """
    if not path.exists():
        return None
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
        try:
            rows = conn.execute(
                "SELECT claimed_pid, MIN(next_at) FROM deliveries WHERE state = 'pending' GROUP BY claimed_pid"
            ).fetchall()
        finally:
            conn.close()
    except sqlite3.Error:
        return None  # no table yet, or unreadable: nothing this process can resume
    times = [time.time() if pid is not None and not pid_alive(pid) else next_at for pid, next_at in rows]
    return min(times) if times else None
