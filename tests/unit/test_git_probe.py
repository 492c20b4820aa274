"""What a local project records of its git work tree, and that a plain directory starts no git.

Real git throughout; the one stand-in is a ``git`` first on PATH that notes each call and then
runs the real one, to see whether git is started at all.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from orchestra.source.local import git_state

REAL_GIT = shutil.which("git")


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run([str(REAL_GIT), "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=cwd, check=True,
                          capture_output=True, text=True).stdout.strip()


def _repo(root: Path) -> Path:
    (root / "proj").mkdir(parents=True)
    (root / "proj" / "MLproject").write_text("name: p\n")
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "init")
    return root


@pytest.fixture
def counted_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``git`` first on PATH that appends its arguments to a file, then execs the real git."""
    assert REAL_GIT is not None
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "git-calls"
    shim = bin_dir / "git"
    shim.write_text(f'#!/bin/sh\necho "$*" >> {calls}\nexec {REAL_GIT} "$@"\n')
    shim.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_CEILING_DIRECTORIES", "GIT_DISCOVERY_ACROSS_FILESYSTEM"):
        monkeypatch.delenv(name, raising=False)
    return calls


def test_a_plain_directory_starts_no_git(tmp_path: Path, counted_git: Path) -> None:
    plain = tmp_path / "plain" / "proj"
    plain.mkdir(parents=True)
    assert git_state(plain) is None
    assert not counted_git.exists()


def test_a_work_tree_is_read_in_three_git_calls(tmp_path: Path, counted_git: Path) -> None:
    repo = _repo(tmp_path / "repo")
    state = git_state(repo / "proj")
    assert state is not None
    assert state.commit == _git(repo, "rev-parse", "HEAD")
    assert state.branch == "main" and not state.dirty and state.repo_url is None
    assert len(counted_git.read_text().splitlines()) == 3  # rev-parse, config, status


def test_branch_names_with_slashes_detached_heads_and_remotes(tmp_path: Path, counted_git: Path) -> None:
    repo = _repo(tmp_path / "repo")
    _git(repo, "remote", "add", "origin", "https://user:secret@example.invalid/r.git")
    _git(repo, "checkout", "-q", "-b", "feature/x")
    state = git_state(repo / "proj")
    assert state is not None and state.branch == "feature/x"
    assert state.repo_url == "https://example.invalid/r.git"  # credentials stripped
    _git(repo, "checkout", "-q", "--detach")
    detached = git_state(repo / "proj")
    assert detached is not None and detached.branch is None and detached.commit == state.commit


def test_a_linked_worktree_has_a_git_file_not_a_directory(tmp_path: Path, counted_git: Path) -> None:
    repo = _repo(tmp_path / "repo")
    linked = tmp_path / "linked"
    _git(repo, "worktree", "add", "-q", "-b", "side", str(linked))
    assert (linked / ".git").is_file()
    state = git_state(linked / "proj")
    assert state is not None and state.branch == "side"
    assert state.code_digest == git_state(repo / "proj").code_digest  # same tree, same code


def test_no_commit_yet_and_a_directory_head_does_not_have(tmp_path: Path, counted_git: Path) -> None:
    fresh = tmp_path / "fresh"
    (fresh / "proj").mkdir(parents=True)
    _git(fresh, "init", "-q")
    assert git_state(fresh / "proj") is None
    repo = _repo(tmp_path / "repo")
    (repo / "new").mkdir()
    assert git_state(repo / "new") is None  # untracked at HEAD: digested as a plain directory


def test_git_dir_in_the_environment_leaves_discovery_to_git(tmp_path: Path, counted_git: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    repo = _repo(tmp_path / "repo")
    elsewhere = tmp_path / "work"
    shutil.copytree(repo / "proj", elsewhere / "proj")
    monkeypatch.setenv("GIT_DIR", str(repo / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(elsewhere))
    state = git_state(elsewhere / "proj")  # no .git above it: only git, told by GIT_DIR, knows
    assert state is not None and state.commit == _git(repo, "rev-parse", "HEAD")
