"""Scheduler costs: one in-process tick over many schedules, and `orchestra schedule run-due`
as system cron would start it every minute (nothing due / one slot due and run)."""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _util import ORCHESTRA, chain_project, report, timed  # noqa: E402


class _Launcher:
    def launch(self, firing):
        return os.getpid(), "/dev/null"


def in_process(n: int) -> None:
    os.environ["ORCHESTRA_HOME"] = tempfile.mkdtemp(prefix="orchestra-bench-")
    from orchestra.app.schedule import manage
    from orchestra.app.schedule.tick import tick
    from orchestra.store import db

    db.reset_connections()
    start = datetime(2026, 3, 1, 12, 0, 30, tzinfo=timezone.utc)
    project = chain_project(Path(tempfile.mkdtemp()) / "p", 1)
    for i in range(n):
        manage.add(f"s{i}", str(project), f"{i % 30} * * * *", now=start.timestamp(), overlap="allow")
    idle, busy = [], []
    for minute in range(1, 61):
        at = start + timedelta(minutes=minute)
        t0 = time.perf_counter()
        result = tick(at, _Launcher(), notify=False)
        (busy if result.outcomes else idle).append(time.perf_counter() - t0)
        db.connect("schedules", "").execute("UPDATE firings SET ended_at = 1 WHERE ended_at IS NULL")  # runs end
    print(f"tick over {n} schedules: nothing due median {statistics.median(idle) * 1000:.1f} ms, "
          f"with due slots median {statistics.median(busy) * 1000:.1f} ms (n={len(idle)}/{len(busy)})")


def cli_run_due() -> None:
    home = tempfile.mkdtemp(prefix="orchestra-bench-")
    env = {"ORCHESTRA_HOME": home}
    project = chain_project(Path(tempfile.mkdtemp()) / "p", 1)
    import subprocess

    subprocess.run([*ORCHESTRA, "schedule", "add", "every", str(project), "--cron", "* * * * *", "-e", "s0"], check=True,
                   env={**os.environ, **env}, stdout=subprocess.DEVNULL)
    idle = [timed([*ORCHESTRA, "schedule", "run-due"], env) for _ in range(7)]
    report("run-due, 1 schedule, nothing due", idle)
    base = datetime.now(timezone.utc).replace(second=5, microsecond=0)
    due = [timed([*ORCHESTRA, "schedule", "run-due", "--at", (base + timedelta(minutes=m + 1)).isoformat()], env)
           for m in range(7)]
    report("run-due, one slot due, run to the end", due)


if __name__ == "__main__":
    in_process(int(sys.argv[1]) if len(sys.argv) > 1 else 100)
    cli_run_due()
