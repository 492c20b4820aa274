"""Where orchestra keeps its state: ``ORCHESTRA_HOME`` (default ``~/.orchestra``)."""

from __future__ import annotations

import os
from pathlib import Path


def orchestra_home() -> Path:
    """Return the home directory, created on first use."""
    home = Path(os.environ.get("ORCHESTRA_HOME") or Path.home() / ".orchestra").expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home.resolve()


def home_path(*parts: str) -> Path:
    """A directory under the home, created on first use."""
    path = orchestra_home().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
