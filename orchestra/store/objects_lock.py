"""The lock of the content-addressed objects: publish/load share it, ``gc`` takes it alone."""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from orchestra.core import settings
from orchestra.core.layout import home_path


class _ObjectsLock:
    """Readers (publish/load, any thread) share; ``gc`` is exclusive. Across processes this is a
    flock on one file; inside a process the threads count themselves, because a flock belongs to
    the open file and one thread's unlock would otherwise release every thread's share."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._readers = 0
        self._fd: int | None = None
        self._path: Path | None = None

    def _descriptor(self) -> int:
        configured = settings.home()
        if self._fd is None or configured != self._path:
            self._fd = os.open(home_path("locks") / "objects.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            self._path = configured
        return self._fd

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._mutex:
            if self._readers == 0:
                fcntl.flock(self._descriptor(), fcntl.LOCK_SH)
            self._readers += 1
        try:
            yield
        finally:
            with self._mutex:
                self._readers -= 1
                if self._readers == 0:
                    fcntl.flock(self._descriptor(), fcntl.LOCK_UN)

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._mutex:
            fd = self._descriptor()
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)


_LOCK = _ObjectsLock()


class Hold:
    """The shared lock held across calls, until released: a run holds it from the first stage
    it loads without linking until the run store names those stages' objects (``gc`` reads the
    store for what it must keep). Taking it again while held does nothing."""

    def __init__(self) -> None:
        self._held: contextlib.AbstractContextManager[None] | None = None

    def take(self) -> None:
        if self._held is None:
            held = _LOCK.shared()
            held.__enter__()
            self._held = held

    def release(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            held.__exit__(None, None, None)


def shared_lock():  # -> ContextManager[None]
    """Held while publishing/linking; ``gc`` takes it exclusively before deleting objects."""
    return _LOCK.shared()


def exclusive_lock():  # -> ContextManager[None]
    return _LOCK.exclusive()
