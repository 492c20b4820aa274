"""Where orchestra keeps its state: ``ORCHESTRA_HOME`` (default ``~/.orchestra``)."""

from __future__ import annotations

import os
from pathlib import Path


_made: dict[tuple[str, ...], Path] = {}


def orchestra_home() -> Path:
    """Return the home directory, created on first use."""
    return home_path()


def home_path(*parts: str) -> Path:
    """A directory under the home, created on first use (remembered: no syscall when warm)."""
    configured = os.environ.get("ORCHESTRA_HOME") or str(Path.home() / ".orchestra")
    key = (configured, *parts)
    path = _made.get(key)
    if path is None or not path.is_dir():
        path = Path(configured).expanduser().resolve().joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        _made[key] = path
    return path
