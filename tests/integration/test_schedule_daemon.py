"""The real `orchestra scheduler` daemon: one per home, real clock end to end, SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from orchestra.app.schedule import store
from orchestra.store import runs as runstore
from tests import projects
from tests.hooks_receiver import wait_until

pytestmark = pytest.mark.integration


def start_daemon(log: Path) -> subprocess.Popen:
    handle = open(log, "w")
    return subprocess.Popen([sys.executable, "-m", "orchestra", "scheduler"], stdout=handle, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen, timeout: float = 60) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout)


def test_a_second_scheduler_exits_naming_the_first(cli, orchestra_home: Path, tmp_path: Path) -> None:
    first = start_daemon(tmp_path / "first.log")
    try:
        pid_file = orchestra_home / "scheduler.pid"
        wait_until(lambda: pid_file.exists() and pid_file.read_text().strip() == str(first.pid))
        second = cli("scheduler")
        assert second.code == 1, second.err
        assert f"another scheduler is already running for {orchestra_home} (pid {first.pid})" in second.err
        assert len(second.err.strip().splitlines()) == 1
        assert first.poll() is None  # the first one is untouched
    finally:
        code = stop(first)
    assert code == 0
    assert not (orchestra_home / "scheduler.pid").exists()
    assert "scheduler stopped" in (tmp_path / "first.log").read_text()


def test_daemon_end_to_end_on_the_real_clock(cli, make_project, project, tmp_path: Path) -> None:
    """`* * * * *` on a local project: exactly one run for the next minute; a failing run, a bad URI
    and a still-running pipeline do not disturb it; SIGTERM stops the daemon cleanly and the
    running pipeline is handled as `orchestra run` handles SIGTERM (stages killed, run KILLED)."""
    root = project(projects.SCHEDULED)
    slow = make_project("""
        name: slow
        entry_points:
          main:
            command: "python -c 'import time; time.sleep(300)'"
    """)
    schedules = {"good": (str(root), ()), "failing": (str(root), ("-P", "alpha=-1")),
                 "nowhere": ((tmp_path / "missing.git").as_uri(), ()), "slow": (str(slow), ())}
    for name, (uri, extra) in schedules.items():
        assert cli("schedule", "add", name, uri, "--cron", "* * * * *", *extra).code == 0
    # Each schedule's first slot is the first minute after it was added (the adds may straddle one).
    first = {name: datetime.fromtimestamp(store.get(name).created_at, tz=timezone.utc).replace(second=0, microsecond=0)
             + timedelta(minutes=1) for name in schedules}
    slot_of = {name: moment.strftime("%Y-%m-%dT%H:%M:%SZ") for name, moment in first.items()}
    deadline = (max(first.values()) - datetime.now(timezone.utc)).total_seconds() + 60
    log = tmp_path / "daemon.log"
    daemon = start_daemon(log)
    try:
        def settled() -> bool:
            rows = {name: [f for f in store.firings(name) if f["scheduled_for"] == slot_of[name]] for name in schedules}
            if not all(rows.values()):
                return False
            good, failing, nowhere, slow_row = (rows[n][0] for n in ("good", "failing", "nowhere", "slow"))
            running = [r for r in runstore.list_runs(limit=100)
                       if r.tags.get("orchestra.schedule") == "slow" and r.status == "RUNNING"
                       and any(s.status == "RUNNING" for s in r.stages)]
            return (good["run_status"] == "FINISHED" and failing["run_status"] == "FAILED"
                    and nowhere["state"] == "launch_failed" and bool(running))

        wait_until(settled, timeout=deadline, interval=0.25)  # at most ~120 s, usually well under 60
        assert daemon.poll() is None, log.read_text()  # survived the failing run and the bad URI
        for name in schedules:
            at_slot = [f for f in store.firings(name) if f["scheduled_for"] == slot_of[name]]
            assert len(at_slot) == 1
        tagged = [r for r in runstore.list_runs(limit=100) if r.tags.get("orchestra.schedule") == "good"
                  and r.tags["orchestra.scheduled_for"] == slot_of["good"].replace("Z", "+00:00")]
        assert len(tagged) == 1 and tagged[0].status == "FINISHED"
        assert "launch_failed" == store.firings("nowhere")[-1]["state"]
    finally:
        code = stop(daemon)
    text = log.read_text()
    assert code == 0, text
    assert "sending SIGTERM to" in text and "scheduler stopped" in text
    assert "Traceback" not in text
    [slow_run] = [r for r in runstore.list_runs(limit=100) if r.tags.get("orchestra.schedule") == "slow"]
    assert slow_run.status == "KILLED"
    slow_firing = [f for f in store.firings("slow") if f["scheduled_for"] == slot_of["slow"]][0]
    assert slow_firing["run_status"] == "KILLED" and slow_firing["ended_at"] is not None
    # The stage's process group is gone too.
    for stage in slow_run.stages:
        assert stage.status == "KILLED"
