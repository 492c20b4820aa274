"""The orchestrator's read-only view of the steps stage code published (``orchestra.stage``
``managed_artifact(..., step=)`` writes them; see ``orchestra/stage/_steps.py`` for the layout):
which steps an earlier run left under a stage's step base, for ``orchestra plan``."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass

from orchestra.core import settings


@dataclass(frozen=True, slots=True)
class PublishedStep:
    """One step record: its name, the artifact it holds and where it was computed."""

    step: str
    name: str
    run_id: str
    stage: str
    created: float


def published(base: str) -> list[PublishedStep]:
    """Steps recorded under ``base`` (``planning.fingerprint.step_base``), newest first. A step
    loads only if the stage's ``key=`` matches too; unreadable records are skipped."""
    folder = settings.home() / "steps" / "by-key" / base.removeprefix("sha256:")  # read: nothing is created
    found: list[PublishedStep] = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            record = json.loads(path.read_text())
            found.append(PublishedStep(str(record["step"]), str(record["name"]), str(record["run_id"]),
                                       str(record["stage"]), float(record.get("created", 0))))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return sorted(found, key=lambda s: -s.created)


def forget_runs(run_ids: set[str]) -> int:
    """Remove the step records of deleted runs (``orchestra gc``, before their objects go);
    returns how many records were removed."""
    root = settings.home() / "steps"
    removed = 0
    for run_id in run_ids:
        folder = root / "by-run" / run_id
        if folder.is_dir():
            removed += sum(1 for _ in folder.rglob("*.json"))
            shutil.rmtree(folder, ignore_errors=True)
    by_key = root / "by-key"
    for path in by_key.glob("*/*.json") if by_key.is_dir() else []:
        try:
            owner = json.loads(path.read_text()).get("run_id")
        except (OSError, ValueError, AttributeError):
            owner = None
        if owner in run_ids:
            path.unlink(missing_ok=True)
            removed += 1
    return removed
