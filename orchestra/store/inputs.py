"""The inputs a stage attempt was given, checked before and after it runs.

A stage's inputs are hardlinks to the read-only objects of its upstream stages; mode 0444 stops
neither root nor the file's owner, so a stage can write through them. Before an attempt, every
input file's stat token is compared with the one recorded for its object (a difference means
"hash it again"); after the attempt, its size, mtime and ctime are compared with the ones seen
before (ctime cannot be set back). A file whose bytes no longer match the manifest fails the
attempt, and its object is quarantined so no later run links it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from orchestra.core.digest import sha256_file, stat_token
from orchestra.store import artifacts, runs as runstore


@dataclass(frozen=True, slots=True)
class _Input:
    stage: str
    rel: str
    path: str
    sha: str
    executable: bool

    @property
    def key(self) -> str:
        return self.sha + (".x" if self.executable else "")


@dataclass(frozen=True, slots=True)
class InputWatch:
    """The input files of one attempt and their (size, mtime_ns, ctime_ns) before it ran."""

    files: tuple[_Input, ...]
    seen: tuple[tuple[int, int, int] | None, ...]

    def check(self) -> str | None:
        """After the attempt: None, or one line naming the input that changed."""
        for item, before in zip(self.files, self.seen):
            if before is None:  # already absent before the attempt: nothing of the store was there
                continue
            try:
                st = os.lstat(item.path)
            except FileNotFoundError:
                return f"input {item.stage}/{item.rel} was removed while the stage ran ({item.path})"
            if before == (st.st_size, st.st_mtime_ns, st.st_ctime_ns):
                continue
            problem = _damage(item, "was modified while the stage ran")
            if problem:
                return problem
        return None


def watch(input_dirs: Mapping[str, str], manifests: Mapping[str, Mapping[str, Mapping[str, Any]]]
          ) -> tuple[InputWatch | None, str | None]:
    """Before the attempt: the watch over its inputs, or the line naming an input already damaged."""
    files = [_Input(stage, rel, os.path.join(input_dirs[stage], rel), str(entry["sha256"]),
                    bool(int(entry["mode"]) & 0o100))
             for stage, manifest in manifests.items() if stage in input_dirs
             for rel, entry in manifest.items()]
    known = runstore.object_stats(sorted({item.key for item in files})) if files else {}
    seen: list[tuple[int, int, int] | None] = []
    fresh: list[tuple[str, int, str]] = []
    for item in files:
        try:
            st = os.lstat(item.path)
        except FileNotFoundError:
            seen.append(None)
            continue
        token = stat_token(st)
        if known.get(item.key) != token:
            problem = _damage(item, "does not match its manifest: it was changed before this stage started")
            if problem:
                return None, problem
            fresh.append((item.key, st.st_size, token))
        seen.append((st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    runstore.record_objects(fresh)
    return InputWatch(tuple(files), tuple(seen)), None


def _damage(item: _Input, what: str) -> str | None:
    """None if the file still holds its manifest's bytes; else quarantine its object, and say so."""
    try:
        intact = sha256_file(item.path) == item.sha
    except OSError:
        intact = False
    if intact:
        return None
    obj = artifacts.object_path(item.sha, item.executable)
    try:
        same = os.path.samefile(obj, item.path)
    except OSError:
        same = False
    if same:
        artifacts.quarantine(item.sha, item.executable)
    tail = "; its object is quarantined" if same else ""
    return f"input {item.stage}/{item.rel} {what} ({item.path}){tail}"
