"""Published steps: their key, their index and their contents, written and read by stage code.

A step is the content of a ``managed_artifact(_dir)(..., step=NAME)`` that exited cleanly. Its
files go into the content-addressed object store (``ORCHESTRA_HOME/objects/ab/abcdef…``, read-only,
the same store and layout as stage outputs) and a small JSON record is written, last and
atomically (temporary file + rename), to two places under ``ORCHESTRA_HOME/steps/``:

- ``by-key/<base>/<step key>.json``: found automatically by a later run whose key matches;
- ``by-run/<run id>/<stage>/<step>.json``: found by ``--load-from RUN --load-steps NAME``.

A killed process leaves at most unreferenced objects, never a record, so nothing half-written can
be loaded. Loading verifies every object (size, then sha256) before linking it into a private
directory; a record whose objects are gone (``orchestra gc`` removes objects no stage output
references) or corrupt is a miss, never an error.

Standard library only: this runs inside the stage's own environment.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import stat as statmod
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

from orchestra.stage._tracking import home

# Bump when the meaning of a step key changes: every old record then misses, none is misread.
STEP_KEY_VERSION = 1


def step_key(base: str, step: str, name: str, kind: str, key: Mapping[str, Any] | None) -> str:
    """The key of one step: sha256 over the stage's step base (see ``ORCHESTRA_STEP_BASE``), the
    step's name, the artifact's name and kind (file or dir) and the caller's ``key`` mapping."""
    parts = {"version": STEP_KEY_VERSION, "base": base, "step": step, "name": name, "kind": kind,
             "key": dict(key or {})}
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def safe_name(name: str) -> str:
    """One path component: ``[A-Za-z0-9._-]`` kept, anything else ``_`` plus a short digest of
    the original (the orchestrator's rule for stage directories)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    if safe != name or safe in ("", ".", ".."):
        safe += "-" + hashlib.sha256(name.encode()).hexdigest()[:6]
    return safe


def _hex(key: str) -> str:
    return key.removeprefix("sha256:")


def by_key_path(base: str, key: str) -> Path:
    return home() / "steps" / "by-key" / _hex(base) / f"{_hex(key)}.json"


def by_run_path(run_id: str, stage: str, step: str) -> Path:
    return home() / "steps" / "by-run" / safe_name(run_id) / safe_name(stage) / f"{safe_name(step)}.json"


def _object_path(sha: str, executable: bool) -> Path:
    return home() / "objects" / sha[:2] / (sha[2:] + (".x" if executable else ""))


@contextmanager
def _objects_shared() -> Iterator[None]:
    """The object store's shared lock: ``orchestra gc`` deletes only under the exclusive one."""
    locks = home() / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    fd = os.open(locks / "objects.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _files(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            yield Path(dirpath) / name


def _store(path: Path) -> dict[str, Any]:
    """Put ``path`` into the object store and replace it by a hardlink to the stored object."""
    st = path.stat()
    executable = bool(st.st_mode & statmod.S_IXUSR)
    sha = _sha256(path)
    obj = _object_path(sha, executable)
    if obj.exists() and obj.stat().st_size != st.st_size:
        _quarantine(obj)  # a damaged object never replaces good bytes
    if not obj.exists():
        obj.parent.mkdir(parents=True, exist_ok=True)
        tmp = obj.with_name(f".tmp-{os.getpid()}-{obj.name}")
        try:
            shutil.copyfile(path, tmp)  # a copy: the stage may still hold the file open
            os.chmod(tmp, 0o555 if executable else 0o444)
            os.replace(tmp, obj)
        finally:
            tmp.unlink(missing_ok=True)
    _link(obj, path)
    return {"sha256": sha, "size": st.st_size, "mode": 0o755 if executable else 0o644}


def _quarantine(obj: Path) -> None:
    """Remove a corrupt object so nothing links it again (the next publish writes it afresh)."""
    try:
        obj.chmod(0o644)
        obj.unlink()
    except OSError:
        pass


def _link(obj: Path, target: Path) -> None:
    """Make ``target`` a hardlink of ``obj`` (a copy across filesystems), replacing it atomically."""
    tmp = target.with_name(f".{target.name}.link-{os.getpid()}")
    try:
        try:
            os.link(obj, tmp)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EMLINK, errno.EPERM):
                raise
            shutil.copy2(obj, tmp)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def _write_json(path: Path, record: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(record, sort_keys=True))
    os.replace(tmp, path)


def publish(root: Path, *, base: str | None, key: str | None, step: str, name: str, kind: str,
            run_id: str, stage: str) -> dict[str, Any]:
    """Store the files under ``root`` and write the step's records (by key when the stage has a
    step base, and by run). Returns the record."""
    for path in root.rglob("*"):
        if path.is_symlink():
            raise ValueError(f"step {step!r}: {path.relative_to(root)} is a symlink; write the file itself")
    with _objects_shared():
        files = {path.relative_to(root).as_posix(): _store(path) for path in _files(root)}
    record = {"version": STEP_KEY_VERSION, "step": step, "name": name, "kind": kind, "key": key,
              "run_id": run_id, "stage": stage, "created": time.time(), "files": files}
    if base and key:
        _write_json(by_key_path(base, key), record)
    register(record, run_id, stage)
    return record


def register(record: Mapping[str, Any], run_id: str, stage: str) -> None:
    """Make ``record`` findable as this run's step too (``--load-from THIS_RUN --load-steps``)."""
    _write_json(by_run_path(run_id, stage, str(record["step"])), record)


def read(path: Path) -> dict[str, Any] | None:
    """The record at ``path``; None when it is absent or unreadable (a miss, never an error)."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("version") != STEP_KEY_VERSION or not isinstance(record.get("files"), dict):
        return None
    return record


def materialize(record: Mapping[str, Any], dest: Path) -> str | None:
    """Verify every object of ``record`` and hardlink it under ``dest``; the problem, or None.

    ``dest`` ends read-only (files are read-only objects, directories 0555). Nothing is left
    under ``dest`` on failure.
    """
    with _objects_shared():
        for rel, entry in record["files"].items():
            target = dest / rel
            if not target.resolve().is_relative_to(dest.resolve()):
                return f"{rel}: escapes the step directory"
            obj = _object_path(str(entry["sha256"]), bool(int(entry["mode"]) & 0o100))
            try:
                size = obj.stat().st_size
            except FileNotFoundError:
                return f"{rel}: object missing (removed by orchestra gc?)"
            if size != entry["size"] or _sha256(obj) != entry["sha256"]:
                _quarantine(obj)
                return f"{rel}: object does not match its sha256 (corrupt object removed)"
            target.parent.mkdir(parents=True, exist_ok=True)
            _link(obj, target)
    for dirpath, _, _ in os.walk(dest):
        os.chmod(dirpath, 0o555)
    return None


def make_writable(root: Path) -> None:
    """Undo the 0555 of a loaded step's directories (so it can be moved into the outputs)."""
    if root.is_dir():
        for dirpath, _, _ in os.walk(root, topdown=True, onerror=None):
            os.chmod(dirpath, 0o755)
