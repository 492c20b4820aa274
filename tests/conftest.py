"""Shared fixtures: every test gets its own ORCHESTRA_HOME and a way to call the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import pytest

from tests.projects import Template

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = REPO_ROOT / "example_projects"


@pytest.fixture(autouse=True)
def orchestra_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh ORCHESTRA_HOME for each test; hook/tracking env vars from the caller removed."""
    from orchestra.store import db

    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("ORCHESTRA_HOME", str(home))
    for var in ("ORCHESTRA_HOOKS_URI", "MLFLOW_HOOKS_URI", "MLFLOW_TRACKING_URI", "ORCHESTRA_DEBUG"):
        monkeypatch.delenv(var, raising=False)
    db.reset_connections()
    yield home
    db.reset_connections()


@dataclass
class CliResult:
    code: int
    out: str
    err: str


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 120, input: str | None = None) -> CliResult:
    """Run ``python -m orchestra ARGS`` in a real subprocess (real signals, real exit codes)."""
    proc = subprocess.run(
        [sys.executable, "-m", "orchestra", *args],
        cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True,
        timeout=timeout, input=input,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def cli():
    return run_cli


def write_project(root: Path, mlproject: str, files: dict[str, str] | None = None) -> Path:
    """Create a project directory with an MLproject (dedented) and extra files."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "MLproject").write_text(textwrap.dedent(mlproject))
    for name, text in (files or {}).items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


@pytest.fixture
def make_project(tmp_path: Path):
    """``make_project(mlproject, files=None, name=None)``: a project directory under tmp_path."""
    counter = iter(range(1000))

    def make(mlproject: str, files: dict[str, str] | None = None, name: str | None = None) -> Path:
        return write_project(tmp_path / (name or f"proj{next(counter)}"), mlproject, files)

    return make


@pytest.fixture
def project(make_project):
    """``project(template, files=None, name=None)``: write a :class:`tests.projects.Template` (or a
    plain MLproject text) under tmp_path; ``files`` are added to (or replace) the template's."""

    def make(template: Template | str, files: Mapping[str, str] | None = None, name: str | None = None) -> Path:
        if isinstance(template, str):
            template = Template(template)
        return make_project(template.mlproject, {**template.files, **(files or {})}, name)

    return make


def pytest_collection_finish(session: pytest.Session) -> None:
    """The mlflow virtualenv takes minutes to build on a fresh machine: build it (once, then it is
    reused) before the first test, outside any test's timeout, when a selected test needs it."""
    if session.config.option.collectonly:
        return
    for item in session.items:
        fixtures = getattr(item, "fixturenames", ())
        module = getattr(item, "module", None)
        if "mlflow_server" in fixtures or "mlflow_env" in fixtures or hasattr(module, "require_venv"):
            from tests.mlflow_server import mlflow_venv

            mlflow_venv()
            return
