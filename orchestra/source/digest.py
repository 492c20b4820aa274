"""The project code digest, computed one way for local work trees, checkouts and plain directories.

A git project's digest is ``git_tree_digest(tree, changed)``: the tree of the project directory
at HEAD plus the content of uncommitted files. Local work trees and per-run checkouts of remote
repositories both call it, so the same commit gives the same cache keys wherever it came from.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from orchestra.core.digest import sha256
from orchestra.source.ignore import Rules
from orchestra.store.hashcache import file_sha256


def git_tree_digest(tree: str, root: Path | None = None, changed: Iterable[str] = ()) -> str:
    """Digest of a git tree id plus the current content of ``changed`` paths under ``root``."""
    digest = sha256(f"git-tree:{tree}\n".encode())
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
    """Digest of every file under ``path`` (relative names and contents) that is code: not
    excluded by the built-ins, ``.gitignore`` or ``.orchestraignore`` (:mod:`orchestra.source.ignore`)."""
    digest = sha256(b"content-v1\n")
    for rel in code_files(path):
        file = path / rel
        digest.update(rel.encode(errors="surrogateescape") + b"\0")
        digest.update(file_digest(file).encode() if file.is_file() else b"<special>")
    return "sha256:" + digest.hexdigest()


def code_files(path: Path) -> list[str]:
    """The files under a plain directory that are its code (relative, ``/``-separated, sorted as walked)."""
    rules = Rules(path, gitignore=True)
    found: list[str] = []
    for root, dirs, files in os.walk(path):
        base = Path(root).relative_to(path).as_posix()
        prefix = "" if base == "." else base + "/"
        dirs[:] = sorted(d for d in dirs if not rules.matches(prefix + d, True))
        found += [prefix + name for name in sorted(files) if not rules.matches(prefix + name, False)]
    return found


def uncommitted_code(path: Path, prefix: str, changed: Iterable[str]) -> list[str]:
    """The paths of ``changed`` (relative to the repository's top, as ``git status`` names them)
    that are code of the project at ``path`` (``prefix`` below the top): git already left out
    what ``.gitignore`` excludes, the built-ins and ``.orchestraignore`` go here."""
    rules = Rules(path, gitignore=False)
    return [name for name in changed if not (name.startswith(prefix) and rules.ignored(name[len(prefix):]))]


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes, hex (large unchanged files come from the stat-keyed cache)."""
    return file_sha256(path)
