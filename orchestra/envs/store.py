"""Environment prefixes under ``ORCHESTRA_HOME/envs``: built once, published atomically.

Layout::

    envs/<kind>-<key>/                  a published env; valid only with its marker
    envs/<kind>-<key>/.orchestra-env.json   the marker, written last; its mtime = last use
    envs/<kind>-<key>.lock              filelock held while building that env
    envs/.tmp-<kind>-<key>-<pid>-<rand>/  a build in progress (swept when its pid is dead)
    envs/locks/<kind>-<key>.<ext>       the lock text the env was built from (provenance)
    envs/resolved/<digest>.json         spec digest → lock (warm reuse: no solve, no lock)
    envs/builds.log                     one JSON line per build (and per wait for a build)

Warm reuse is one ``stat`` of the marker and a ``utime``. A cold build takes the env's
filelock (flock: released by the kernel when the holder dies), checks again, sweeps dead
builds, builds into a temporary directory, writes the marker, and renames the directory into
place. Backends that cannot relocate (an external conda executable) build in place under the
lock; the marker is then the commit point and an unmarked final directory counts as garbage.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from orchestra.core import settings
from orchestra.core.errors import EnvError
from orchestra.core.layout import home_path
from orchestra.core.pids import pid_alive

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MARKER = ".orchestra-env.json"
LAYOUT_VERSION = 1
_STALE_TMP_SECONDS = 24 * 3600
LOCK_TIMEOUT_ENV = "ORCHESTRA_ENV_LOCK_TIMEOUT"


@dataclass(frozen=True, slots=True)
class StoredEnv:
    """A published environment, as ``orchestra env list`` shows it."""

    name: str
    kind: str
    key: str
    prefix: Path
    spec: str
    created: float
    last_used: float

    def size(self) -> int:
        total = 0
        for root, _dirs, files in os.walk(self.prefix):
            for f in files:
                try:
                    st = os.lstat(os.path.join(root, f))
                except OSError:
                    continue
                total += st.st_size
        return total


def root() -> Path:
    return home_path("envs")


def root_peek() -> Path:
    """The envs directory, without creating anything (for dry runs)."""
    return settings.home() / "envs"


def prefix_for(name: str) -> Path:
    return root() / name


def is_valid(prefix: Path) -> bool:
    return (prefix / MARKER).is_file()


def touch(prefix: Path) -> None:
    try:
        os.utime(prefix / MARKER)
    except OSError:
        pass


def log_event(event: str, name: str, **fields: Any) -> None:
    """Append one JSON line to builds.log (O_APPEND lines of this size do not interleave)."""
    line = json.dumps({"event": event, "env": name, "pid": os.getpid(), "time": time.time(), **fields}) + "\n"
    fd = os.open(root() / "builds.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def sweep(only: str | None = None) -> list[Path]:
    """Delete builds left by dead processes: ``.tmp-*`` dirs whose pid is gone (or that are a day
    old), and, for ``only`` (whose lock the caller holds), an unmarked published directory."""
    removed = []
    base = root()
    for entry in base.iterdir():
        if not entry.name.startswith(".tmp-"):
            continue
        try:
            pid = int(entry.name.rsplit("-", 2)[-2])
        except (ValueError, IndexError):
            pid = -1
        try:
            age = time.time() - entry.stat().st_mtime
        except OSError:
            continue
        if pid == os.getpid():
            continue
        if pid <= 0 or not pid_alive(pid) or age > _STALE_TMP_SECONDS:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    if only is not None:
        final = base / only
        if final.exists() and not is_valid(final):
            shutil.rmtree(final, ignore_errors=True)
            removed.append(final)
    return removed


def sweep_unmarked() -> list[Path]:
    """Delete published-looking directories without a marker (an in-place build that died),
    each under its own lock so a build in progress is left alone."""
    from filelock import FileLock, Timeout

    removed = []
    for entry in root().iterdir():
        if entry.name.startswith(".") or not entry.is_dir() or entry.name in ("locks", "resolved") or is_valid(entry):
            continue
        lock = FileLock(str(root() / f"{entry.name}.lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            continue
        try:
            if not is_valid(entry):
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
        finally:
            lock.release()
    return removed


def _lock_timeout() -> float:
    return settings.current().env_lock_timeout_s or 3600.0


Builder = Callable[[Path, Path], None]  # (build dir, final prefix)


def ensure(name: str, build: Builder, marker: Mapping[str, Any], *, relocatable: bool = True) -> tuple[Path, bool]:
    """Return ``(prefix, built)`` for the env ``name``, building it at most once across processes.

    Args:
        name: ``<kind>-<key>``.
        build: fills the build directory; told the final prefix (for placeholders/shebangs).
        marker: what the marker records (spec, kind, key, ...).
        relocatable: whether ``build`` output may be renamed; if not, it builds in place.
    """
    final = prefix_for(name)
    if is_valid(final):
        touch(final)
        return final, False
    from filelock import FileLock, Timeout

    base = root()
    lock = FileLock(str(base / f"{name}.lock"))
    waited_from = time.time()
    try:
        try:
            lock.acquire(timeout=0)
        except Timeout:
            log_event("waiting", name)  # another process is building it: wait, then reuse
            lock.acquire(timeout=_lock_timeout())
    except Timeout:
        holder = (base / f"{name}.owner").read_text().strip() if (base / f"{name}.owner").exists() else "?"
        raise EnvError(f"timed out waiting for another process (pid {holder}) to build environment {name}",
                       hint=f"raise {LOCK_TIMEOUT_ENV} or stop that process") from None
    try:
        if is_valid(final):
            touch(final)
            log_event("reused-after-wait", name, waited=time.time() - waited_from)
            return final, False
        (base / f"{name}.owner").write_text(str(os.getpid()))
        sweep(only=name)
        started = time.time()
        if relocatable:
            tmp = base / f".tmp-{name}-{os.getpid()}-{os.urandom(4).hex()}"
            tmp.mkdir()
            try:
                build(tmp, final)
                _write_marker(tmp, marker)
                os.rename(tmp, final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        else:
            final.mkdir(parents=True, exist_ok=True)
            try:
                build(final, final)
                _write_marker(final, marker)
            except BaseException:
                shutil.rmtree(final, ignore_errors=True)
                raise
        log_event("built", name, seconds=round(time.time() - started, 3))
        return final, True
    finally:
        (base / f"{name}.owner").unlink(missing_ok=True)
        lock.release()


def _write_marker(prefix: Path, marker: Mapping[str, Any]) -> None:
    data = {"layout": LAYOUT_VERSION, "created": time.time(), **marker}
    tmp = prefix / f"{MARKER}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, default=str)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, prefix / MARKER)


# -- resolution cache: spec digest → lock ------------------------------------------------
def read_resolved(digest: str) -> dict[str, Any] | None:
    try:
        with open(root() / "resolved" / f"{digest}.json") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None  # a missing or corrupt entry is a miss
    return data if isinstance(data, dict) and data.get("layout") == LAYOUT_VERSION else None


def peek_resolved(digest: str) -> dict[str, Any] | None:
    """Like read_resolved, without creating ``ORCHESTRA_HOME`` (for dry runs)."""
    path = root_peek() / "resolved" / f"{digest}.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("layout") == LAYOUT_VERSION else None


def write_resolved(digest: str, data: Mapping[str, Any]) -> None:
    write_atomic(root() / "resolved" / f"{digest}.json", json.dumps({"layout": LAYOUT_VERSION, **data}))


def save_lock_text(name: str, ext: str, text: str) -> Path:
    path = root() / "locks" / f"{name}.{ext}"
    if not path.exists():
        write_atomic(path, text)
    return path


# -- list / gc ------------------------------------------------------------------------------
def published() -> list[StoredEnv]:
    found = []
    for entry in sorted(root().iterdir()):
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        marker = entry / MARKER
        try:
            data = json.loads(marker.read_text())
            last_used = marker.stat().st_mtime
        except (OSError, ValueError):
            continue
        kind, _, key = entry.name.partition("-")
        found.append(StoredEnv(name=entry.name, kind=data.get("kind", kind), key=key, prefix=entry,
                               spec=str(data.get("spec", "")), created=float(data.get("created", 0)),
                               last_used=last_used))
    return found


def remove(env: StoredEnv) -> bool:
    """Delete a published env under its lock (never while it is being built); False if busy."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(root() / f"{env.name}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return False
    try:
        # Unpublish first (atomic), then delete at leisure: a reader never sees half an env.
        trash = root() / f".tmp-{env.name}-{os.getpid()}-{os.urandom(4).hex()}"
        try:
            os.rename(env.prefix, trash)
        except OSError:
            return False
        shutil.rmtree(trash, ignore_errors=True)
        for suffix in (".owner",):
            (root() / f"{env.name}{suffix}").unlink(missing_ok=True)
        return True
    finally:
        lock.release()
