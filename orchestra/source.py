"""Project URIs → a local project directory with provenance.

``fetch(uri, version)`` returns a :class:`ProjectDir`. A local directory runs in place; git
URIs (issue 5) are cloned into a cache under ``ORCHESTRA_HOME/repos`` and checked out per run.
The code digest used by cache keys is computed here because only this module knows whether
the project is a git work tree.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from orchestra.errors import SourceError

# Directories that never belong to a project's code digest.
_IGNORED_DIRS = frozenset({".git", "__pycache__", ".orchestra", "mlruns", ".ipynb_checkpoints"})


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
    """

    path: Path
    uri: str
    commit: str | None = None
    branch: str | None = None
    repo_url: str | None = None
    dirty: bool | None = None
    is_remote: bool = False
    code_digest: str = ""
    cleanup_paths: tuple[Path, ...] = field(default=(), compare=False, repr=False)

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


def fetch(uri: str, version: str | None = None) -> ProjectDir:
    """Resolve a project URI to a local directory.

    Args:
        uri: local directory, ``file://`` path, or git URI, optionally with ``#subdir``.
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
    local = _local_path(base)
    if local is not None and (version is None or not (local / ".git").exists()):
        if version is not None:
            raise SourceError(
                f"--version {version!r} needs a git project", where=str(local),
                hint="drop --version or point at a git repository",
            )
        # Local projects are named by absolute path (as MLflow's mlflow.source.name), so runs
        # from different working directories share history and cache explanations.
        return _local_project(local, subdir, display_uri=str(local) + (f"#{subdir}" if subdir else ""))
    from orchestra import gitsource

    if local is None and _local_bare(base):
        base = _local_bare(base)  # type: ignore[assignment]
    return gitsource.fetch_git(base, subdir, version, local=local)


def _local_bare(base: str) -> str | None:
    """A local path to a bare repository, as a file:// URL git can clone."""
    if "://" in base or _looks_like_scp(base):
        return None
    path = Path(base).expanduser()
    return path.resolve().as_uri() if path.is_dir() and _is_bare_repository(path) else None


def _local_path(base: str) -> Path | None:
    if base.startswith("file://"):
        from urllib.parse import unquote, urlsplit

        parts = urlsplit(base)
        candidate = Path(unquote(parts.netloc + parts.path))
    elif "://" in base or _looks_like_scp(base):
        return None
    else:
        candidate = Path(base).expanduser()
    if candidate.is_dir():
        if _is_bare_repository(candidate):
            return None  # a bare repository has no work tree to run in: clone it (gitsource)
        return candidate.resolve()
    if "://" in base:
        return None  # file:// URL of something else (e.g. a bare repo) goes to git
    raise SourceError(f"no such project directory: {base}", hint="a local directory or a git URL")


def _is_bare_repository(path: Path) -> bool:
    return (path / "HEAD").is_file() and (path / "objects").is_dir() and (path / "refs").is_dir()


def _looks_like_scp(base: str) -> bool:
    # git@host:path — a colon before any slash, and not a Windows drive letter.
    head = base.split("/", 1)[0]
    return ":" in head and len(head.split(":", 1)[0]) > 1


def _local_project(root: Path, subdir: str, display_uri: str) -> ProjectDir:
    path = (root / subdir).resolve() if subdir else root
    if not path.is_dir():
        raise SourceError(f"subdirectory '{subdir}' not found", where=str(root))
    git = git_state(path)
    if git is None:
        return ProjectDir(path=path, uri=strip_credentials(display_uri), code_digest=content_digest(path))
    commit, branch, repo_url, dirty, digest = git
    return ProjectDir(
        path=path, uri=strip_credentials(display_uri), commit=commit, branch=branch,
        repo_url=repo_url, dirty=dirty, code_digest=digest,
    )


def _git(path: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0"}
    return subprocess.run(["git", *args], cwd=path, capture_output=True, env=env, check=False)


def git_state(path: Path) -> tuple[str, str | None, str | None, bool, str] | None:
    """(commit, branch, repo_url, dirty, code_digest) for a directory inside a git work tree.

    The digest covers the tree of ``path`` at HEAD (not the whole commit, so commits that do not
    touch the project leave it unchanged) plus the content of uncommitted and untracked files.
    Returns None outside git, or in a repository with no commit yet.
    """
    top = _git(path, "rev-parse", "--show-toplevel", "--show-prefix")
    if top.returncode != 0:
        return None
    lines = top.stdout.decode().splitlines()
    prefix = lines[1] if len(lines) > 1 else ""
    head = _git(path, "rev-parse", "HEAD", f"HEAD:{prefix}")
    if head.returncode != 0:
        return None
    commit, tree = head.stdout.decode().split()[:2]
    branch_out = _git(path, "symbolic-ref", "--short", "-q", "HEAD")
    branch = branch_out.stdout.decode().strip() or None
    remote = _git(path, "config", "--get", "remote.origin.url")
    repo_url = strip_credentials(remote.stdout.decode().strip()) or None
    status = _git(path, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--", ".")
    entries = [e for e in status.stdout.decode(errors="surrogateescape").split("\0") if e]
    digest = hashlib.sha256(f"git-tree:{tree}\n".encode())
    changed: list[str] = []
    skip_next = False
    for entry in entries:
        if skip_next:  # rename source path in -z format
            skip_next = False
            continue
        code, name = entry[:2], entry[3:]
        if code[0] in "RC":
            skip_next = True
        changed.append(name)
    root = Path(lines[0])
    for name in sorted(set(changed)):
        file = root / name
        digest.update(name.encode(errors="surrogateescape") + b"\0")
        if file.is_file():
            digest.update(file_digest(file).encode())
        else:
            digest.update(b"<deleted>")
    return commit, branch, repo_url, bool(changed), "sha256:" + digest.hexdigest()


def content_digest(path: Path) -> str:
    """Digest of every file under ``path`` (relative names and contents), ignoring VCS/caches."""
    digest = hashlib.sha256(b"content-v1\n")
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if d not in _IGNORED_DIRS)
        for name in sorted(files):
            if name.endswith(".pyc"):
                continue
            file = Path(root) / name
            rel = file.relative_to(path).as_posix()
            digest.update(rel.encode(errors="surrogateescape") + b"\0")
            digest.update(file_digest(file).encode() if file.is_file() else b"<special>")
    return "sha256:" + digest.hexdigest()


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes, hex (large unchanged files come from the stat-keyed cache)."""
    from orchestra.hashcache import file_sha256

    return file_sha256(path)
