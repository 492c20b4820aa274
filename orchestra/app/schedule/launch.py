"""Starting and supervising the run process of a claimed slot.

Each run is its own ``python -m orchestra.app.schedule.child FIRING_ID`` process in its own session
(process group): a crashing or memory-hungry pipeline cannot take the scheduler down, Ctrl-C on
the scheduler's terminal does not reach it directly, and on shutdown the scheduler sends it
SIGTERM — exactly what ``orchestra run`` gets from a user, with the same handling (stages
killed, run recorded KILLED).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from typing import Any

from orchestra.core.layout import home_path, orchestra_home
from orchestra.core.pids import signal_group


class ProcessLauncher:
    """Starts run processes and keeps their handles (so they are reaped, and stopped on shutdown)."""

    def __init__(self) -> None:
        self.children: dict[int, subprocess.Popen[bytes]] = {}

    def launch(self, firing: dict[str, Any]) -> tuple[int, str]:
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", firing["schedule"])
        log_dir = home_path("schedules", "logs", safe)
        log_path = log_dir / f"{firing['scheduled_for'].replace(':', '')}-{firing['id']}.log"
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "orchestra.app.schedule.child", str(firing["id"])],
                # stdin: the start gate (see release), then /dev/null.
                stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                # An absolute home: a relative ORCHESTRA_HOME must mean the same store in the child.
                env={**os.environ, "PYTHONUNBUFFERED": "1", "ORCHESTRA_HOME": str(orchestra_home())},
            )
        self.children[proc.pid] = proc
        return proc.pid, str(log_path)

    def release(self, pid: int) -> None:
        """Let a launched run go on: the child records nothing (a launch failure, its run) until
        its launcher has recorded the launch, so the slot's history and webhooks keep their order
        however the two processes are scheduled. Closing the child's stdin is the signal."""
        proc = self.children.get(pid)
        if proc is not None and proc.stdin is not None and not proc.stdin.closed:
            try:
                proc.stdin.close()
            except OSError:
                pass

    def reap(self) -> list[int]:
        """Collect exited children (no zombies); returns their pids."""
        done = [pid for pid, proc in self.children.items() if proc.poll() is not None]
        for pid in done:
            del self.children[pid]
        return done

    def running(self) -> int:
        self.reap()
        return len(self.children)

    def wait_all(self, timeout: float | None = None) -> bool:
        """Wait for every child; False if some still run after ``timeout``."""
        for pid in list(self.children):
            self.release(pid)  # a child never waits on a gate nobody will open
        deadline = None if timeout is None else time.monotonic() + timeout
        for proc in list(self.children.values()):
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                proc.wait(remaining)
            except subprocess.TimeoutExpired:
                return False
        self.reap()
        return True

    def terminate_all(self, grace_s: float = 30.0) -> None:
        """SIGTERM every run (as a user stopping ``orchestra run``), then SIGKILL what is left."""
        for pid in list(self.children):
            signal_group(pid, signal.SIGTERM)
        if not self.wait_all(grace_s):
            for pid in list(self.children):
                signal_group(pid, signal.SIGKILL)
            self.wait_all(5.0)

