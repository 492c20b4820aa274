"""Linking a loaded upstream stage's outputs the first time stage code reads them.

A run loads most stages without making their directory of links (``store/loaded.py``); for the
upstream stages a stage is given through ``ORCHESTRA_INPUTS_FILE`` only (a long chain), the
file carries the manifest of each one not linked yet, and :func:`link` makes its directory as
the orchestrator does: hardlinks to the read-only objects in a temporary directory beside it,
renamed into place (another reader that got there first wins). Standard library only.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any, Mapping


def link(outputs: str, manifest: Mapping[str, Mapping[str, Any]], objects: str) -> None:
    """Make ``outputs`` as links to the objects of ``manifest`` (under ``objects``), atomically."""
    parent = os.path.dirname(outputs)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".out.tmp-", dir=parent)  # (what a killed process leaves, the reaper sweeps)
    try:
        for rel, entry in manifest.items():
            target = os.path.normpath(os.path.join(tmp, rel))
            if not target.startswith(tmp + os.sep):
                raise ValueError(f"manifest path {rel!r} escapes the outputs directory")
            os.makedirs(os.path.dirname(target), exist_ok=True)
            sha = str(entry["sha256"])
            obj = f"{objects}/{sha[:2]}/{sha[2:]}{'.x' if int(entry['mode']) & 0o100 else ''}"
            try:
                os.link(obj, target)
            except OSError:  # another filesystem, too many links: a copy
                shutil.copy2(obj, target)
        try:
            os.rename(tmp, outputs)
        except OSError:
            if not os.path.isdir(outputs):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
