"""Several orchestra processes opening a brand-new store file at once all succeed.

Two processes switching a new SQLite file to WAL at the same moment used to get "database is
locked" at once (SQLite does not wait on the busy timeout there); ``db.connect`` serialises the
switch and the schema with a lock file. Real processes, real files; the race is probabilistic,
so the test opens fresh homes many times.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OPEN = ("from orchestra.store import db; "
        "db.connect('race', 'CREATE TABLE IF NOT EXISTS t (a); CREATE TABLE IF NOT EXISTS u (b);')")


def test_concurrent_first_opens_of_a_store_all_succeed(tmp_path):
    failures = []
    for round_ in range(12):
        home = tmp_path / f"home{round_}"
        home.mkdir()
        env = {**os.environ, "ORCHESTRA_HOME": str(home), "PYTHONPATH": str(REPO)}
        procs = [subprocess.Popen([sys.executable, "-c", OPEN], env=env, stderr=subprocess.PIPE, text=True)
                 for _ in range(4)]
        failures += [proc.stderr.read() for proc in procs if proc.wait(timeout=120) != 0]
    assert failures == []


def test_the_schema_is_applied_once_per_file_not_once_per_connection(tmp_path, monkeypatch):
    """A file that carries the schema's version is opened without the lock file or the script:
    every thread's first connection (and every process) used to run both."""
    import sqlite3

    from orchestra.store import db as dbmod

    monkeypatch.setenv("ORCHESTRA_HOME", str(tmp_path))
    dbmod.reset_connections()
    applied = []
    original = dbmod._apply
    monkeypatch.setattr(dbmod, "_apply", lambda *args: (applied.append(args[2]), original(*args)))
    schema = "CREATE TABLE IF NOT EXISTS t (x INTEGER);"
    dbmod.connect("versioned", schema).execute("INSERT INTO t VALUES (1)")
    dbmod.reset_connections()
    assert dbmod.connect("versioned", schema).execute("SELECT x FROM t").fetchall()[0][0] == 1
    assert applied == [schema]
    dbmod.reset_connections()
    changed = schema + "CREATE TABLE IF NOT EXISTS u (y INTEGER);"  # a newer orchestra's schema
    dbmod.connect("versioned", changed).execute("INSERT INTO u VALUES (2)")
    assert applied == [schema, changed]
    raw = sqlite3.connect(tmp_path / "versioned.sqlite")
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    dbmod.reset_connections()
