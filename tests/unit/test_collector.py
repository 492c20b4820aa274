"""The program pauses the cyclic collector through its imports and resumes it, with what exists
frozen, once a command is parsed or a run is about to start its stages; code that imports the CLI
itself keeps its collector as it is."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

from orchestra.core import collector

REPO = Path(__file__).resolve().parents[2]


def _python(code: str, tmp_path: Path) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "ORCHESTRA_HOME": str(tmp_path / "home")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=tmp_path)
    return out.stdout.split()


def test_resume_leaves_a_collector_it_did_not_pause_alone():
    was_enabled, frozen = gc.isenabled(), gc.get_freeze_count()
    collector.resume()
    assert (gc.isenabled(), gc.get_freeze_count()) == (was_enabled, frozen)


def test_the_program_pauses_it_and_a_command_resumes_it_frozen(tmp_path):
    code = """
import gc, io, contextlib
import orchestra.__main__ as program
from orchestra.cli import main
print(gc.isenabled())
with contextlib.redirect_stdout(io.StringIO()):
    main(["runs", "list"])
print(gc.isenabled(), gc.get_freeze_count() > 1000)
"""
    assert _python(code, tmp_path) == ["False", "True", "True"]


def test_a_run_resumes_it_before_its_stages_start(tmp_path):
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "MLproject").write_text("name: p\nentry_points:\n  main:\n    command: \"true\"\n")
    code = """
import gc
import orchestra.__main__ as program
from orchestra.app import session
from orchestra.cli import main
seen = []
real = session._drive
def drive(*args, **kwargs):
    seen.append(gc.isenabled())
    return real(*args, **kwargs)
session._drive = drive
before = gc.isenabled()
code = main(["run", "proj", "-q"])
print(before, seen, code)
"""
    assert _python(code, tmp_path) == ["False", "[True]", "0"]


def test_importing_the_cli_changes_nothing(tmp_path):
    assert _python("import gc, orchestra.cli; print(gc.isenabled(), gc.get_freeze_count())", tmp_path) == ["True", "0"]
