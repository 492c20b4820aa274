"""The logged models of stages (the ``models`` table of ``runs.sqlite``, filled from what stage
code logged through the run's tracking endpoint)."""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Mapping, Sequence


def stage_models(conn: sqlite3.Connection, stages: Sequence[sqlite3.Row]) -> dict[str, tuple[Mapping[str, Any], ...]]:
    """Stage name → the logged models it holds (a LOADED stage: those of the stage it was loaded from)."""
    found: dict[str, tuple[Mapping[str, Any], ...]] = {}
    for row in stages:
        owner = (row["loaded_from_run"], row["loaded_from_stage"]) if row["loaded_from_run"] else (row["run_id"], row["name"])
        bodies = conn.execute("SELECT body FROM models WHERE run_id = ? AND stage = ? ORDER BY rowid", owner).fetchall()
        if bodies:
            found[row["name"]] = tuple(json.loads(b["body"]) for b in bodies)
    return found
