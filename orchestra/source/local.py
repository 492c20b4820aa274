"""Local project directories: a plain directory or a git work tree, run in place."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from orchestra.core.errors import SourceError
from orchestra.core.records import GitState
from orchestra.source.digest import content_digest, git_tree_digest, uncommitted_code
from orchestra.source.project import ProjectDir, strip_credentials


def local_bare(base: str) -> str | None:
    """A local path to a bare repository, as a file:// URL git can clone."""
    if "://" in base or _looks_like_scp(base):
        return None
    path = Path(base).expanduser()
    return path.resolve().as_uri() if path.is_dir() and _is_bare_repository(path) else None


def local_path(base: str) -> Path | None:
    if base.startswith("file://"):
        from urllib.parse import unquote, urlsplit

        parts = urlsplit(base)
        candidate = Path(unquote(parts.netloc + parts.path))
    elif "://" in base or _looks_like_scp(base):
        return None
    else:
        candidate = Path(base).expanduser()
    if candidate.is_file() and candidate.name.lower() == "mlproject":
        candidate = candidate.parent  # the project's MLproject file names its directory
    if candidate.is_dir():
        if _is_bare_repository(candidate):
            return None  # a bare repository has no work tree to run in: clone it (source/git.py)
        return candidate.resolve()
    if "://" in base:
        return None  # file:// URL of something else (e.g. a bare repo) goes to git
    raise SourceError(f"no such project directory: {base}", hint="a project directory, its MLproject file, a .zip or a git URL")


def _is_bare_repository(path: Path) -> bool:
    return (path / "HEAD").is_file() and (path / "objects").is_dir() and (path / "refs").is_dir()


def _looks_like_scp(base: str) -> bool:
    # git@host:path — a colon before any slash, and not a Windows drive letter.
    head = base.split("/", 1)[0]
    return ":" in head and len(head.split(":", 1)[0]) > 1


def local_project(root: Path, subdir: str, display_uri: str) -> ProjectDir:
    path = (root / subdir).resolve() if subdir else root
    if not path.is_dir():
        raise SourceError(f"subdirectory '{subdir}' not found", where=str(root))
    if subdir and not path.is_relative_to(root.resolve()):
        raise SourceError(f"subdirectory '#{subdir}' leads outside {root} (a symlink to {path})", where=str(root),
                          hint="name a real directory of the project after '#'")
    git = git_state(path)
    if git is None:
        return ProjectDir(path=path, uri=strip_credentials(display_uri), code_digest=content_digest(path))
    return ProjectDir(
        path=path, uri=strip_credentials(display_uri), commit=git.commit, branch=git.branch,
        repo_url=git.repo_url, dirty=git.dirty, code_digest=git.code_digest,
    )


def _git(path: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", *args], cwd=path, capture_output=True, env=_git_env(), check=False)


def _start_git(path: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["git", *args], cwd=path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=_git_env())


def _git_env() -> dict[str, str]:
    return {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0"}


_GIT_DISCOVERY_ENV = ("GIT_DIR", "GIT_WORK_TREE", "GIT_CEILING_DIRECTORIES", "GIT_DISCOVERY_ACROSS_FILESYSTEM")


def _may_be_in_git(path: Path) -> bool:
    """Whether git's discovery could find a work tree from ``path``: a ``.git`` (a directory, or
    the file of a linked worktree or submodule) in it or a parent. Environment variables that
    change discovery leave the answer to git."""
    if any(name in os.environ for name in _GIT_DISCOVERY_ENV):
        return True
    return any(os.path.lexists(os.path.join(directory, ".git")) for directory in (path, *path.parents))


def git_state(path: Path) -> GitState | None:
    """Commit, branch, repo_url, dirty and code_digest for a directory inside a git work tree.

    The digest covers the tree of ``path`` at HEAD (not the whole commit, so commits that do not
    touch the project leave it unchanged) plus the content of uncommitted and untracked files that
    are code (not excluded by ``.gitignore``, ``.orchestraignore`` or the built-ins).
    Returns None outside git, or in a repository with no commit yet.
    """
    if not _may_be_in_git(path):
        return None  # no `.git` above: git would say so after ~2 ms of starting up
    # One rev-parse: top level, prefix, commit, the project's tree at HEAD, and the branch.
    head = _git(path, "rev-parse", "--show-toplevel", "--show-prefix", "HEAD", "HEAD:./", "--symbolic-full-name", "HEAD")
    if head.returncode != 0:  # outside a work tree, no commit yet, or a directory HEAD does not have
        return None
    lines = head.stdout.decode().splitlines()
    if len(lines) < 5:
        return None
    top, prefix, commit, tree, ref = lines[:5]
    branch = ref.removeprefix("refs/heads/") if ref.startswith("refs/heads/") else None
    remote = _start_git(path, "config", "--get", "remote.origin.url")  # runs beside the status
    status = _git(path, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--", ".")
    repo_url = strip_credentials(remote.communicate()[0].decode().strip()) or None
    entries = [e for e in status.stdout.decode(errors="surrogateescape").split("\0") if e]
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
    changed = uncommitted_code(path, prefix, changed)
    return GitState(commit, branch, repo_url, bool(changed), git_tree_digest(tree, Path(top), changed))


