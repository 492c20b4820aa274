"""The console side of a run: :class:`Tally` counts stages, :class:`ConsoleReporter` writes the lines.

``ConsoleReporter`` is an essential listener on the run's bus (right after the recorder): one
line per stage change (started, loaded, finished, failed with its last stderr lines and its log
path), the counts on the live status line, the run's opening and closing lines.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from orchestra.app.console import Console
from orchestra.app.summary import StageSummary, table
from orchestra.core import events, invocation
from orchestra.core.layout import RunLayout
from orchestra.core.options import RunOptions
from orchestra.core.status import RunStatus, StageStatus
from orchestra.planning import plan as planmod
from orchestra.planning.prepared import Prepared


class Tally:
    """How many stages are in each status, and how many ran (to an outcome), loaded and were killed:
    the one count of a run."""

    def __init__(self, stages: Sequence[str]) -> None:
        self.total = len(stages)
        self.counts: dict[str, int] = {StageStatus.PENDING: self.total}
        self.ran = 0
        self.loaded = 0
        self.killed = 0
        self._started: set[str] = set()

    def count(self, event: events.Event) -> None:
        name = event.stage
        if name is None:
            return
        if event.name == events.STAGE_STARTED:
            if name not in self._started:
                self._started.add(name)
                self._move(StageStatus.PENDING, StageStatus.RUNNING)
        elif event.name == events.STAGE_ENDED and event.change is not None and event.change.status is not None:
            status = event.change.status
            self._move(StageStatus.RUNNING if name in self._started else StageStatus.PENDING, status)
            if status == StageStatus.KILLED:
                self.killed += 1  # it started, but a killed stage did not run to an outcome
            elif event.outcome is not None:
                self.ran += 1
            if status == StageStatus.LOADED:
                self.loaded += 1

    def _move(self, old: str, new: str) -> None:
        self.counts[old] = max(0, self.counts.get(old, 0) - 1)
        self.counts[new] = self.counts.get(new, 0) + 1


class ConsoleReporter:
    """Writes a run's progress on the console (see the module docstring).

    Args:
        console: where the lines go.
        prepared: the run's project and plan (its opening line, ``--load-from`` notes).
        options: the run's options (the resume command of a failed run).
        layout: the run's directories (the log path of a failed stage).
    """

    def __init__(self, console: Console, prepared: Prepared, options: RunOptions, layout: RunLayout) -> None:
        self.console = console
        self.prepared = prepared
        self.options = options
        self.layout = layout
        self.tally = Tally(prepared.graph.order)
        self.ended: dict[str, StageSummary] = {}
        self._closing: tuple[events.Event, RunStatus] | None = None
        console.total = self.tally.total

    def handle(self, event: events.Event) -> None:
        self.tally.count(event)
        if event.name == events.RUN_STARTED:
            self._run_started(event)
        elif event.name == events.RUN_ENDED:
            self._run_ended(event)
        elif event.stage is None:
            return
        elif event.name == events.STAGE_STARTED:
            self._stage_started(event.stage, event)
        elif event.name == events.STAGE_RETRYING and event.outcome is not None:
            outcome = event.outcome
            self.console.stage_line(event.stage, f"attempt {event.attempt} {outcome.status}"
                                                 f" ({outcome.message or ''}); retrying")
        elif event.name == events.STAGE_ENDED:
            self._stage_ended(event.stage, event)

    def close(self, drain_s: float) -> None:
        pass

    def _run_started(self, event: events.Event) -> None:
        prepared = self.prepared
        for decision in prepared.plan.stages:
            for reason in decision.load_from_differences:
                self.console.stage_line(decision.name, f"cannot reuse run {(prepared.options.load_from or '')[:8]}: "
                                                       f"{reason}")
        counts = planmod.summarize(prepared.plan.stages)
        self.console.line(f"orchestra: run {event.run_id} · {self.tally.total} stage(s) ({counts}) · "
                          f"{prepared.project.uri}")

    def _stage_started(self, name: str, event: events.Event) -> None:
        console = self.console
        console.stage_running(name)
        if event.attempt == 1:
            console.set_counts(self.tally.counts)
            why = "; ".join(event.reasons)
            console.stage_line(name, console.color("started", "RUN") + (f" ({why})" if why else ""))
        else:
            console.stage_line(name, f"attempt {event.attempt} started")

    def _stage_ended(self, name: str, event: events.Event) -> None:
        console = self.console
        change = event.change
        status = change.status if change is not None and change.status is not None else StageStatus.FAILED
        console.stage_done(name)
        outcome = event.outcome
        self.ended[name] = StageSummary(name, str(status), event.duration_s if outcome is not None else None,
                                        dict(change.metrics or {}) if change is not None else {})
        if status == StageStatus.LOADED and event.loaded_from:
            trust = " (trusted by --load-stages)" if event.trusted else ""
            console.stage_line(name, console.color("loaded", status) + f" from run {event.loaded_from['run_id'][:8]}{trust}")
        elif outcome is not None:
            took = event.duration_s or 0.0
            if status == StageStatus.FINISHED:
                console.stage_line(name, console.color("finished", status) + f" in {took:.2f}s")
            else:
                console.stage_line(name, console.color(status, status) + f" after {took:.2f}s"
                                   + (f": {outcome.message}" if outcome.message else ""))
                if status == StageStatus.FAILED:
                    for line in outcome.last_stderr[-10:]:
                        console.line(f"[{name}] | {line}")
                    console.line(f"[{name}] full log: {self.layout.log_dir(name) / 'stderr.log'}")
        else:
            message = change.message if change is not None else None
            console.stage_line(name, console.color(status.lower(), status) + (f" ({message})" if message else ""))
        console.set_counts(self.tally.counts)

    def _run_ended(self, event: events.Event) -> None:
        console = self.console
        status = event.run_status or RunStatus.FAILED
        console.close()
        order = self.prepared.graph.order
        rows = [self.ended.get(name) or StageSummary(name, "SKIPPED" if status != RunStatus.KILLED else "KILLED")
                for name in order]
        for text in table(rows, console.color, event.run_id):
            console.line(text)
        self._closing = (event, status)

    def finish(self, waited_s: float = 0.0, waited_for: Sequence[str] = ()) -> None:
        """The run's closing line, once its listeners are closed: ``waited_s`` is how long closing
        them took (the MLflow mirror or webhooks draining), said when it is noticeable."""
        if self._closing is None:
            return
        (event, status), self._closing = self._closing, None
        console, tally = self.console, self.tally
        what = " and ".join(dict.fromkeys(label for label in waited_for if label))
        waited = f" (+{waited_s:.1f}s waiting for {what})" if what and waited_s >= 0.05 else ""
        console.line(f"orchestra: run {event.run_id} {console.color(status, status)} in {event.duration_s or 0.0:.2f}s"
                     f"{waited} ({tally.ran} ran, {tally.loaded} loaded{f', {tally.killed} killed' if tally.killed else ''})")
        if status in (RunStatus.FAILED, RunStatus.KILLED):
            console.line(f"orchestra: to resume: {resume_command(self.prepared, self.options, event.run_id)}")


def resume_command(prepared: Prepared, options: RunOptions, run_id: str) -> str:
    """The ``orchestra run`` command that resumes ``run_id`` (``--load-from`` it): the run's own
    command line with every flag when it kept one (``orchestra run`` does), else rebuilt."""
    kept = invocation.read(options.recording.tags)
    if kept is not None:
        return invocation.line(invocation.resume_argv(kept[0], run_id))
    parts = ["orchestra", "run", prepared.project.uri]
    if options.selection.version:
        parts += ["--version", options.selection.version]
    for target in options.selection.entry_points:
        parts += ["-e", target]
    for param in options.selection.params:
        parts += ["-P", param]
    parts += ["--load-from", run_id]
    return " ".join(shlex.quote(p) for p in parts)
