"""Resume that works: the printed resume line replays every flag of the failed run plus
``--load-from``; ``orchestra runs resume`` does it without copy-paste. Real CLI processes and bash."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

MLPROJECT = """
    name: resumable
    entry_points:
      a:
        parameters: {n: {type: int, default: 1}}
        command: "python a.py {n}"
      b:
        depends_on: [a]
        parameters: {label: {type: string, default: x}, api_token: {type: string, default: ""}}
        command: "python b.py '{label}'"
"""
FILES = {
    "a.py": """
        import os, sys, pathlib
        pathlib.Path(os.environ["ORCHESTRA_OUTPUT_DIR"], "a.txt").write_text(sys.argv[1])
    """,
    "b.py": """
        import os, sys, pathlib
        if not pathlib.Path(os.environ["FLAKY_MARKER"]).exists():
            sys.exit("b: not yet")
        pathlib.Path(os.environ["ORCHESTRA_OUTPUT_DIR"], "b.txt").write_text(sys.argv[1])
    """,
}


@pytest.fixture
def failed(cli, make_project, tmp_path, monkeypatch):
    root = make_project(MLPROJECT, FILES)
    marker = tmp_path / "marker"
    monkeypatch.setenv("FLAKY_MARKER", str(marker))
    argv = ["run", str(root), "--env-manager", "local", "-j", "1", "-k", "--run-name", "it's mine",
            "-P", "n=3", "-P", "label=two words", "--experiment", "exp one"]
    first = cli(*argv)
    assert first.code == 1, first.err
    line = next(text for text in first.err.splitlines() if text.startswith("orchestra: to resume: "))
    record = json.loads(cli("runs", "list", "--json").out)[0]
    assert [s["status"] for s in record["stages"]] == ["FINISHED", "FAILED"]
    marker.write_text("ok")
    return line.removeprefix("orchestra: to resume: "), record


def test_the_printed_resume_line_replays_every_flag_and_loads_the_finished_stages(cli, failed):
    line, record = failed
    for flag in ("--env-manager local", "-j 1", "-k", "--run-name 'it'\"'\"'s mine'", "-P n=3", "-P 'label=two words'",
                 "--experiment 'exp one'", f"--load-from {record['run_id']}"):
        assert flag in line, (flag, line)
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"}
    shim = f'orchestra() {{ "{sys.executable}" -m orchestra "$@"; }}; '
    done = subprocess.run(["bash", "-c", shim + line], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    again = json.loads(cli("runs", "list", "--json").out)[0]
    assert again["run_id"] != record["run_id"]
    assert again["run_name"] == "it's mine" and again["experiment"] == "exp one"
    stages = {s["name"]: s for s in again["stages"]}
    assert stages["a"]["status"] == "LOADED" and stages["a"]["loaded_from"]["run_id"] == record["run_id"]
    assert stages["b"]["status"] == "FINISHED"
    assert again["params"]["label"] == "two words"


def test_runs_resume_replays_without_copy_paste(cli, failed, tmp_path):
    line, record = failed
    printed = cli("runs", "resume", record["run_id"][:8], "--print")
    assert printed.code == 0 and printed.out.strip() == line
    done = cli("runs", "resume", record["run_id"][:8], cwd=tmp_path)
    assert done.code == 0, done.err
    again = json.loads(cli("runs", "list", "--json").out)[0]
    assert [s["status"] for s in again["stages"]] == ["LOADED", "FINISHED"]


def test_credentials_never_reach_the_stored_command_line(cli, make_project, monkeypatch, tmp_path):
    root = make_project(MLPROJECT, FILES)
    monkeypatch.setenv("FLAKY_MARKER", str(tmp_path / "absent"))
    done = cli("run", str(root), "--env-manager", "local", "-P", "label=https://user:hunter2@example.invalid/x",
               "-P", "b.api_token=hunter2")
    assert done.code == 1, done.err
    record = json.loads(cli("runs", "list", "--json").out)
    stored = json.loads(record[0]["tags"]["orchestra.invocation"])["argv"]
    assert "hunter2" not in json.dumps(stored) and "b.api_token=REDACTED" in stored
    assert "hunter2" not in done.err.split("to resume:")[1]
    refused = cli("runs", "resume", record[0]["run_id"])
    assert refused.code == 2 and "redacted" in refused.err and "Traceback" not in refused.err
