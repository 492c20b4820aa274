"""Content-addressed stage outputs: publish (move into objects, link into the run), load, verify.

Objects live in ``ORCHESTRA_HOME/objects/ab/abcdef…`` and are read-only. A run's stage directory
is a tree of hardlinks to objects, built in a temporary directory and renamed into place, so
it either does not exist or is complete. Loading an earlier stage's outputs is linking, never
copying (a copy happens only across filesystems).
"""

from __future__ import annotations

import errno
import itertools
import json
import os
import shutil
import sqlite3
import stat as statmod
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from orchestra.core import settings
from orchestra.core.digest import sha256, sha256_file, stat_token
from orchestra.core.errors import OrchestraError
from orchestra.core.layout import home_path
from orchestra.store import runs as runstore
from orchestra.store.objects_lock import exclusive_lock, shared_lock


class OutputError(OrchestraError):
    """A stage's outputs cannot be published (escaping symlink, missing declared output)."""


@dataclass(frozen=True, slots=True)
class Verification:
    """Result of checking published outputs against their manifest."""

    ok: bool
    problem: str | None = None


_objects: tuple[Path, Path, str] | None = None  # (configured home, its objects directory, as text)


def _objects_entry() -> tuple[Path, Path, str]:
    global _objects
    configured = settings.home()  # the same object while the variable is unchanged
    if _objects is None or _objects[0] is not configured:
        path = home_path("objects")
        _objects = (configured, path, str(path))
    return _objects


def objects_dir() -> Path:
    """``ORCHESTRA_HOME/objects`` (made on first use; hot: one environment lookup when warm)."""
    return _objects_entry()[1]


def object_file(sha: str, executable: bool = False) -> str:
    """Where an object is, as text (the loops over a manifest's files build no Path objects)."""
    return f"{_objects_entry()[2]}/{sha[:2]}/{sha[2:]}{'.x' if executable else ''}"


def object_path(sha: str, executable: bool = False) -> Path:
    return Path(object_file(sha, executable))


def manifest_digest(manifest: Mapping[str, Mapping[str, object]]) -> str:
    """Digest of (path, sha256, size, mode) of every file: what downstream cache keys see."""
    canonical = json.dumps({k: [v["sha256"], v["size"], v["mode"]] for k, v in sorted(manifest.items())},
                           separators=(",", ":"))
    return "sha256:" + sha256(canonical.encode()).hexdigest()


def publish(staging: Path, dest: Path, declared: tuple[str, ...] = ()) -> dict[str, dict[str, object]]:
    """Move the files of ``staging`` into the object store and link them at ``dest``.

    Returns the manifest: relative path → {sha256, size, mode}.

    Raises:
        OutputError: a declared output is missing, or a symlink points outside ``staging``.
    """
    if not declared and not any(os.scandir(staging)):
        try:  # nothing to hash, move or link: the empty staging directory becomes the outputs
            os.rename(staging, dest)
        except OSError:
            dest.mkdir(parents=True, exist_ok=True)
        return {}
    for name in declared:
        if not (staging / name).exists():
            raise OutputError(f"declared output '{name}' was not written", hint=f"write it under $ORCHESTRA_OUTPUT_DIR/{name}")
    manifest: dict[str, dict[str, object]] = {}
    stats = {path: path.lstat() for path in _walk(staging)}  # one lstat per path, used by every check
    if any(statmod.S_ISLNK(st.st_mode) for st in stats.values()):  # links resolve to real paths: so does staging
        staging = staging.resolve()
        stats = {path: path.lstat() for path in _walk(staging)}
    links = [path for path, st in stats.items() if statmod.S_ISLNK(st.st_mode)]
    _refuse_special(staging, stats)
    for link in links:  # refuse escapes before anything moves
        if not link.resolve().is_relative_to(staging):
            rel = link.relative_to(staging).as_posix()
            raise OutputError(f"output '{rel}' is a symlink to {os.readlink(link)}, outside the output directory",
                              hint="write the file itself, not a link to it")
    placed: list[Path] = []
    try:
        with shared_lock():
            _publish_files(staging, dest, stats, links, manifest, placed)
    except (OSError, sqlite3.OperationalError) as exc:
        if not _disk_full(exc):
            raise
        for obj in placed:  # referenced by nothing yet: give the space back now
            obj.unlink(missing_ok=True)
        raise OutputError(f"no space left on the filesystem of {home_path()} while publishing outputs ({exc})",
                          hint="free space there (orchestra gc removes unreferenced objects), then resume") from None
    return manifest


