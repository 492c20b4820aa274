"""SQLite connections to the stores under ORCHESTRA_HOME.

Every store file is opened in WAL mode with a busy timeout, so concurrent orchestra processes
(runs, the scheduler, hook senders) on one home wait for each other instead of failing.
Each subsystem keeps its tables in its own file (``runs.sqlite``, ``hooks.sqlite``,
``schedules.sqlite``) so their writers never contend for one lock.
"""

from __future__ import annotations

import fcntl
import sqlite3
import threading
import zlib
from pathlib import Path

from orchestra.core import settings
from orchestra.core.errors import StoreError
from orchestra.core.layout import orchestra_home

_local = threading.local()


def connect(name: str, schema: str, home: Path | None = None) -> sqlite3.Connection:
    """Open (and create) ``<home>/<name>.sqlite`` with ``schema`` applied once per process.

    Connections are cached per thread and per path; use them with ``with conn:`` for atomic
    transactions.
    """
    cache: dict[object, sqlite3.Connection] = _local.__dict__.setdefault("conns", {})
    fast_key = (name, home, settings.home())
    conn = cache.get(fast_key)
    if conn is not None:
        return conn
    path = (home or orchestra_home()) / f"{name}.sqlite"
    key = str(path)
    try:
        conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout=30000")
        # NORMAL is durable against process crashes in WAL mode (only an OS crash can lose the
        # last transactions), and it keeps per-stage commits well under a millisecond.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        version = zlib.crc32(schema.encode()) & 0x7FFFFFFF or 1
        if conn.execute("PRAGMA user_version").fetchone()[0] != version:
            _apply(conn, path, schema, version)
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"cannot open store {path}: {exc}", hint="check ORCHESTRA_HOME") from exc
    cache[key] = cache[fast_key] = conn
    return conn


def _apply(conn: sqlite3.Connection, path: Path, schema: str, version: int) -> None:
    """WAL mode and ``schema`` on a file that does not carry this schema's version yet (a new
    file, or one written by another version of orchestra); the version is recorded last, so a
    process opening the file later skips both (every store connection of every thread did)."""
    # Switching a new file to WAL and applying the schema are serialised across processes by
    # a lock file: two processes doing it at once on a rollback-journal file get "database is
    # locked" at once (SQLite does not wait on the busy timeout where waiting could deadlock).
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            conn.execute("PRAGMA journal_mode=WAL")
        try:  # one transaction: one commit for every table, not one each
            conn.executescript(f"BEGIN IMMEDIATE;\n{schema}\n;PRAGMA user_version={version};\nCOMMIT;")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise


def reset_connections() -> None:
    """Forget cached connections (tests switch ORCHESTRA_HOME between cases)."""
    for conn in set(_local.__dict__.get("conns", {}).values()):
        conn.close()
    _local.__dict__["conns"] = {}


class immediate:
    """``with immediate(conn) as conn:`` — BEGIN IMMEDIATE … COMMIT, ROLLBACK on any exception.

    Connections are in autocommit mode, so this is the only way stores write several rows at
    once; IMMEDIATE takes the write lock up front, so concurrent writers wait on the busy
    timeout instead of failing halfway. A class rather than a generator: it is on the
    per-stage hot path.
    """

    __slots__ = ("conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: object, *_: object) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
