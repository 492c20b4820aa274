"""File digests, written once: the streamed sha256 of a file and the stat token that says when a
remembered digest must be computed again."""

from __future__ import annotations

import os
from pathlib import Path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

try:  # CPython's own sha256: no OpenSSL start-up for the few short texts a run hashes (~3 ms)
    from _sha256 import sha256 as _short
except ImportError:  # (CPython 3.12+ calls it _sha2; elsewhere, hashlib's)
    try:
        from _sha2 import sha256 as _short  # type: ignore[no-redef]
    except ImportError:
        from hashlib import sha256 as _short  # type: ignore[no-redef]

_WHOLE = 1 << 20  # files up to this size are read at once and hashed without OpenSSL


def sha256(data: bytes = b"") -> Any:
    """A sha256 of short data (keys, names, digests of digests): ``hashlib.sha256``'s value."""
    return _short(data)



def sha256_file(path: str | os.PathLike[str] | Path) -> str:
    """sha256 hex of a file's bytes, streamed (outputs can be gigabytes).

    A file under 1 MiB (most stage outputs) is read whole in one ``read`` of its size, through
    the descriptor: no buffered reader and no 1 MiB buffer to map and shrink for a few bytes."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        size = os.fstat(fd).st_size
        head = os.read(fd, size + 1 if size < _WHOLE else _WHOLE)
        if len(head) <= size < _WHOLE:  # the whole file, unless it grew meanwhile (read on below)
            rest = os.read(fd, _WHOLE)
            if not rest:
                return _short(head).hexdigest()
            head += rest
        import hashlib  # OpenSSL's sha256 is several times faster on large files

        digest = hashlib.sha256(head)
        while chunk := os.read(fd, _WHOLE):
            digest.update(chunk)
        return digest.hexdigest()
    finally:
        os.close(fd)


def stat_token(st: os.stat_result) -> str:
    """What must stay equal for a remembered digest of this file to still hold.

    Any write changes mtime and ctime; mtime can be set back (``touch -d``), ctime cannot, so a
    same-size edit with its mtime restored still changes the token. Making a hardlink changes
    ctime too: whoever links an object records its new token (``store.artifacts.link_tree``).
    """
    return f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"
