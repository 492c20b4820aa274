"""Read-only views of the stores under ORCHESTRA_HOME, for readers that must never write (the UI).

Files are opened with SQLite's ``mode=ro`` URI: a bug in a reader cannot change a run, and the
reader never creates or migrates a file. WAL mode lets it read while ``orchestra run`` writes.
A store file that does not exist yet reads as empty.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any, Iterable, Sequence
from urllib.parse import quote

from orchestra.core.errors import StoreError
from orchestra.core.layout import orchestra_home

_local = threading.local()


def connect(name: str, home: Path | None = None) -> sqlite3.Connection | None:
    """A read-only connection to ``<home>/<name>.sqlite`` (cached per thread), None if absent."""
    path = (home or orchestra_home()) / f"{name}.sqlite"
    cache: dict[str, sqlite3.Connection] = _local.__dict__.setdefault("conns", {})
    conn = cache.get(str(path))
    if conn is not None:
        return conn
    if not path.exists():
        return None
    try:
        conn = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, timeout=30.0,
                               isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA query_only=ON")
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"cannot open store {path} read-only: {exc}", hint="check ORCHESTRA_HOME") from exc
    cache[str(path)] = conn
    return conn


def query(name: str, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
    """Rows of ``sql`` over the store ``name`` (no rows if the file or table does not exist)."""
    conn = connect(name)
    if conn is None:
        return []
    try:
        return conn.execute(sql, tuple(args)).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise


def reset() -> None:
    """Forget cached connections (tests switch ORCHESTRA_HOME)."""
    for conn in _local.__dict__.get("conns", {}).values():
        conn.close()
    _local.__dict__["conns"] = {}


def loads(text: str | None, default: Any = None) -> Any:
    """A JSON column's value (``default`` for NULL or text that is not JSON)."""
    if not text:
        return default
    try:
        return json.loads(text)
    except ValueError:
        return default


def placeholders(values: Iterable[Any]) -> str:
    return ", ".join("?" for _ in values)
