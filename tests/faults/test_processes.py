"""Timeouts and process cleanup: the deadline holds whatever the stage does with its pipes or
signals, and what a stage detached from its group dies with it. Real processes throughout."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.faults.helpers import last_run, stages, wait_for

pytestmark = pytest.mark.integration

GRACE = 5.0  # orchestra.execution.process.GRACE_SECONDS


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[-1][:1] != "Z"
    except (ProcessLookupError, FileNotFoundError):
        return False


@pytest.mark.parametrize("command", [
    "exec >/dev/null 2>&1; sleep 25",          # the pipes close at once
    "trap '' TERM; sleep 25 & wait; sleep 25",  # SIGTERM is ignored
], ids=["closed-pipes", "ignores-sigterm"])
def test_a_timeout_holds_and_ends_within_timeout_plus_grace(cli, make_project, command):
    root = make_project(f"""
        entry_points:
          main: {{command: "{command}", timeout: 2}}
    """)
    result = cli("run", str(root), timeout=60)
    assert result.code == 1, result.err
    main = stages(last_run())["main"]
    assert main.status == "FAILED" and "timed out after 2s" in (main.message or "")
    took = main.end_time - main.start_time
    assert took < 2 + GRACE + 1, f"the attempt took {took:.1f}s"


def _detaching(tmp_path: Path, then: str) -> str:
    pidfile = tmp_path / "detached.pid"
    return pidfile, f"""
        entry_points:
          main: {{command: "setsid sh -c 'echo $$ > {pidfile}; exec sleep 300' < /dev/null > /dev/null 2>&1 & {then}"}}
    """


def test_a_setsid_detached_process_dies_with_its_stage(cli, make_project, tmp_path):
    pidfile, text = _detaching(tmp_path, "sleep 0.5")
    result = cli("run", str(make_project(text)), timeout=60)
    assert result.code == 0, result.err
    pid = int(pidfile.read_text())
    wait_for(lambda: not alive(pid), timeout=60, what="the detached process to die")


def test_a_setsid_detached_process_dies_when_orchestra_is_interrupted(make_project, tmp_path):
    pidfile, text = _detaching(tmp_path, "sleep 300")
    proc = subprocess.Popen([sys.executable, "-m", "orchestra", "run", str(make_project(text))],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), what="the stage to detach")
    pid = int(pidfile.read_text())
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode == 130
    wait_for(lambda: not alive(pid), timeout=60, what="the detached process to die")
