"""File digests, written once: the streamed sha256 of a file and the stat token that says when a
remembered digest must be computed again."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path



def sha256_file(path: str | os.PathLike[str] | Path) -> str:
    """sha256 hex of a file's bytes, streamed (outputs can be gigabytes)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def stat_token(st: os.stat_result) -> str:
    """What must stay equal for a remembered digest of this file to still hold.

    Any write changes mtime and ctime; mtime can be set back (``touch -d``), ctime cannot, so a
    same-size edit with its mtime restored still changes the token. Making a hardlink changes
    ctime too: whoever links an object records its new token (``store.artifacts.link_tree``).
    """
    return f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"
