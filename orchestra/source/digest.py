"""The project code digest, computed one way for local work trees, checkouts and plain directories.

A git project's digest is ``git_tree_digest(tree, changed)``: the tree of the project directory
at HEAD plus the content of uncommitted files. Local work trees and per-run checkouts of remote
repositories both call it, so the same commit gives the same cache keys wherever it came from.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Iterable

from orchestra.store.hashcache import file_sha256

# Directories that never belong to a project's code digest.
_IGNORED_DIRS = frozenset({".git", "__pycache__", ".orchestra", "mlruns", ".ipynb_checkpoints"})


def git_tree_digest(tree: str, root: Path | None = None, changed: Iterable[str] = ()) -> str:
    """Digest of a git tree id plus the current content of ``changed`` paths under ``root``."""
    digest = hashlib.sha256(f"git-tree:{tree}\n".encode())
    for name in sorted(set(changed)):
        assert root is not None
        file = root / name
        digest.update(name.encode(errors="surrogateescape") + b"\0")
        if file.is_file():
            digest.update(file_digest(file).encode())
        else:
            digest.update(b"<deleted>")
    return "sha256:" + digest.hexdigest()


def content_digest(path: Path) -> str:
    """Digest of every file under ``path`` (relative names and contents), ignoring VCS/caches."""
    digest = hashlib.sha256(b"content-v1\n")
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if d not in _IGNORED_DIRS)
        for name in sorted(files):
            if name.endswith(".pyc"):
                continue
            file = Path(root) / name
            rel = file.relative_to(path).as_posix()
            digest.update(rel.encode(errors="surrogateescape") + b"\0")
            digest.update(file_digest(file).encode() if file.is_file() else b"<special>")
    return "sha256:" + digest.hexdigest()


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes, hex (large unchanged files come from the stat-keyed cache)."""
    return file_sha256(path)
