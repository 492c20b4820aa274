"""``persistent_dict``: small JSON state that outlives runs, kept per project (mlflowhelper's
``MlflowDict``), safe for several processes at once.

One SQLite file per project under ``ORCHESTRA_HOME/state/`` (WAL, a busy timeout): every read and
write is its own transaction, and ``with d.locked():`` makes a read-modify-write atomic across
processes (``BEGIN IMMEDIATE`` holds the write lock). For small state — counters, best scores,
a last-seen id — not for data: outputs and steps are what carry data between runs.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sqlite3
import threading
from collections.abc import MutableMapping
from contextlib import contextmanager
from typing import Any, Iterator

from orchestra.stage._tracking import home

_MISSING = object()


def project_key() -> str:
    """The project this stage belongs to: ``ORCHESTRA_PROJECT_KEY`` (set by the orchestrator), else
    a digest of the current directory (a script run by hand in its project)."""
    return os.environ.get("ORCHESTRA_PROJECT_KEY") or hashlib.sha256(os.getcwd().encode()).hexdigest()[:16]


class PersistentDict(MutableMapping):
    """A dict of JSON values named ``name`` in this project's state store."""

    def __init__(self, name: str, project: str | None = None) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError("persistent_dict: name must be a non-empty string")
        self.name = name
        folder = home() / "state"
        folder.mkdir(parents=True, exist_ok=True)
        key = project or project_key()
        if not all(c.isalnum() or c in "-_" for c in key):
            raise ValueError(f"persistent_dict: project key {key!r} must be letters, digits, - or _")
        self.path = folder / f"{key}.sqlite"
        # Opening is serialised by a lock file: two processes switching a new file to WAL at once
        # get "database is locked" at once (that switch does not wait on the busy timeout).
        with open(folder / f"{key}.sqlite.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA busy_timeout=60000")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS items (dict TEXT NOT NULL, key TEXT NOT NULL, "
                             "value TEXT NOT NULL, PRIMARY KEY (dict, key))")
        self._mutex = threading.RLock()
        self._depth = 0

    @contextmanager
    def locked(self) -> Iterator[PersistentDict]:
        """Hold the store's write lock: reads and writes inside happen as one transaction."""
        with self._mutex:
            outer = self._depth == 0
            if outer:
                self._db.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield self
            except BaseException:
                self._depth -= 1
                if outer:
                    self._db.execute("ROLLBACK")
                raise
            self._depth -= 1
            if outer:
                self._db.execute("COMMIT")

    def __getitem__(self, key: str) -> Any:
        with self._mutex:
            row = self._db.execute("SELECT value FROM items WHERE dict = ? AND key = ?", (self.name, _key(key))).fetchone()
        if row is None:
            raise KeyError(key)
        return json.loads(row[0])

    def __setitem__(self, key: str, value: Any) -> None:
        text = json.dumps(value)  # refuse what JSON cannot hold before anything is written
        with self._mutex:
            self._db.execute("INSERT INTO items (dict, key, value) VALUES (?, ?, ?) "
                             "ON CONFLICT (dict, key) DO UPDATE SET value = excluded.value", (self.name, _key(key), text))

    def __delitem__(self, key: str) -> None:
        with self._mutex:
            gone = self._db.execute("DELETE FROM items WHERE dict = ? AND key = ?", (self.name, _key(key))).rowcount
        if not gone:
            raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        with self._mutex:
            rows = self._db.execute("SELECT key FROM items WHERE dict = ? ORDER BY key", (self.name,)).fetchall()
        return iter([row[0] for row in rows])

    def __len__(self) -> int:
        with self._mutex:
            return self._db.execute("SELECT COUNT(*) FROM items WHERE dict = ?", (self.name,)).fetchone()[0]

    def increment(self, key: str, by: float = 1) -> float:
        """Add ``by`` to the number at ``key`` (0 when absent) atomically; returns the new value."""
        with self.locked():
            value = self.get(key, 0) + by
            self[key] = value
            return value

    def close(self) -> None:
        self._db.close()

    def __repr__(self) -> str:
        return f"persistent_dict({self.name!r}: {dict(self.items())!r})"


def _key(key: Any) -> str:
    if not isinstance(key, str):
        raise TypeError(f"persistent_dict keys are strings, not {type(key).__name__}")
    return key
