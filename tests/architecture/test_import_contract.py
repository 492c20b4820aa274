"""The import contract of docs/ARCHITECTURE.md holds: ``lint-imports`` (import-linter, configured
in pyproject.toml) passes on this checkout, so a plain ``pytest`` run enforces the layer rule as
.ci/run does. The layer order it checks is the one the architecture document states.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT


def _lint_imports() -> str | None:
    beside_python = Path(sys.executable).with_name("lint-imports")
    if beside_python.exists():
        return str(beside_python)
    return shutil.which("lint-imports")


def test_lint_imports_keeps_every_contract():
    exe = _lint_imports()
    if exe is None:
        pytest.skip("the lint-imports executable is missing (pip install -e '.[test]' installs import-linter)")
    # Run from the repository root: import-linter reads pyproject.toml there and puts the
    # directory first on sys.path, so it checks this checkout, not an installed copy.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([exe, "--no-cache", "--no-logo"], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, f"lint-imports failed:\n{proc.stdout}\n{proc.stderr}"
    assert "0 broken" in proc.stdout, proc.stdout


def test_the_documented_layer_order_is_the_checked_one():
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    [layers] = [c["layers"] for c in config["contracts"] if c["type"] == "layers"]
    checked = " → ".join(layer.removeprefix("orchestra.").replace(" | orchestra.", " | ") for layer in layers)
    assert checked == "cli → ui → app → integrations → execution → planning → source | envs → store | mlproject → core"
    for document in ("docs/ARCHITECTURE.md", "README.md"):
        assert checked in (REPO_ROOT / document).read_text(), f"{document} does not state the layer order {checked}"
