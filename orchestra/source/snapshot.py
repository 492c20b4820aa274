"""What a run's stages did to the project's code: a stat snapshot of the files the digest covers.

Taken before the stages run and again after; a path that appeared, changed or went away in
between was written by stage code into the project directory, and changes the next run's code
digest (the next run then sees "project code changed"). Only stats: no file is read.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from orchestra.source.digest import code_files
from orchestra.source.ignore import Rules
from orchestra.source.project import ProjectDir

Snapshot = Mapping[str, tuple[int, int, int]]  # relative path → (size, mtime_ns, inode)


def take(project: ProjectDir) -> Snapshot | None:
    """The snapshot of a project run in place; None for a per-run checkout (nothing reuses it)."""
    if project.is_remote:
        return None
    root = project.path
    names = _git_code_files(root) if project.commit else None
    if names is None:
        names = code_files(root)
    found: dict[str, tuple[int, int, int]] = {}
    for rel in names:
        try:
            st = os.lstat(root / rel)
        except OSError:
            continue
        found[rel] = (st.st_size, st.st_mtime_ns, st.st_ino)
    return found


def _git_code_files(root: Path) -> list[str] | None:
    """Tracked files and untracked ones git does not ignore, minus the built-ins and .orchestraignore."""
    proc = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                          capture_output=True, env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"}, check=False)
    if proc.returncode != 0:
        return None
    rules = Rules(root, gitignore=False)
    names = dict.fromkeys(proc.stdout.decode(errors="surrogateescape").split("\0"))
    return [name for name in names if name and not rules.ignored(name)]


def changed(before: Snapshot, after: Snapshot) -> dict[str, int | None]:
    """Paths written (new or modified: their mtime in ns) or removed (None) between two snapshots."""
    result: dict[str, int | None] = {}
    for rel, stat in after.items():
        if before.get(rel) != stat:
            result[rel] = stat[1]
    for rel in before.keys() - after.keys():
        result[rel] = None
    return dict(sorted(result.items()))
