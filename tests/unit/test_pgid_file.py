"""The pgid file the watchdog and the reaper read after orchestra died: always the live stage
groups, rewritten in place (one inode, no rename per stage start and end), and still read right
by a real watchdog once its orchestra process is gone."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import types

from orchestra.core.pids import pid_alive
from orchestra.execution import process


def _proc(pid: int) -> types.SimpleNamespace:
    return types.SimpleNamespace(pid=pid)


def test_the_list_follows_adds_and_removes_in_one_inode(tmp_path):
    registry = process.ProcessRegistry(tmp_path / "pgids")
    a, b, c = _proc(1234567), _proc(22), _proc(333)
    registry.add(a)
    inode = (tmp_path / "pgids").stat().st_ino
    registry.add(b)
    registry.add(c)
    assert (tmp_path / "pgids").read_text().split() == ["1234567", "22", "333"]
    registry.remove(a)  # shorter than before: the old bytes are blanked, not left behind
    assert (tmp_path / "pgids").read_text().split() == ["22", "333"]
    registry.remove(b)
    registry.remove(c)
    assert (tmp_path / "pgids").read_text().split() == []
    assert (tmp_path / "pgids").stat().st_ino == inode
    registry.close()


def test_a_long_list_still_lands_whole(tmp_path):
    registry = process.ProcessRegistry(tmp_path / "pgids")
    procs = [_proc(4_000_000 + i) for i in range(600)]  # over one page of text
    for proc in procs:
        registry.add(proc)
    assert (tmp_path / "pgids").read_text().split() == [str(p.pid) for p in procs]
    for proc in procs[:-1]:
        registry.remove(proc)
    assert (tmp_path / "pgids").read_text().split() == [str(procs[-1].pid)]
    registry.close()


def test_the_sweep_after_an_attempt_leaves_the_watchdog_alone(tmp_path):
    """The watchdog is this process's child but no stage's: every sweep excludes it by pid."""
    registry = process.ProcessRegistry(tmp_path / "pgids")
    result = process.run("echo hi", cwd=tmp_path, env=dict(os.environ), stdout_path=tmp_path / "out",
                         stderr_path=tmp_path / "err", timeout=None, registry=registry)
    try:
        assert result.exit_code == 0 and (tmp_path / "out").read_text() == "hi\n"
        watchdog = registry._watchdog  # noqa: SLF001 - started by the run above
        assert watchdog is not None and watchdog.pid in registry.not_swept()
        assert watchdog.poll() is None  # still watching after the attempt's sweep
    finally:
        registry.close()


_OWNER = """
import sys, time, types
from pathlib import Path
from orchestra.execution import process
pgids = Path(sys.argv[1])
watchdog = process.start_watchdog(pgids)
registry = process.ProcessRegistry(pgids)
registry.add(types.SimpleNamespace(pid=424242))
registry.add(types.SimpleNamespace(pid=int(sys.argv[2])))
registry.remove(types.SimpleNamespace(pid=424242))  # the list shrank in place
print("ready", flush=True)
time.sleep(600)
"""


def test_the_watchdog_kills_the_listed_group_once_its_owner_dies(tmp_path):
    """A real orchestra-side owner (its registry and start_watchdog), SIGKILLed; a real stage group."""
    stage = subprocess.Popen(["sleep", "600"], start_new_session=True)
    owner = subprocess.Popen([sys.executable, "-c", _OWNER, str(tmp_path / "pgids"), str(stage.pid)],
                             stdout=subprocess.PIPE, text=True, env={**os.environ})
    try:
        assert owner.stdout is not None and owner.stdout.readline().strip() == "ready"
        assert (tmp_path / "pgids").read_text().split() == [str(stage.pid)]
        owner.kill()
        owner.wait()
        deadline = time.monotonic() + 60
        while stage.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert stage.poll() is not None and not pid_alive(stage.pid)
    finally:
        for proc in (owner, stage):
            if proc.poll() is None:
                os.kill(proc.pid, 9)
                proc.wait()
