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
