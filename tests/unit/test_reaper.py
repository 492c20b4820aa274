"""The reaper finishes runs whose orchestra process is gone, and kills the stage groups they left."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from orchestra.app import reaper
from orchestra.core.layout import home_path
from orchestra.core.status import RunStatus, StageStatus
from orchestra.store import runs as runstore


def _run_of(pid: int) -> str:
    run_id = runstore.new_run_id()
    runstore.create_run(run_id, experiment="Default", project_uri="/p", targets=["a"], params={}, tags={},
                        stages=["a", "b"])
    runstore.update_run(run_id, pid=pid)
    return run_id


def test_a_run_of_a_dead_process_is_killed_with_its_stage_groups():
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stage = subprocess.Popen(["sleep", "60"], start_new_session=True)  # a stage's process group
    try:
        run_id = _run_of(dead.pid)
        (home_path("runs", run_id) / "pgids").write_text(f"{stage.pid}\n")
        alive_run = _run_of(os.getpid())
        assert {r.run_id for r in runstore.running_runs(socket.gethostname())} == {run_id, alive_run}

        assert reaper.reap_stale_runs() == [run_id]
        assert stage.wait(timeout=60) == -9
        record = runstore.get_run(run_id)
        assert (record.status, record.message) == (RunStatus.KILLED, "orchestra process died")
        assert [s.status for s in record.stages] == [StageStatus.KILLED, StageStatus.KILLED]
        assert runstore.get_run(alive_run).status == RunStatus.RUNNING  # this process is alive
        assert reaper.reap_stale_runs() == []
    finally:
        stage.kill()
        stage.wait()
