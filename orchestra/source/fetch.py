"""Project URIs → a local project directory with provenance.

``fetch(uri, version)`` returns a :class:`ProjectDir`. A local directory runs in place; git
URIs are cloned into a cache under ``ORCHESTRA_HOME/repos`` and checked out per run.
"""

from __future__ import annotations

from pathlib import Path

from orchestra.core.errors import SourceError
from orchestra.source.local import local_bare, local_path, local_project
from orchestra.source.project import ProjectDir, is_zip_uri, split_subdirectory, strip_credentials


def fetch(uri: str, version: str | None = None) -> ProjectDir:
    """Resolve a project URI to a local directory.

    Args:
        uri: local directory, ``file://`` path, ``.zip`` archive (local, file:// or http(s)://),
            or git URI, optionally with ``#subdir``.
        version: git branch, tag or commit (git projects only).

    Raises:
        SourceError: the URI cannot be resolved.
    """
    uri = uri.strip().strip("'\"")
    if not uri:
        raise SourceError("empty project URI", hint="a directory or a git URL")
    if uri.startswith("-"):
        raise SourceError(f"refusing project URI {strip_credentials(uri)!r}: it could be read as an option",
                          hint="for a directory named like that, write ./" + uri)
    base, subdir = split_subdirectory(uri)
    if is_zip_uri(base) and not _is_dir(base):
        if version is not None:
            raise SourceError(f"--version {version!r} needs a git project", where=strip_credentials(base),
                              hint="drop --version for a .zip project")
        from orchestra.source.zipped import fetch_zip  # the archive subsystem stays off a plain run's path

        return fetch_zip(base, subdir)
    local = local_path(base)
    try:
        (str(local) if local is not None else uri).encode("utf-8")
    except UnicodeEncodeError:
        shown = str(local or uri).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        raise SourceError(f"the project path '{shown}' is not valid UTF-8",
                          hint="rename the directory (orchestra stores and shows paths as UTF-8)") from None
    if local is not None and (version is None or not (local / ".git").exists()):
        if version is not None:
            raise SourceError(
                f"--version {version!r} needs a git project", where=str(local),
                hint="drop --version or point at a git repository",
            )
        # Local projects are named by absolute path (as MLflow's mlflow.source.name), so runs
        # from different working directories share history and cache explanations.
        return local_project(local, subdir, display_uri=str(local) + (f"#{subdir}" if subdir else ""))
    if local is None and local_bare(base):
        base = local_bare(base)  # type: ignore[assignment]
    from orchestra.source import git as gitsource  # (a local directory never needs git)

    return gitsource.fetch_git(base, subdir, version, local=local)


def _is_dir(base: str) -> bool:
    """A local directory that happens to end in ``.zip`` is still a directory."""
    return "://" not in base and Path(base).expanduser().is_dir()
