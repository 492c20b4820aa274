"""The orchestrator's read-only view of the steps stage code published (``orchestra.stage``
``managed_artifact(..., step=)`` writes them; see ``orchestra/stage/_steps.py`` for the layout):
which steps an earlier run left under a stage's step base, for ``orchestra plan``."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from orchestra.core import settings


@dataclass(frozen=True, slots=True)
class PublishedStep:
    """One step record: its name, the artifact it holds and where it was computed."""

    step: str
    name: str
    run_id: str
    stage: str
    created: float
    trusted: bool = False  # named by --load-steps: loads whatever its key


def published(base: str) -> list[PublishedStep]:
    """Steps recorded under ``base`` (``planning.fingerprint.step_base``), newest first. A step
    loads only if the stage's ``key=`` matches too; unreadable records are skipped."""
    folder = settings.home() / "steps" / "by-key" / base.removeprefix("sha256:")  # read: nothing is created
    found = [_read(path) for path in sorted(folder.glob("*.json"))] if folder.is_dir() else []
    return sorted((step for step in found if step is not None), key=lambda s: -s.created)


def in_run(run_id: str, stage: str, step: str) -> PublishedStep | None:
    """The step ``step`` that ``stage`` of run ``run_id`` published or loaded (``--load-steps``)."""
    path = settings.home() / "steps" / "by-run" / _safe(run_id) / _safe(stage) / f"{_safe(step)}.json"
    return _read(path)


def _safe(name: str) -> str:
    """Stage code's path component for a name (``orchestra/stage/_steps.py``: ``safe_name``)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    if safe != name or safe in ("", ".", ".."):
        safe += "-" + hashlib.sha256(name.encode()).hexdigest()[:6]
    return safe


def _read(path: Path) -> PublishedStep | None:
    try:
        record = json.loads(path.read_text())
        return PublishedStep(str(record["step"]), str(record["name"]), str(record["run_id"]), str(record["stage"]),
                             float(record.get("created", 0)))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


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
