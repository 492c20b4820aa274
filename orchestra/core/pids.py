"""Processes by pid: is one still there, and signalling a whole process group.

One answer for every store that records the pid of its writer (runs, the webhook outbox, the
env store, schedule claims) and for every place that stops a stage's process group.
"""

from __future__ import annotations

import os

__all__ = ["hostname", "pid_alive", "signal_group"]


def hostname() -> str:
    """This machine's name, as ``socket.gethostname()`` gives it (the kernel's node name), under
    which stores record their writers' pids; without importing ``socket`` for it."""
    return os.uname().nodename


def pid_alive(pid: int | None) -> bool:
    """True for this process and any live one; a reaped, never-seen or zombie pid is gone.

    A zombie (exited, not yet reaped by its parent) answers ``kill(pid, 0)`` like a live process;
    on Linux its state in ``/proc/PID/stat`` says ``Z``, and it counts as gone.
    """
    if pid is None or pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b") ", 1)[-1][:1] != b"Z"
    except OSError:  # no /proc (macOS): kill(0) is the answer
        return True


def signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to process group ``pgid``; False when the group is gone or not ours."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True
