"""The run's self-contained HTML report, handed to the MLflow mirror at the end of a mirrored run.

The report is the ``ui`` layer's (a layer above this one), so it is written by ``orchestra
report`` in a child process into the run directory; the mirror then queues its upload to the
parent MLflow run (``orchestra/report.html``) through the outbox like its other operations. Only
runs that mirror to a server not known to be down pay for it (about half a second); a report
that cannot be written is a notice, never a failed run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from orchestra.core.report import Reporter

REPORT_FILE = "report.html"
_TIMEOUT_S = 120.0


def attach(run_id: str, run_dir: Path, listeners: Sequence[Any], reporter: Reporter) -> None:
    """Write ``run_dir/report.html`` and give it to each listener that mirrors (``attach_report``)."""
    mirrors = [listener for listener in listeners if callable(getattr(listener, "attach_report", None))
               and getattr(listener, "wants_report", lambda: True)()]
    if not mirrors:
        return
    path = run_dir / REPORT_FILE
    try:
        done = subprocess.run([sys.executable, "-m", "orchestra", "report", run_id, "-o", str(path)],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              timeout=_TIMEOUT_S, env={**os.environ, "NO_COLOR": "1"}, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        reporter.notice(f"the run's HTML report was not written for the MLflow mirror ({exc})")
        return
    if done.returncode != 0 or not path.is_file():
        why = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [f"exit code {done.returncode}"]
        reporter.notice(f"the run's HTML report was not written for the MLflow mirror ({why[0]})")
        return
    for mirror in mirrors:
        mirror.attach_report(path)
