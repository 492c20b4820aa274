"""``.zip`` project URIs: a local path, ``file://`` or ``http(s)://``, optionally ``#subdir``.

The archive is read (or downloaded, bounded by :mod:`orchestra.source.download`), its sha256
names a cache entry ``ORCHESTRA_HOME/zips/<sha256>/`` that is unpacked once (into a temporary
directory, then renamed: a concurrent run of the same archive either wins the rename or uses the
winner's), and each run gets its own copy of the unpacked tree, as a git project gets its own
checkout, so a stage writing into its project directory never changes the cache. The code
digest is the content digest of the unpacked tree: identical bytes downloaded again load.

As in MLflow, the root of the archive is the project root. A GitHub-style archive that holds
one top-level directory and nothing else is also accepted when its root has no MLproject (MLflow
would find no project there).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

from orchestra.core.digest import sha256_file
from orchestra.core.errors import SourceError
from orchestra.core.layout import home_path
from orchestra.source import archive, download
from orchestra.source.digest import content_digest
from orchestra.source.project import ProjectDir, strip_credentials

_COMPLETE = "complete"
_STALE_S = 24 * 3600


def fetch_zip(base: str, subdir: str) -> ProjectDir:
    """Unpack (or reuse) the archive at ``base`` and give this run its own copy.

    Raises:
        SourceError: missing file, download failure, not a zip, unsafe member, over a cap,
            or a ``#subdir`` that is not in the archive.
    """
    shown = strip_credentials(base)
    zips = home_path("zips")
    scheme = base.split("://", 1)[0].lower() if "://" in base else ""
    fetched: Path | None = None
    if scheme in ("http", "https"):
        fetched = zips / f".download-{os.getpid()}-{os.urandom(4).hex()}.zip"
        sha = download.http_get(base, fetched, what="download project").sha256
        zip_path = fetched
    elif scheme in ("", "file"):
        zip_path = _local(base, shown)
        sha = sha256_file(zip_path)
        if not scheme:  # named by absolute path, as local directories are
            shown = str(zip_path)
    else:
        raise SourceError(f"unsupported scheme '{scheme}://' for a zip project: {shown}",
                          hint="a local .zip, file:// or http(s):// URL")
    try:
        entry = _unpacked(zip_path, zips / sha, shown)
    finally:
        if fetched is not None:
            fetched.unlink(missing_ok=True)
    root = _project_root(entry / "tree", subdir)
    if not root.is_dir():
        raise SourceError(f"subdirectory '{subdir}' not found in {shown}", hint="the path after '#' must exist in the archive")
    top = entry / "tree"
    checkout = Path(tempfile.mkdtemp(prefix="zip-", dir=home_path("checkouts")))
    try:
        shutil.copytree(top, checkout / "src", symlinks=True)
        return ProjectDir(
            path=checkout / "src" / root.relative_to(top), uri=shown + (f"#{subdir}" if subdir else ""),
            is_remote=bool(scheme.startswith("http")), code_digest=content_digest(root),
            archive_sha256=sha, cleanup_paths=(checkout,),
        )
    except BaseException:
        shutil.rmtree(checkout, ignore_errors=True)
        raise


def _local(base: str, shown: str) -> Path:
    if base.lower().startswith("file://"):
        parts = urlsplit(base)
        path = Path(unquote(parts.netloc + parts.path))
    else:
        path = Path(base).expanduser()
    if not path.is_file():
        raise SourceError(f"no such zip file: {shown}", hint="a local .zip, file:// or http(s):// URL")
    return path.resolve()


def _sweep(zips: Path) -> None:
    """Remove what killed processes left behind (downloads and unpacks older than a day)."""
    stale = time.time() - _STALE_S
    for leftover in zips.glob(".*-*"):
        with contextlib.suppress(OSError):
            if leftover.lstat().st_mtime < stale:
                shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()


def _unpacked(zip_path: Path, entry: Path, shown: str) -> Path:
    """The cache entry of this archive, unpacked once; concurrent unpackers race on a rename."""
    if (entry / _COMPLETE).exists():
        return entry
    _sweep(entry.parent)
    staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=entry.parent))
    try:
        archive.unpack(zip_path, staging / "tree", shown=shown)
        (staging / _COMPLETE).write_text("")
        try:
            os.rename(staging, entry)
        except OSError:
            if not (entry / _COMPLETE).exists():  # not a concurrent run's finished entry either
                raise SourceError(f"cannot cache the unpacked {shown} at {entry}",
                                  hint="check that ORCHESTRA_HOME is writable") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return entry


def _project_root(tree: Path, subdir: str) -> Path:
    if subdir and (tree / subdir).is_dir():
        return tree / subdir
    entries = [p for p in tree.iterdir() if p.name != "__MACOSX"]
    single = entries[0] if len(entries) == 1 and entries[0].is_dir() else None
    if single is not None and not (tree / "MLproject").exists():
        return single / subdir if subdir else single
    return tree / subdir if subdir else tree
