"""What every part of the stage API shares: the tracking file, the outputs directory, and paths
that may not escape their base. Standard library only (the stage API is imported in every stage
environment)."""

from __future__ import annotations

import json
import os
from pathlib import Path


def append(item: dict) -> None:
    """Append one JSON line to ``ORCHESTRA_METRICS_FILE`` (a no-op outside orchestra, as mlflow
    logging is without an active run)."""
    path = os.environ.get("ORCHESTRA_METRICS_FILE")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(item) + "\n")


def output_dir() -> Path:
    path = os.environ.get("ORCHESTRA_OUTPUT_DIR")
    if not path:
        raise RuntimeError("ORCHESTRA_OUTPUT_DIR is not set: this code is not running as an orchestra stage")
    return Path(path)


def inside(base: Path, name: str) -> Path:
    """``base / name``, refusing a name that escapes ``base`` (``..``, an absolute path, a link)."""
    target = (base / name).resolve()
    if not target.is_relative_to(base.resolve()):
        raise ValueError(f"{name!r} escapes the directory {base}")
    return target


def home() -> Path:
    """``ORCHESTRA_HOME`` as the orchestrator reads it (default ``~/.orchestra``)."""
    return Path(os.environ.get("ORCHESTRA_HOME") or Path.home() / ".orchestra").expanduser()
