"""The logged models of stages (the ``models`` table of ``runs.sqlite``, filled from what stage
code logged through the run's tracking endpoint)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def stage_models(conn: sqlite3.Connection, stages: Sequence[sqlite3.Row]) -> dict[str, tuple[Mapping[str, Any], ...]]:
    """Stage name → the logged models it holds (a LOADED stage: those of the stage it was loaded from)."""
    owners = {row["name"]: (row["loaded_from_run"], row["loaded_from_stage"]) if row["loaded_from_run"]
              else (row["run_id"], row["name"]) for row in stages}
    bodies: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for run_id in dict.fromkeys(run for run, _ in owners.values()):  # one query per run (a few), not per stage
        for body in conn.execute("SELECT stage, body FROM models WHERE run_id = ? ORDER BY rowid", (run_id,)):
            bodies.setdefault((run_id, body["stage"]), []).append(json.loads(body["body"]))
    return {name: tuple(bodies[owner]) for name, owner in owners.items() if owner in bodies}