def _disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    return "database or disk is full" in str(exc)


def _publish_files(staging: Path, dest: Path, stats: Mapping[Path, os.stat_result], links: list[Path],
                   manifest: dict[str, dict[str, object]], placed: list[Path]) -> None:
    # Regular files first (moved into the store), then links inside the directory, which
    # are published as copies of their targets' entries (a link is never stored as a link).
    for path, st in stats.items():
        if statmod.S_ISLNK(st.st_mode):
            continue
        entry, obj = _store(path, move=True, st=st)
        manifest[path.relative_to(staging).as_posix()] = entry
        if obj is not None:
            placed.append(obj)
    for link in links:
        target = link.resolve()
        rel_target = target.relative_to(staging).as_posix()
        if rel_target in manifest:
            manifest[link.relative_to(staging).as_posix()] = dict(manifest[rel_target])
        elif statmod.S_ISREG(target.stat().st_mode):
            entry, obj = _store(target, move=False)
            manifest[link.relative_to(staging).as_posix()] = entry
            if obj is not None:
                placed.append(obj)
        # a link to a directory: its files are published under their real paths
    # Every file moved out and nothing else left: the staging directory itself becomes the
    # tree of links (no second directory to make, none to remove).
    empty = not links and not any(os.scandir(staging))
    link_tree(manifest, dest, into=staging if empty else None)  # records every object's token, the new ones included


def _refuse_special(staging: Path, stats: Mapping[Path, os.stat_result]) -> None:
    """Publishing opens regular files only: a FIFO would block the read forever, a device or a
    socket has no content to store."""
    for path, st in stats.items():
        if statmod.S_ISLNK(st.st_mode) and path.exists():
            st = path.stat()
        if statmod.S_ISREG(st.st_mode) or statmod.S_ISDIR(st.st_mode) or statmod.S_ISLNK(st.st_mode):
            continue
        kind = ("a FIFO" if statmod.S_ISFIFO(st.st_mode) else "a socket" if statmod.S_ISSOCK(st.st_mode)
                else "a device file")
        raise OutputError(f"output '{path.relative_to(staging).as_posix()}' is {kind}, not a regular file",
                          hint="write regular files (and directories) only under the output directory")


def _store(source: Path, *, move: bool, st: os.stat_result | None = None) -> tuple[dict[str, object], Path | None]:
    """Put one file into the object store; return its manifest entry and the object if placed now.

    A file with other hardlinks, or owned by another user, is copied, never moved: its inode
    belongs to someone else too, and the store would chmod and then share it."""
    st = st or source.lstat()
    if not statmod.S_ISREG(st.st_mode):
        raise OutputError(f"output '{source.name}' is not a regular file")
    if move and (st.st_nlink > 1 or st.st_uid != os.geteuid()):
        move = False
    executable = bool(st.st_mode & statmod.S_IXUSR)
    sha = sha256_file(source)
    obj = object_path(sha, executable)
    placed = None
    if not obj.exists():
        _place_object(source, obj, move=move, executable=executable)
        placed = obj
    elif move:
        source.unlink()  # a duplicate of a stored object: free the space now
    return {"sha256": sha, "size": st.st_size, "mode": 0o755 if executable else 0o644}, placed


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        for name in sorted(dirnames):
            if (base / name).is_symlink():
                yield base / name
        dirnames[:] = sorted(d for d in dirnames if not (base / d).is_symlink())
        for name in sorted(filenames):
            yield base / name


