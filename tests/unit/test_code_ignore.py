"""The code digest's ignore rules: built-ins, .orchestraignore, and .gitignore outside git.

Pattern semantics are checked against real git (``git check-ignore``) as the oracle.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from orchestra.source.digest import code_files, content_digest
from orchestra.source.ignore import Rules
from orchestra.source.local import git_state

PATTERNS = """
# a comment
*.log
!keep.log
build/
/top.txt
docs/*.md
**/deep/x
a/**/z
cache/**
data?.csv
img[0-9].png
name\\#hash
trailing\\ 
"""

PATHS = [
    "a.log", "keep.log", "sub/b.log", "sub/keep.log", "build/out.o", "sub/build/o", "build.txt",
    "top.txt", "sub/top.txt", "docs/x.md", "docs/sub/y.md", "sub/docs/x.md", "p/q/deep/x", "deep/x",
    "a/z", "a/b/c/z", "b/a/z", "cache/1/2", "cachex/1", "data1.csv", "data12.csv", "img3.png", "imgx.png",
    "name#hash", "trailing ", "trailing", "plain.py", "sub/plain.py",
]


def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)


def _tree(root: Path, paths: list[str]) -> None:
    for rel in paths:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)


def test_patterns_match_git(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / ".gitignore").write_text(PATTERNS)
    (repo / "sub").mkdir()
    (repo / "sub" / ".gitignore").write_text("!b.log\nplain.py\n")  # a deeper file wins
    _tree(repo, PATHS)
    proc = subprocess.run(["git", "check-ignore", "--stdin", "-z", "--no-index"], cwd=repo, input="\0".join(PATHS),
                          capture_output=True, text=True, check=False)
    by_git = {p for p in proc.stdout.split("\0") if p}
    rules = Rules(repo, gitignore=True)
    ours = {p for p in PATHS if rules.ignored(p)}
    assert ours == by_git
    assert "a.log" in ours and "keep.log" not in ours and "sub/b.log" not in ours and "sub/plain.py" in ours


def test_builtins_and_orchestraignore_outside_git(tmp_path: Path) -> None:
    project = tmp_path / "p"
    _tree(project, ["MLproject", "train.py"])
    before = content_digest(project)
    # What stage code and tools leave behind is not code.
    _tree(project, ["mlruns/0/meta.yaml", "mlflow.db", "sub/__pycache__/m.cpython-311.pyc", "x.pyc",
                    ".ipynb_checkpoints/n.ipynb", ".orchestra/state"])
    assert content_digest(project) == before
    # .gitignore and .orchestraignore (same syntax) are honoured without git.
    (project / ".gitignore").write_text("*.tmp\n")
    (project / ".orchestraignore").write_text("scratch/\n!keep.tmp\n")
    with_files = content_digest(project)
    _tree(project, ["a.tmp", "scratch/big.bin", "sub/scratch/more"])
    assert content_digest(project) == with_files
    assert sorted(code_files(project)) == [".gitignore", ".orchestraignore", "MLproject", "train.py"]
    _tree(project, ["keep.tmp"])  # re-included by the later file
    assert content_digest(project) != with_files
    _tree(project, ["new.py"])
    assert "new.py" in code_files(project)


@pytest.mark.parametrize("litter", ["mlruns/0/r/meta.yaml", "mlflow.db", "notes/x.scratch"])
def test_git_work_tree_ignores_litter(tmp_path: Path, litter: str) -> None:
    repo = tmp_path / "repo"
    project = repo / "proj"
    _tree(project, ["MLproject", "train.py"])
    (project / ".orchestraignore").write_text("*.scratch\n")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init")
    clean = git_state(project)
    assert clean is not None and not clean.dirty
    _tree(project, [litter])
    after = git_state(project)
    assert after is not None and after.code_digest == clean.code_digest and not after.dirty
    _tree(project, ["notes/real.py"])
    changed = git_state(project)
    assert changed is not None and changed.code_digest != clean.code_digest and changed.dirty
