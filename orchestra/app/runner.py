"""``api.run`` behind the scenes: fetch → load → build → plan → drive → record (docs/ARCHITECTURE.md)."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

from orchestra.core import events
from orchestra.planning import plan as planmod
from orchestra.core.options import RunOptions
from orchestra.core.records import RunResult
from orchestra.app.console import Console
from orchestra.app.driver import RunDriver, run_params, run_tags
from orchestra.execution.engine import FAILED, FINISHED, KILLED, drive
from orchestra.core.errors import EXIT_FAILED, EXIT_INTERRUPTED
from orchestra.core.layout import home_path
from orchestra.app.prepare import plan_only, prepare
from orchestra.planning.prepared import Prepared
from orchestra.store import runs as runstore

__all__ = ["Prepared", "plan_only", "prepare", "run"]


def run(uri: str, options: RunOptions) -> RunResult:
    """Prepare, then drive the plan (or only print it with ``dry_run``) and record the run."""
    console = Console(quiet=options.quiet)
    _check_tracking(options)  # a bad tracking URI is exit 2 before anything is fetched or built
    runstore.reap_stale_runs()
    prepared = prepare(uri, options, build_envs=not options.execution.dry_run, progress=console)
    try:
        if options.execution.dry_run:
            for decision in prepared.plan.stages:
                console.line(planmod.describe(decision))
            return RunResult(None, "PLANNED", 0, {"plan": prepared.plan.to_json()})
        return _execute(prepared, options, console)
    finally:
        prepared.project.cleanup()


def _check_tracking(options: RunOptions) -> None:
    if options.recording.tracking_uri or options.recording.mlflow_artifacts or os.environ.get("MLFLOW_TRACKING_URI"):
        from orchestra.integrations import tracking

        tracking.check_options(options)


def _listeners(prepared: Prepared, options: RunOptions, console: Console) -> list[events.Listener]:
    listeners: list[events.Listener] = []
    configured = (prepared.spec.hooks or options.notification.hooks_uris or os.environ.get("ORCHESTRA_HOOKS_URI")
                  or os.environ.get("MLFLOW_HOOKS_URI"))
    if configured:  # importing the webhook machinery costs ~25 ms: only when hooks exist
        from orchestra.integrations import hooks

        listener = hooks.make_listener(prepared.spec.hooks, prepared.project, options, reporter=console)
        if listener is not None:
            listeners.append(listener)
    if options.recording.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI"):  # MLflow mirror (issue 8)
        from orchestra.integrations import tracking

        mirror = tracking.make_listener(prepared, options, reporter=console)
        if mirror is not None:
            listeners.append(mirror)
    return listeners


def _execute(prepared: Prepared, options: RunOptions, console: Console) -> RunResult:
    from orchestra.execution import executors
    from orchestra.execution import process

    listeners = _listeners(prepared, options, console)  # bad hook config fails before anything is stored
    graph = prepared.graph
    run_id = runstore.new_run_id()
    pgid_file = home_path("runs") / run_id / "pgids"  # the run directory is made once the run is stored
    # The executor is checked (reachable, resources satisfiable) before anything is stored.
    executor, jobs = executors.create(
        options.execution.executor, jobs=options.execution.jobs, pgid_file=pgid_file,
        sink_for=lambda name: (lambda stream, line: console.stage_line(name, line)) if not options.quiet else None,
        requests={name: graph.stages[name].resources for name in graph.order},
        probe=home_path("runs") / f".probe-{run_id}", project_dir=prepared.project.path)
    for environment in {e for e in prepared.environments.values() if e is not None and e.notice}:
        console.line(f"orchestra: note: {environment.notice}")
    bus = events.EventBus(listeners)
    runstore.create_run(run_id, experiment=options.recording.experiment, project_uri=prepared.project.uri,
                        targets=prepared.targets, params=run_params(prepared), tags=run_tags(prepared, options),
                        stages=graph.order)
    driver = RunDriver(run_id, prepared, options, console, bus)
    for decision in prepared.plan.stages:
        for reason in decision.load_from_differences:
            console.stage_line(decision.name, f"cannot reuse run {prepared.options.load_from[:8]}: {reason}")
    counts = planmod.summarize(prepared.plan.stages)
    console.line(f"orchestra: run {run_id} · {len(graph.order)} stage(s) ({counts}) · {prepared.project.uri}")
    driver._event(events.RUN_STARTED, params=run_params(prepared))
    watchdog = process.start_watchdog(pgid_file)
    started = time.monotonic()
    previous = _install_sigterm()
    try:
        result = drive(graph, driver, executor, jobs=jobs, keep_going=options.execution.keep_going,
                       retries={name: graph.stages[name].retries for name in graph.order})
    finally:
        driver.flush()
        _restore_sigterm(previous)
        executor.close()
        if watchdog is not None:
            watchdog.kill()
            watchdog.wait()
        pgid_file.unlink(missing_ok=True)
    status = result.status
    runstore.finish_run(run_id, status)
    elapsed = time.monotonic() - started
    console.close()
    summary = f"orchestra: run {run_id} {console.color(status, status)} in {elapsed:.2f}s ({driver.ran} ran, {driver.loaded} loaded)"
    console.line(summary)
    if status in (FAILED, KILLED):
        console.line(f"orchestra: to resume: {_resume_command(prepared, options, run_id)}")
    driver._event(events.RUN_ENDED, status={FINISHED: events.SUCCESS, FAILED: events.FAILED, KILLED: events.KILLED}[status],
                  duration_s=elapsed, message=f"{len(result.failed)} stage(s) failed" if result.failed else None)
    bus.close(options.notification.hooks_drain)
    code = {FINISHED: 0, FAILED: EXIT_FAILED, KILLED: EXIT_INTERRUPTED}[status]
    return RunResult(run_id, status, code, runstore.get_run(run_id))


def _resume_command(prepared: Prepared, options: RunOptions, run_id: str) -> str:
    import shlex

    parts = ["orchestra", "run", prepared.project.uri]
    if options.selection.version:
        parts += ["--version", options.selection.version]
    for target in options.selection.entry_points:
        parts += ["-e", target]
    for param in options.selection.params:
        parts += ["-P", param]
    parts += ["--load-from", run_id]
    return " ".join(shlex.quote(p) for p in parts)


def _install_sigterm() -> Any:
    """SIGINT and SIGTERM both cancel the run (even when started in the background, where a
    shell leaves SIGINT ignored): the engine turns KeyboardInterrupt into KILLED stages."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    return {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}


def _restore_sigterm(previous: Any) -> None:
    if previous is not None:
        for sig, old in previous.items():
            signal.signal(sig, old)
