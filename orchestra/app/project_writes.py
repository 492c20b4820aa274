"""One warning when stage code wrote into the project directory (it changes the next run's key).

A stat snapshot of the files the code digest covers is taken before the stages run and compared
after (:mod:`orchestra.source.snapshot`): two listings per run, no file read. The files that
changed are blamed on the stages that were running when they were written (by mtime).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from orchestra.core.records import RunRecord
from orchestra.source import snapshot
from orchestra.source.project import ProjectDir

TYPE_CHECKING = False
if TYPE_CHECKING:
    from orchestra.core.report import Reporter

_SHOWN = 5
_SLACK_S = 0.1  # file timestamps come from a coarser clock than the stage times


def take(project: ProjectDir) -> snapshot.Snapshot | None:
    """The snapshot before the stages run (None: not checked)."""
    try:
        return snapshot.take(project)
    except OSError:
        return None


def warn(before: snapshot.Snapshot | None, project: ProjectDir,
         record: RunRecord | Callable[[], RunRecord | None] | None, reporter: Reporter) -> list[str]:
    """Compare with ``before`` and warn once naming the written paths; returns them (for tests).

    ``record`` may be a function that reads it: it is read only when something was written."""
    if before is None:
        return []
    try:
        written = snapshot.changed(before, snapshot.take(project) or {})
    except OSError:
        return []
    if not written:
        return []
    paths = list(written)
    shown = ", ".join(paths[:_SHOWN]) + (f" and {len(paths) - _SHOWN} more" if len(paths) > _SHOWN else "")
    who = _writers(written, record() if callable(record) else record)
    subject = f"stage {', '.join(who)}" if who else "stage code"
    reporter.line(f"orchestra: warning: {subject} wrote into the project directory {project.path}: {shown}; "
                  "these count as project code, so the next run sees changed code and runs every stage again "
                  "(write outputs under {outputs} / $ORCHESTRA_OUTPUT_DIR, or list the paths in .orchestraignore)")
    return paths


def _writers(written: Mapping[str, int | None], record: RunRecord | None) -> list[str]:
    if record is None:
        return []
    spans = [(s.name, s.start_time, s.end_time) for s in record.stages if s.start_time and s.loaded_from is None]
    names: dict[str, None] = {}
    for mtime_ns in written.values():
        for name, start, end in spans:
            if mtime_ns is None:
                continue
            at = mtime_ns / 1e9
            if start - _SLACK_S <= at <= (end or at) + _SLACK_S:
                names[name] = None
    return list(names)
