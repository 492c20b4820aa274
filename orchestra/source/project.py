"""A fetched project: where it is and where it came from, and the URI rules every source shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from orchestra.core.errors import SourceError


@dataclass(frozen=True, slots=True)
class ProjectDir:
    """A project ready to run: where it is and where it came from.

    Attributes:
        path: directory holding the MLproject (the subdirectory when ``#subdir`` was given).
        uri: the URI as given, with credentials stripped (safe for logs and tags).
        commit: git commit sha, when the project is in git.
        branch: branch or version asked for, when known.
        repo_url: git remote URL with credentials stripped, when the project is in git.
        dirty: the local work tree has uncommitted changes (None when not a work tree).
        is_remote: the project was fetched (hooks inside it are not trusted by default).
        code_digest: digest of the project's code (git tree + uncommitted changes, or content).
        archive_sha256: sha256 of the ``.zip`` the project was unpacked from, when it was one.
        confine_to: for a fetched project, the checkout its files and ``path`` defaults must
            stay inside (real paths, symlinks resolved).
    """

    path: Path
    uri: str
    commit: str | None = None
    branch: str | None = None
    repo_url: str | None = None
    dirty: bool | None = None
    is_remote: bool = False
    code_digest: str = ""
    archive_sha256: str | None = None
    cleanup_paths: tuple[Path, ...] = field(default=(), compare=False, repr=False)
    confine_to: Path | None = None

    def cleanup(self) -> None:
        """Remove per-run checkouts (no-op for local directories)."""
        import shutil

        for path in self.cleanup_paths:
            shutil.rmtree(path, ignore_errors=True)


def strip_credentials(url: str) -> str:
    """``https://user:token@host/x`` → ``https://host/x``; other strings unchanged."""
    from urllib.parse import urlsplit, urlunsplit

    if "://" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def is_zip_uri(base: str) -> bool:
    """MLflow's rule: a project URI whose path ends in ``.zip`` is an archive."""
    from urllib.parse import urlsplit

    path = urlsplit(base).path if "://" in base else base
    return path.lower().endswith(".zip") and len(path) > 4


def split_subdirectory(uri: str) -> tuple[str, str]:
    """Split ``uri#sub/dir`` into (uri, "sub/dir"); refuse ``..`` and absolute fragments."""
    if "#" not in uri:
        return uri, ""
    base, subdir = uri.split("#", 1)
    subdir = subdir.strip("/")
    parts = Path(subdir).parts
    if subdir.startswith("/") or ".." in parts or "." in parts:
        raise SourceError(
            f"invalid subdirectory '#{subdir}'",
            where=strip_credentials(base),
            hint="a relative path inside the repository, without '.' or '..'",
        )
    return base, subdir
