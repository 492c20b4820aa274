"""Stage descendants that left the stage's process group, found and killed with the stage.

Killing a stage's process group misses what detached from it (``setsid``, a daemonizing double
fork). On Linux orchestra makes itself a child subreaper (``PR_SET_CHILD_SUBREAPER``), so such
orphans become its children instead of init's; every stage process carries a per-attempt mark
in its environment (``ORCHESTRA_PROCESS_MARK``). When an attempt ends, orchestra's children that
belong to the attempt's process group or carry its mark are killed and reaped, round after round
(each death hands the dead one's children to orchestra). Without subreaper support every
process under ``/proc`` is searched for the mark instead (slower: one read per process).

What remains possible: a descendant that both clears its environment and double-forks under
another subreaper (or changes user, or enters another PID namespace) is not found.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterable

from orchestra.core.randomid import hex_id

MARK = "ORCHESTRA_PROCESS_MARK"
_enabled = False
_lock = threading.Lock()


def become_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants (Linux; once per process)."""
    global _enabled
    with _lock:
        if _enabled or not sys.platform.startswith("linux"):
            return _enabled
        try:
            _enabled = _prctl(36, 1) == 0  # PR_SET_CHILD_SUBREAPER
        except (ImportError, OSError, AttributeError):
            _enabled = False
        return _enabled


def _prctl(option: int, value: int) -> int:
    """``prctl(option, value, 0, 0, 0)`` through ``_ctypes`` itself: the ``ctypes`` package
    defines ~60 classes a run never uses (~1.2 ms of its start), this needs two."""
    import _ctypes

    class _Int(_ctypes._SimpleCData):  # ctypes.c_int
        _type_ = "i"

    class _Function(_ctypes.CFuncPtr):  # what ctypes.CDLL(None, use_errno=True) makes
        _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
        _restype_ = _Int

    class _Process:  # the symbols of the running process, as CDLL(None) opens them
        _handle = _ctypes.dlopen(None, _ctypes.RTLD_LOCAL)

    return int(_Function(("prctl", _Process))(option, value, 0, 0, 0))


def new_mark() -> str:
    return hex_id(8)


def sweep(mark: str, pgid: int, exclude: Iterable[int] = ()) -> int:
    """Kill and reap what is left of an attempt: the members of its process group and every
    process carrying ``mark``. As subreaper, they are (or become, as their parents die) this
    process's children, so only those are read; otherwise all of ``/proc``. Returns how many."""
    skip = set(exclude) | {os.getpid()}
    needle = f"{MARK}={mark}".encode() + b"\0"
    killed = 0
    for _ in range(50):
        found = [pid for pid in _candidates() if pid not in skip and _belongs(pid, pgid, needle)]
        if not found:
            break
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except (ProcessLookupError, PermissionError):
                pass
        _reap(found)
    return killed


def _candidates() -> list[int]:
    if _enabled:
        pids: list[int] = []
        try:
            for task in os.listdir("/proc/self/task"):
                pids += [int(pid) for pid in _read(f"/proc/self/task/{task}/children").split()]
            return pids
        except OSError:
            pass
    try:
        return [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return []


def _read(path: str) -> bytes:
    """A small ``/proc`` file, whole: through the descriptor (three system calls, where a
    buffered ``open`` makes eight; the sweep reads a few after every attempt)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        parts = [os.read(fd, 65536)]
        while parts[-1]:
            parts.append(os.read(fd, 65536))
        return b"".join(parts)
    finally:
        os.close(fd)


def _belongs(pid: int, pgid: int, needle: bytes) -> bool:
    try:
        fields = _read(f"/proc/{pid}/stat").rsplit(b") ", 1)[-1].split()
        if int(fields[2]) == pgid:  # a member of the stage's group, alive or a zombie
            return True
        return needle in _read(f"/proc/{pid}/environ") + b"\0"
    except (OSError, IndexError, ValueError):
        return False


def _reap(pids: list[int]) -> None:
    """Collect the ones that are our children (orphans given to us as subreaper)."""
    deadline = time.monotonic() + 2.0
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # not ours: init or another subreaper collects it
                break
            if done:
                break
            time.sleep(0.005)