def _place_object(source: Path, obj: Path, *, move: bool, executable: bool) -> None:
    # An object is complete or absent, whatever happens to this process: a file moved in (its
    # stage has ended) is renamed into place; a copy is written under a temporary name first.
    mode = 0o555 if executable else 0o444
    if move:
        os.chmod(source, mode)
        try:
            if not obj.parent.is_dir():  # a new fan-out directory
                obj.parent.mkdir(parents=True, exist_ok=True)
            return os.rename(source, obj)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
    obj.parent.mkdir(parents=True, exist_ok=True)
    tmp = obj.with_name(f".tmp-{os.getpid()}-{obj.name}")
    try:
        shutil.copyfile(source, tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, obj)
    finally:
        if tmp.exists():
            tmp.unlink()


def link_tree(manifest: Mapping[str, Mapping[str, object]], dest: Path, *, into: Path | None = None,
              record: bool = True, replace: bool = True) -> bool:
    """Create ``dest`` as hardlinks to the manifest's (just verified or placed) objects,
    atomically (tmp dir + rename), and record the objects' stat tokens after linking (a new link
    changes an inode's ctime, which the token holds).

    Args:
        into: an empty directory on ``dest``'s filesystem to build the tree in (a stage's emptied
            staging directory, which the reaper sweeps like a tmp dir); default: a new tmp dir.
        record: False when the caller records the tokens (one transaction for many trees).
        replace: False: an existing ``dest`` (linked first by another process) is kept.
    Returns whether this call's tree is now at ``dest``.
    """
    if into is None or into.parent != dest.parent:  # (a stage's staging directory is beside its outputs)
        dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = into if into is not None else _fresh_dir(dest.parent, f".{dest.name}.tmp-{os.getpid()}-")
    base = str(tmp)
    made = {base}
    try:
        for rel, entry in manifest.items():
            target = f"{base}/{rel}"
            if "/" in rel:  # (a top-level file's directory is tmp itself)
                parent = target.rsplit("/", 1)[0]
                if parent not in made:
                    os.makedirs(parent, exist_ok=True)
                    made.add(parent)
            obj = object_file(str(entry["sha256"]), bool(int(entry["mode"]) & 0o100))
            try:
                os.link(obj, target)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EMLINK, errno.EPERM):
                    raise
                shutil.copy2(obj, target)
        if record:
            runstore.record_objects(tokens(manifest))  # before the rename: a failure leaves no dest
        if not replace:
            try:
                os.rename(tmp, dest)
                return True
            except OSError as exc:  # dest linked meanwhile (ENOTEMPTY): keep it
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
                shutil.rmtree(tmp, ignore_errors=True)
                return False
        if dest.exists():
            shutil.rmtree(dest)
        os.rename(tmp, dest)
        return True
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


_made = itertools.count()


def _fresh_dir(parent: Path, prefix: str) -> Path:
    """A new empty directory (``tempfile.mkdtemp`` without its random names: pid + a counter)."""
    while True:
        path = parent / f"{prefix}{next(_made)}"
        try:
            path.mkdir(mode=0o700)
            return path
        except FileExistsError:  # left by a dead process with this pid: the reaper sweeps it
            continue


def tokens(manifest: Mapping[str, Mapping[str, object]]) -> list[tuple[str, int, str]]:
    """(object key, size, stat token) of every object of ``manifest``, once each."""
    rows: dict[str, tuple[str, int, str]] = {}
    for entry in manifest.values():
        executable = bool(int(entry["mode"]) & 0o100)
        key = str(entry["sha256"]) + (".x" if executable else "")
        if key not in rows:
            st = os.stat(object_file(str(entry["sha256"]), executable))
            rows[key] = (key, st.st_size, stat_token(st))
    return list(rows.values())


