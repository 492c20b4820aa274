"""Killed runs: SIGINT/SIGTERM cancel cleanly (exit 130, KILLED); SIGKILL leaves no orphan."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import projects

pytestmark = pytest.mark.integration


def wait_for(predicate, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1] != "Z"
    except OSError:
        return False


def start(project: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "orchestra", "run", str(project), "-j", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.fixture
def killable(project, tmp_path):
    marker = tmp_path / "started"
    return project(projects.killable(marker)), marker


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_kills_stage_groups_and_marks_run_killed(cli, killable, sig):
    root, marker = killable
    proc = start(root)
    wait_for(lambda: marker.exists() and Path(f"{marker}.child").exists(), what="stage start")
    child = int(Path(f"{marker}.child").read_text())
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()
    wait_for(lambda: not alive(child), what="stage child to die")
    record = json.loads(cli("runs", "list", "--json").out)[0]
    assert record["status"] == "KILLED"
    assert {s["name"]: s["status"] for s in record["stages"]} == {"slow": "KILLED", "other": "KILLED", "after": "KILLED"}
    assert "--load-from" in err.decode()
    # Stages cut off by the signal were killed, not run: the closing line does not count them as ran.
    assert re.search(r"KILLED in [\d.]+s \(0 ran, 0 loaded, 3 killed\)", err.decode()), err.decode()


def test_sigkill_of_orchestra_leaves_no_orphan_and_nothing_loadable(cli, killable):
    root, marker = killable
    proc = start(root)
    wait_for(lambda: marker.exists() and Path(f"{marker}.child").exists(), what="stage start")
    child = int(Path(f"{marker}.child").read_text())
    proc.kill()
    proc.communicate(timeout=60)
    # The run's watchdog kills the stage groups once orchestra is gone.
    wait_for(lambda: not alive(child), what="watchdog to kill the stage")
    record = json.loads(cli("runs", "list", "--json").out)[0]
    assert record["status"] == "KILLED"
    plan = cli("plan", str(root), "--json")
    assert {s["stage"]: s["action"] for s in json.loads(plan.out)}["slow"] == "RUN"
