"""Is anything due in an outbox file? Answered with sqlite3 alone, so every command can ask cheaply.

Kept apart from the queue module on purpose: this import must not pull in any delivery code.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from orchestra.core.pids import pid_alive


def earliest_due(path: Path) -> float | None:
    """When the first pending message in ``path`` may be tried (``time.time()``); None if none.

    A message claimed by a process that is gone may be tried now. Read-only and schema-free. A
    file written before the shared ``messages`` table existed answers "now", so that a full open
    (which migrates it) looks.
    """
    if not path.exists():
        return None
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
        try:
            rows = conn.execute(
                "SELECT claimed_pid, MIN(next_at) FROM messages WHERE state = 'pending' GROUP BY claimed_pid"
            ).fetchall()
        finally:
            conn.close()
    except sqlite3.OperationalError as exc:
        return time.time() if "no such table" in str(exc) else None
    except sqlite3.Error:
        return None  # unreadable: nothing this process can resume
    times = [time.time() if pid is not None and not pid_alive(pid) else next_at for pid, next_at in rows]
    return min((t for t in times if t is not None), default=None)