def verify(manifest: Mapping[str, Mapping[str, object]], known: dict[str, str] | None = None) -> Verification:
    """Check every object of a manifest: exists, right size, and (if its stat changed) right hash.

    A corrupt object is removed from the store so nothing can link it again. ``known``: recorded
    stat tokens by object key, read once for many manifests (the missing ones are looked up, the
    ones recorded added).
    """
    checked: list[tuple[str, str, bool, str, os.stat_result]] = []
    for rel, entry in manifest.items():
        sha = str(entry["sha256"])
        executable = bool(int(entry["mode"]) & 0o100)
        obj = object_file(sha, executable)
        try:
            st = os.stat(obj)
        except FileNotFoundError:
            return Verification(False, f"{rel}: object missing")
        wanted = 0o555 if executable else 0o444
        if statmod.S_IMODE(st.st_mode) != wanted:  # chmodded behind the store's back: repair, re-check
            try:
                os.chmod(obj, wanted)
                st = os.stat(obj)
            except OSError:
                return Verification(False, f"{rel}: object not readable and its mode cannot be repaired")
        if st.st_size != entry["size"]:
            quarantine(sha, executable)
            return Verification(False, f"{rel}: size {st.st_size} != {entry['size']} (corrupt object removed)")
        checked.append((rel, sha, executable, obj, st))
    keys = [sha + (".x" if executable else "") for _, sha, executable, _, _ in checked]
    known = {} if known is None else known
    missing = [key for key in keys if key not in known]
    if missing:
        known.update(runstore.object_stats(missing))
    updates: list[tuple[str, int, str]] = []
    for rel, sha, executable, obj, st in checked:
        key = sha + (".x" if executable else "")
        token = stat_token(st)
        if known.get(key) != token:  # unknown, or its stat changed since it was hashed: hash it
            if sha256_file(obj) != sha:
                quarantine(sha, executable)
                return Verification(False, f"{rel}: content does not match sha256 (corrupt object removed)")
            updates.append((key, st.st_size, token))
    runstore.record_objects(updates)
    known.update((key, token) for key, _size, token in updates)
    return Verification(True)


def quarantine(sha: str, executable: bool) -> None:
    """Move a damaged object aside (``ORCHESTRA_HOME/quarantine``) so nothing links it again."""
    obj = object_path(sha, executable)
    try:
        os.replace(obj, home_path("quarantine") / f"{sha}{'.x' if executable else ''}-{time.time_ns()}")
    except FileNotFoundError:
        pass
    except OSError:
        obj.unlink(missing_ok=True)
    runstore.forget_objects([sha + (".x" if executable else "")])


def load(manifest: Mapping[str, Mapping[str, object]], dest: Path) -> Verification:
    """Verify, then link an earlier stage's outputs at ``dest``. Nothing is linked on failure."""
    with shared_lock():
        result = verify(manifest)
        if result.ok:
            link_tree(manifest, dest)
        return result


def collect_garbage(dry_run: bool = False) -> tuple[int, int]:
    """Delete objects no stage references. Returns (objects removed, bytes freed)."""
    removed = freed = 0
    with exclusive_lock():
        referenced = {sha for sha in runstore.referenced_objects()}
        forgotten = []
        for shard in objects_dir().iterdir():
            if not shard.is_dir():
                continue
            for obj in shard.iterdir():
                name = obj.name
                if name.startswith(".tmp-"):
                    if not dry_run:
                        obj.unlink(missing_ok=True)
                    continue
                sha = shard.name + name.removesuffix(".x")
                if sha in referenced:
                    continue
                removed += 1
                freed += obj.stat().st_size
                if not dry_run:
                    obj.unlink()
                    forgotten.append(shard.name + name)
        if not dry_run:
            runstore.forget_objects(forgotten)
        for damaged in home_path("quarantine").iterdir():  # kept for inspection until now
            removed += 1
            freed += damaged.lstat().st_size
            if not dry_run:
                damaged.unlink()
    return removed, freed
