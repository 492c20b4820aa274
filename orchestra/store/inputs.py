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
import threading
from collections import namedtuple
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from orchestra.core.digest import sha256_file, stat_token
from orchestra.core.layout import orchestra_home
from orchestra.store import artifacts, runs as runstore

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


# One input file of an attempt: the upstream stage, its path in that stage's outputs (``rel``)
# and on disk (``path``), and its object (sha256, executable bit, store key). A plain named tuple
# (not ``typing.NamedTuple``, which needs ``typing``; not a frozen dataclass, ~2.5x slower to make):
# a long chain builds one per ancestor file per attempt, between a stage's end and the next start.
_Input = namedtuple("_Input", "stage rel path sha executable key")


# Stat tokens this process read from the store or recorded itself, by home, then object key. A
# token is only ever recorded for bytes that were hashed, and a file whose stat equals one is
# unchanged since (ctime cannot be set back), so a match here is as good as one in the store; a
# mismatch asks the store again (another process may have linked the object since) before
# hashing. It spares a long chain one query over every ancestor's objects per attempt.
_TOKENS: dict[str, dict[str, str]] = {}
_TOKENS_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class InputWatch:
    """The input files of one attempt and their (size, mtime_ns, ctime_ns) before it ran."""

    files: tuple[_Input, ...]
    seen: tuple[tuple[int, int, int] | None, ...]

    def check(self) -> str | None:
        """After the attempt: None, or one line naming the input that changed."""
        lstat = os.lstat
        for item, before in zip(self.files, self.seen):
            if before is None:  # already absent before the attempt: nothing of the store was there
                continue
            try:
                st = lstat(item.path)
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
    files: list[_Input] = []
    join = os.path.join
    for stage, manifest in manifests.items():
        base = input_dirs.get(stage)
        if base is None:
            continue
        for rel, entry in manifest.items():
            sha = str(entry["sha256"])
            executable = bool(int(entry["mode"]) & 0o100)
            files.append(_Input(stage, rel, join(base, rel), sha, executable, sha + ".x" if executable else sha))
    if not files:
        return InputWatch((), ()), None
    lstat = os.lstat
    stats: list[os.stat_result | None] = []
    for item in files:
        try:
            stats.append(lstat(item.path))
        except FileNotFoundError:
            stats.append(None)
    tokens = [stat_token(st) if st is not None else None for st in stats]
    with _TOKENS_LOCK:
        known = _TOKENS.setdefault(str(orchestra_home()), {})
        unsure = sorted({item.key for item, token in zip(files, tokens) if token is not None and known.get(item.key) != token})
    if unsure:
        stored = runstore.object_stats(unsure)
        with _TOKENS_LOCK:
            known.update(stored)
    fresh: list[tuple[str, int, str]] = []
    seen: list[tuple[int, int, int] | None] = []
    for item, st, token in zip(files, stats, tokens):
        if st is None:
            seen.append(None)
            continue
        if known.get(item.key) != token:
            problem = _damage(item, "does not match its manifest: it was changed before this stage started")
            if problem:
                return None, problem
            fresh.append((item.key, st.st_size, token))
        seen.append((st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    runstore.record_objects(fresh)
    with _TOKENS_LOCK:
        known.update((key, token) for key, _size, token in fresh)
    return InputWatch(tuple(files), tuple(seen)), None


def remember(rows: Sequence[tuple[str, int, str]]) -> None:
    """(object key, size, stat token) rows this process just recorded for objects it hashed (a
    publish): the next stage's check of them needs no query."""
    with _TOKENS_LOCK:
        _TOKENS.setdefault(str(orchestra_home()), {}).update((key, token) for key, _size, token in rows)


def _damage(item: _Input, what: str) -> str | None:
    """None if the file still holds its manifest's bytes; else quarantine its object, and say so."""
    try:
        intact = sha256_file(item.path) == item.sha
    except OSError:
        intact = False
    if intact:
        return None
    with _TOKENS_LOCK:
        _TOKENS.get(str(orchestra_home()), {}).pop(item.key, None)
    obj = artifacts.object_path(item.sha, item.executable)
    try:
        same = os.path.samefile(obj, item.path)
    except OSError:
        same = False
    if same:
        artifacts.quarantine(item.sha, item.executable)
    tail = "; its object is quarantined" if same else ""
    return f"input {item.stage}/{item.rel} {what} ({item.path}){tail}"
