"""Remembered file digests, keyed by (path, inode, size, mtime): unchanged files are not re-read.

The code digest of a project outside git hashes every file on every run; with this cache a
warm run only stats them (DVC keeps the same kind of state database).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from orchestra.core.digest import sha256_file, stat_token
from orchestra.store.db import connect

_SCHEMA = """
CREATE TABLE IF NOT EXISTS digests (path TEXT PRIMARY KEY, stat TEXT NOT NULL, sha256 TEXT NOT NULL);
"""
_pending: list[tuple[str, str, str]] = []
_lock = threading.Lock()
# Files smaller than this are cheaper to hash than to look up.
_MIN_CACHED = 256 * 1024


def file_sha256(path: Path) -> str:
    """sha256 hex of a file's bytes, from the cache when its stat is unchanged."""
    st = os.stat(path)
    if st.st_size < _MIN_CACHED:
        return sha256_file(path)

    token = stat_token(st)
    key = str(Path(path).resolve())
    conn = connect("hashcache", _SCHEMA)
    row = conn.execute("SELECT stat, sha256 FROM digests WHERE path = ?", (key,)).fetchone()
    if row is not None and row["stat"] == token:
        return row["sha256"]
    sha = sha256_file(path)
    with _lock:
        conn.execute("INSERT OR REPLACE INTO digests (path, stat, sha256) VALUES (?, ?, ?)", (key, token, sha))
    return sha
