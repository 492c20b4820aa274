"""Bounded downloads: one HTTP(S) GET into a file, with timeouts, a size cap and its sha256.

Every download orchestra makes for a project or a ``path`` parameter goes through
:func:`http_get` (or :func:`copy_limited` for a stream from elsewhere): the connection and each
read time out, the body may not exceed ``ORCHESTRA_MAX_DOWNLOAD_BYTES``, the file is written
under a temporary name and renamed when complete, and errors are one line that never shows
credentials. requests is imported only when something is downloaded.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from orchestra.core import settings
from orchestra.core.errors import SourceError
from orchestra.source.project import strip_credentials

# (connect, read) seconds: a server that accepts and then stalls fails within a minute.
TIMEOUTS = (10.0, 60.0)
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class Downloaded:
    """A file now on disk: where, its sha256 (hex) and size in bytes."""

    path: Path
    sha256: str
    size: int


def max_bytes() -> int:
    return settings.current().max_download_bytes


def too_big(shown: str, limit: int) -> SourceError:
    return SourceError(f"download of {shown} is larger than {limit} bytes",
                       hint="raise ORCHESTRA_MAX_DOWNLOAD_BYTES if it is expected")


def copy_limited(source: IO[bytes], dest: Path, *, shown: str, limit: int | None = None) -> Downloaded:
    """Stream ``source`` into ``dest`` (via a temporary sibling), refusing more than ``limit`` bytes."""
    limit = max_bytes() if limit is None else limit
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(f".{dest.name}.part-{os.getpid()}")
    digest = hashlib.sha256()
    size = 0
    try:
        with open(partial, "wb") as handle:
            while chunk := source.read(_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise too_big(shown, limit)
                digest.update(chunk)
                handle.write(chunk)
        os.replace(partial, dest)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return Downloaded(dest, digest.hexdigest(), size)


def http_get(url: str, dest: Path, *, what: str = "download", headers: dict[str, str] | None = None) -> Downloaded:
    """GET ``url`` into ``dest``.

    Raises:
        SourceError: unreachable host, timeout, an HTTP error status, or a body over the size cap.
    """
    import requests  # only when something is downloaded

    shown = strip_credentials(url)
    limit = max_bytes()
    try:
        response = requests.get(url, stream=True, timeout=TIMEOUTS, headers=headers or {},
                                allow_redirects=True)
    except requests.RequestException as exc:
        raise SourceError(f"cannot {what} {shown}: {_reason(exc)}",
                          hint="check the URL and that the server is reachable") from None
    with response:
        if response.status_code >= 400:
            raise SourceError(f"cannot {what} {shown}: HTTP {response.status_code} {response.reason or ''}".rstrip(),
                              hint="check the URL" if response.status_code == 404 else "check the URL and its access")
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            raise too_big(shown, limit)
        response.raw.decode_content = True
        try:
            return copy_limited(response.raw, dest, shown=shown, limit=limit)
        except SourceError:
            raise
        except Exception as exc:  # urllib3's read errors are not requests' nor all OSErrors
            detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            raise SourceError(f"cannot {what} {shown}: interrupted ({detail})",
                              hint="try again; check the server and the free disk space") from None


def _reason(exc: Exception) -> str:
    import requests

    if isinstance(exc, requests.Timeout):
        return "timed out"
    if isinstance(exc, requests.ConnectionError):
        return "connection failed"
    return type(exc).__name__
