"""``orchestra gc``: delete runs and unreferenced objects without ever breaking a later load.

Order matters: rows go first (one transaction, so the index never points at data about to be
deleted), then the runs' directories, then objects no remaining manifest references — under
the exclusive object lock, so no concurrent publish or load sees an object vanish mid-link.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass

from orchestra.app import reaper
from orchestra.core.errors import BadInputError
from orchestra.core.layout import home_path
from orchestra.core.status import RunStatus
from orchestra.store import artifacts, runs as runstore, steps


@dataclass(frozen=True, slots=True)
class GcReport:
    """What ``orchestra gc`` removed: runs, objects and bytes."""

    runs: tuple[str, ...]
    objects: int
    bytes: int


def gc(*, keep_last: int | None = None, older_than_days: float | None = None, dry_run: bool = False) -> GcReport:
    """Delete finished runs selected by count/age (RUNNING runs are never touched)."""
    if keep_last is not None and keep_last < 0:
        raise BadInputError(f"--keep-last {keep_last}: must be 0 or more")
    if older_than_days is not None and older_than_days < 0:
        raise BadInputError(f"--older-than {older_than_days}: must be 0 or more")
    reaper.reap_stale_runs()
    rows = runstore.db().execute("SELECT run_id, start_time, status FROM runs ORDER BY start_time DESC").fetchall()
    doomed: list[str] = []
    cutoff = time.time() - older_than_days * 86400 if older_than_days is not None else None
    for index, row in enumerate(rows):
        if row["status"] == RunStatus.RUNNING:
            continue
        too_many = keep_last is not None and index >= keep_last
        too_old = cutoff is not None and row["start_time"] < cutoff
        if too_many or too_old:
            doomed.append(row["run_id"])
    if not dry_run and doomed:
        runstore.delete_runs(doomed)
        root = home_path("runs")
        for run_id in doomed:
            shutil.rmtree(root / run_id, ignore_errors=True)
        steps.forget_runs(set(doomed))  # stage code's steps of those runs: no record outlives its objects
    removed, freed = artifacts.collect_garbage(dry_run=dry_run)
    return GcReport(tuple(doomed), removed, freed)
