"""Unpacking a ``.zip`` project safely.

Every member is checked before anything is written: no absolute name, no ``..``, no drive
letter, no link of any kind (a zip link could point anywhere), no encrypted member, at most
:data:`MAX_MEMBERS` members, a total unpacked size within ``ORCHESTRA_MAX_UNZIP_BYTES`` and no
member that inflates more than :data:`MAX_RATIO` times (a zip bomb). Then files are written with
``O_EXCL | O_NOFOLLOW`` into a fresh directory, counting the bytes actually inflated, so a
lying header cannot write more than it declared.
"""

from __future__ import annotations

import os
import re
import stat
import zipfile
from pathlib import Path, PurePosixPath

from orchestra.core import settings
from orchestra.core.errors import SourceError

MAX_MEMBERS = 100_000
MAX_RATIO = 250  # uncompressed / compressed, for members over RATIO_FLOOR bytes
RATIO_FLOOR = 16 << 20
_DRIVE = re.compile(r"^[A-Za-z]:")
_CHUNK = 1 << 20


def unpack(zip_path: Path, dest: Path, *, shown: str) -> None:
    """Unpack ``zip_path`` into the new directory ``dest`` (which must not exist).

    Raises:
        SourceError: not a zip file, an unsafe or encrypted member, or over a size cap.
    """
    limit = settings.current().max_unzip_bytes
    try:
        with zipfile.ZipFile(zip_path) as archive:
            members = archive.infolist()
            _check(members, shown, limit)
            dest.mkdir(parents=False)
            written = 0
            for info in members:
                written += _extract(archive, info, dest, shown, limit - written)
    except zipfile.BadZipFile as exc:
        raise SourceError(f"{shown} is not a valid zip file ({exc})", hint="point at a .zip archive of the project") from None
    except (zipfile.LargeZipFile, NotImplementedError, RuntimeError) as exc:
        raise SourceError(f"cannot unpack {shown}: {exc}", hint="a plain (unencrypted, deflate or stored) zip") from None


def _check(members: list[zipfile.ZipInfo], shown: str, limit: int) -> None:
    if len(members) > MAX_MEMBERS:
        raise SourceError(f"{shown} has {len(members)} members, more than {MAX_MEMBERS}", hint="a smaller archive")
    total = 0
    for info in members:
        name = info.filename
        parts = re.split(r"[/\\]", name)
        if (not name or name.startswith(("/", "\\")) or _DRIVE.match(name) or ".." in parts or "\0" in name):
            raise SourceError(f"unsafe member {name!r} in {shown}: it would be written outside the project",
                              hint="archive the project with relative paths only")
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise SourceError(f"unsafe member {name!r} in {shown}: symbolic links are not unpacked",
                              hint="archive the files the link points to instead")
        if info.flag_bits & 0x1:
            raise SourceError(f"encrypted member {name!r} in {shown}", hint="an unencrypted zip")
        total += info.file_size
        if total > limit:
            raise SourceError(f"{shown} unpacks to more than {limit} bytes",
                              hint="raise ORCHESTRA_MAX_UNZIP_BYTES if it is expected")
        if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise SourceError(f"member {name!r} of {shown} inflates {info.file_size // max(info.compress_size, 1)}"
                              f" times (a zip bomb?)", hint=f"at most {MAX_RATIO}x for members over {RATIO_FLOOR} bytes")


def _extract(archive: zipfile.ZipFile, info: zipfile.ZipInfo, dest: Path, shown: str, budget: int) -> int:
    relative = PurePosixPath(*[p for p in re.split(r"[/\\]", info.filename) if p not in ("", ".")])
    if not relative.parts:
        return 0
    target = dest.joinpath(*relative.parts)
    if info.is_dir():
        target.mkdir(parents=True, exist_ok=True)
        return 0
    target.parent.mkdir(parents=True, exist_ok=True)
    executable = (info.external_attr >> 16) & 0o111
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(target, flags, 0o755 if executable else 0o644)
    except FileExistsError:
        raise SourceError(f"duplicate member {info.filename!r} in {shown}", hint="an archive with unique names") from None
    written = 0
    with os.fdopen(fd, "wb") as handle, archive.open(info) as member:
        while chunk := member.read(_CHUNK):
            written += len(chunk)
            if written > info.file_size or written > budget:
                raise SourceError(f"member {info.filename!r} of {shown} inflates beyond its declared size",
                                  hint="the archive is damaged or hostile")
            handle.write(chunk)
    return written
