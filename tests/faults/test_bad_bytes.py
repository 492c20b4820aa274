"""Bytes that are not UTF-8 in a parameter or the project path: exit 2, one line, no run created."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

MLPROJECT = b"entry_points:\n  main:\n    parameters: {alpha: {type: string, default: a}}\n    command: 'echo {alpha}'\n"


def _run(*args: bytes | str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestra", *args], capture_output=True, timeout=60)


def _no_run(home: Path) -> bool:
    runs = home / "runs"
    return not runs.exists() or not any(runs.iterdir())


def test_a_non_utf8_parameter_value_is_exit_2_before_any_run(tmp_path, orchestra_home):
    root = tmp_path / "proj"
    root.mkdir()
    (root / "MLproject").write_bytes(MLPROJECT)
    result = _run("run", str(root), "-P", b"alpha=caf\xe9")
    err = result.stderr.decode(errors="replace")
    assert result.returncode == 2, err
    assert "not valid UTF-8" in err and "alpha=caf\\xe9" in err and len(err.strip().splitlines()) == 1
    assert _no_run(orchestra_home)


def test_a_non_utf8_project_path_is_exit_2_before_any_run(tmp_path, orchestra_home):
    root = os.path.join(os.fsencode(tmp_path), b"proj-\xff")
    os.mkdir(root)
    with open(os.path.join(root, b"MLproject"), "wb") as handle:
        handle.write(MLPROJECT)
    result = _run("run", root)
    err = result.stderr.decode(errors="replace")
    assert result.returncode == 2, err
    assert "not valid UTF-8" in err and len(err.strip().splitlines()) == 1
    assert _no_run(orchestra_home)
    cwd_relative = subprocess.run([sys.executable, "-m", "orchestra", "run", "."], cwd=root, capture_output=True,
                                  timeout=60, env={**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", "")})
    err = cwd_relative.stderr.decode(errors="replace")
    assert cwd_relative.returncode == 2 and "not valid UTF-8" in err, err
    assert _no_run(orchestra_home)
