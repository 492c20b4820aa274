"""Finishing the runs whose orchestra process died: the policy over the run store's plain queries.

A SIGKILLed ``orchestra run`` leaves its run RUNNING. Any later command on this host that reads
or cleans runs (``runs list|show|sync``, ``gc``, ``run``, the scheduler) first marks such runs
KILLED and kills the stage process groups they recorded, which their watchdog normally kills.
"""

from __future__ import annotations

import shutil
import signal
from pathlib import Path
import subprocess

from orchestra.core.pids import hostname
from orchestra.core.layout import home_path
from orchestra.core.pids import pid_alive, signal_group
from orchestra.core.status import RunStatus
from orchestra.store import runs as runstore


def reap_stale_runs() -> list[str]:
    """Mark RUNNING runs of dead orchestra processes (same host) KILLED; kill their stage groups.

    Returns:
        the ids of the runs finished.
    """
    reaped = []
    for run in runstore.running_runs(hostname()):
        if pid_alive(run.pid):
            continue
        # The run's watchdog normally kills them; if it died too, the pgid file is still there.
        pgids = home_path("runs", run.run_id) / "pgids"
        for line in (pgids.read_text().split() if pgids.exists() else ()):
            if line.isdigit():
                signal_group(int(line), signal.SIGKILL)
        cleanup = pgids.with_name("pgids.cleanup")  # their docker containers, which signals miss
        if cleanup.exists():
            subprocess.run(["/bin/sh", str(cleanup)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=120, check=False)
        runstore.finish_run(run.run_id, RunStatus.KILLED, "orchestra process died")
        sweep_partial(home_path("runs", run.run_id))
        reaped.append(run.run_id)
    return reaped


def sweep_partial(run_dir: Path) -> None:
    """Remove what killed stages left half-made: staging directories and unrenamed output trees."""
    for pattern in ("*/.staging-*", "*/.out.tmp-*"):
        for leftover in run_dir.glob(pattern):
            shutil.rmtree(leftover, ignore_errors=True)
