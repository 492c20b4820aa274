"""Stage code that writes into its project directory: what is not code does not change the key,
and what would is named in one warning. Real runs through the CLI, real git."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.integration

PROJECT = """
name: litter
entry_points:
  main:
    command: "python write.py {outputs}"
"""

# What the mlflow client does without a tracking server (mlruns/ or mlflow.db in the cwd), plus
# files the project's own ignore files exclude.
WRITE = """
import os, sys, time
os.makedirs("mlruns/0/abc", exist_ok=True)
with open(f"mlruns/0/abc/meta-{time.time_ns()}.yaml", "w") as f:
    f.write("x")
with open("mlflow.db", "a") as f:
    f.write(str(time.time_ns()))
os.makedirs("scratch", exist_ok=True)
with open(f"scratch/tmp-{time.time_ns()}", "w") as f:
    f.write("x")
with open(f"run-{time.time_ns()}.tmp", "w") as f:
    f.write("x")
with open(os.path.join(sys.argv[1], "out.txt"), "w") as f:
    f.write("out")
"""


def _run(project: Path, *extra: str):
    result = run_cli("run", str(project), "--json", *extra)
    assert result.code == 0, result.err
    return result, json.loads(result.out)


def _ignore_files(project: Path) -> None:
    (project / ".gitignore").write_text("*.tmp\n")
    (project / ".orchestraignore").write_text("scratch/\n")


def test_litter_outside_git_does_not_change_the_key(make_project) -> None:
    project = make_project(PROJECT, {"write.py": WRITE})
    _ignore_files(project)
    first, _ = _run(project)
    assert (project / "mlflow.db").exists() and (project / "mlruns").is_dir() and (project / "scratch").is_dir()
    assert "wrote into the project directory" not in first.err
    second, record = _run(project)
    assert [s["status"] for s in record["stages"]] == ["LOADED"], second.err
    assert "project code changed" not in second.err


def test_litter_in_a_git_work_tree_does_not_change_the_key(make_project) -> None:
    project = make_project(PROJECT, {"write.py": WRITE})
    (project / ".orchestraignore").write_text("scratch/\n*.tmp\n")
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "i"]):
        subprocess.run(["git", *args], cwd=project, check=True)
    first, _ = _run(project)
    assert "wrote into the project directory" not in first.err
    second, record = _run(project)
    assert [s["status"] for s in record["stages"]] == ["LOADED"], second.err


def test_a_stage_writing_code_paths_is_named_once(make_project) -> None:
    project = make_project(PROJECT, {"write.py": WRITE + "\nopen('results.csv', 'w').write('1')\n"})
    _ignore_files(project)
    first, _ = _run(project)
    warnings = [line for line in first.err.splitlines() if "wrote into the project directory" in line]
    assert len(warnings) == 1, first.err
    assert warnings[0].startswith("orchestra: warning: stage main wrote") and "results.csv" in warnings[0]
    assert "mlflow.db" not in warnings[0] and "scratch" not in warnings[0] and ".tmp" not in warnings[0]
    # And that is why the next run runs again.
    second, record = _run(project)
    assert [s["status"] for s in record["stages"]] == ["FINISHED"] and "project code changed" in second.err


def test_the_warning_names_the_stage_that_wrote(make_project) -> None:
    project = make_project("""
        name: two
        entry_points:
          a:
            command: "python -c 'import time; time.sleep(0.3)'"
          b:
            depends_on: [a]
            command: "python -c 'import time; time.sleep(0.3); open(\\"notes.txt\\", \\"w\\").write(\\"x\\")'"
        """)
    result, _ = _run(project)
    warnings = [line for line in result.err.splitlines() if "wrote into the project directory" in line]
    assert len(warnings) == 1 and warnings[0].startswith("orchestra: warning: stage b wrote"), result.err
    assert "notes.txt" in warnings[0]
