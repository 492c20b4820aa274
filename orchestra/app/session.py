"""One run, composed: ``api.run`` and the scheduler's run process both call :func:`run`.

Prepare (fetch → load → graph → params → environments → plan), then, unless it is a dry run,
the one place that wires a run together: the run id, the listeners (webhooks, MLflow mirror),
the executor, the event bus with the run's recorder and console reporter first on it, the
engine's driver; then the engine runs and the run ends (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Sequence

from orchestra.core.digest import sha256
from orchestra.app import firstrun, mirror_report, project_writes, reaper
from orchestra.app.console import Console
from orchestra.app.driver import EventDriver
from orchestra.app.identity import identify
from orchestra.app.prepare import prepare
from orchestra.app.recorder import RunRecorder
from orchestra.app.reporting import ConsoleReporter
from orchestra.core import collector, events, settings, tracking_uri
from orchestra.core.errors import EXIT_FAILED, EXIT_INTERRUPTED
from orchestra.core.layout import RunLayout, home_path
from orchestra.core.options import RunOptions
from orchestra.core.records import RunResult
from orchestra.core.status import RunStatus, run_event
from orchestra.execution import executors
from orchestra.execution.engine import drive
from orchestra.execution.task import StepSettings, TaskContext
from orchestra.integrations import hooks
from orchestra.integrations.endpoint import Endpoint, bind_host
from orchestra.planning import plan as planmod
from orchestra.planning.prepared import Prepared
from orchestra.store import runs as runstore
from orchestra.store.objects_lock import Hold

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["run"]

_EXIT_CODES = {RunStatus.FINISHED: 0, RunStatus.FAILED: EXIT_FAILED, RunStatus.KILLED: EXIT_INTERRUPTED}


def run(uri: str, options: RunOptions, *, console: Console | None = None,
        listeners: Sequence[events.Listener] = (), record: bool = True) -> RunResult:
    """Prepare, then drive the plan (or only print it with ``dry_run``) and record the run.

    Args:
        console: where progress goes (default: stderr, silent with ``options.quiet``).
        listeners: more listeners of the run's events, after the webhooks and the MLflow mirror.
        record: read the stored run back into the result (False: ``record`` is None; the CLI
            shows it only with ``--json``, and reading hundreds of stages back costs ~20 µs each).

    Raises:
        BadInputError: bad URI, MLproject, params, hooks or tracking options (exit 2); nothing is stored.
    """
    console = console or Console(quiet=options.quiet, color=options.color)
    _check_tracking(options)  # a bad tracking URI is exit 2 before anything is fetched or built
    reaper.reap_stale_runs()
    prepared = prepare(uri, options, build_envs=not options.execution.dry_run, progress=console)
    try:
        if options.execution.dry_run:
            for decision in prepared.plan.stages:
                console.line(planmod.describe(decision))
            return RunResult(None, RunStatus.PLANNED, 0, plan=prepared.plan.to_json())
        return _execute(prepared, options, console, extra=listeners, record=record)
    finally:
        prepared.project.cleanup()


def run_prepared(prepared: Prepared, options: RunOptions, *, console: Console, share: Any = None) -> RunResult:
    """Drive an already prepared run (a sweep member; ``share`` is the sweep's
    :class:`~orchestra.app.sweep_pool.SharedPool`) and clean up its checkout."""
    try:
        return _execute(prepared, options, console, share=share)
    finally:
        prepared.project.cleanup()


def check_tracking(options: RunOptions) -> None:
    """A bad tracking URI is exit 2 before anything is fetched or built."""
    _check_tracking(options)


def _check_tracking(options: RunOptions) -> None:
    if options.recording.tracking_uri or options.recording.mlflow_artifacts or settings.current().tracking_uri:
        from orchestra.integrations import tracking

        tracking.check_options(options)


def _listeners(prepared: Prepared, options: RunOptions, console: Console) -> list[events.Listener]:
    listeners: list[events.Listener] = []
    configured = prepared.spec.hooks or options.notification.hooks_uris or settings.current().hooks_uris
    if configured:  # importing the webhook machinery costs ~25 ms: only when hooks exist

        listener = hooks.make_listener(prepared.spec.hooks, prepared.project, options, reporter=console)
        if listener is not None:
            listeners.append(listener)
    if options.recording.tracking_uri or settings.current().tracking_uri:  # the MLflow mirror
        from orchestra.integrations import tracking

        mirror = tracking.make_listener(prepared, options, reporter=console)
        if mirror is not None:
            listeners.append(mirror)
    return listeners


def _execute(prepared: Prepared, options: RunOptions, console: Console, *,
             extra: Sequence[events.Listener] = (), share: Any = None, record: bool = True) -> RunResult:
    collector.resume()  # the program (orchestra/__main__.py) paused it through the imports and the planning
    listeners = [*_listeners(prepared, options, console), *extra]  # bad hook config fails before anything is stored
    graph = prepared.graph
    run_id = prepared.run_id or runstore.new_run_id()
    layout = RunLayout(home_path("runs") / run_id)  # not made yet: a bad executor leaves no trace
    # The executor is checked (reachable, resources satisfiable) before anything is stored.
    def sink_for(name: str) -> Any:
        return (lambda stream, line: console.stage_output(name, line)) if not options.quiet else None

    if share is not None:  # a sweep member: the sweep's one pool of workers
        executor, jobs = share.executor(run_id, pgid_file=layout.run_dir / "pgids", sink_for=sink_for)
    else:
        executor, jobs = executors.create(
            options.execution.executor, jobs=options.execution.jobs, pgid_file=layout.run_dir / "pgids",
            sink_for=sink_for, requests={name: graph.stages[name].resources for name in graph.order},
            probe=home_path("runs") / f".probe-{run_id}", project_dir=prepared.project.path)
    for environment in {e for e in prepared.environments.values() if e is not None and e.notice}:
        console.line(f"orchestra: note: {environment.notice}")
    home_path("runs", run_id)  # makes the run directory (stage directories and the pgid file go there)
    identity = identify(run_id, prepared, options)
    hold = Hold()  # the objects loaded stages reuse stay until the store names them (gc)
    recorder = RunRecorder(identity, targets=prepared.targets, stages=graph.order, hold=hold)
    reporter = ConsoleReporter(console, prepared, options, layout)
    bus = events.EventBus(listeners, essential=[recorder, reporter])
    context = TaskContext(
        run_id=run_id, layout=layout, project_dir=prepared.project.path,
        base_env={**os.environ, **options.execution.extra_env, "ORCHESTRA_RUN_ID": run_id, "PYTHONUNBUFFERED": "1"},
        extra_env=options.execution.extra_env, env_manager=options.execution.env_manager,
        steps=_step_settings(prepared, options))
    endpoint = Endpoint(identity.experiment, remote=_remote(options), host=bind_host(options.execution.executor))
    driver = EventDriver(prepared, context, identity, bus, notes=console, endpoint=endpoint, hold=hold,
                         env_providers=[listener for listener in listeners if events.provides_stage_env(listener)])
    if share is not None:
        driver = share.driver(driver, run_id)
    before = project_writes.take(prepared.project)
    bus.publish(identity.event(events.RUN_STARTED))
    try:
        status, failed, elapsed = _drive(prepared, options, driver, recorder, executor, jobs, layout)
    finally:
        endpoint.stop()
    project_writes.warn(before, prepared.project, lambda: runstore.get_run(run_id), console)
    bus.publish(identity.event(events.RUN_ENDED, status=run_event(status), duration_s=elapsed, run_status=status,
                               message=f"{failed} stage(s) failed" if failed else None,
                               metrics=runstore.run_metrics(run_id)))
    closing = time.monotonic()
    mirror_report.attach(run_id, layout.run_dir, listeners, console)  # only a mirrored run writes one
    bus.close(options.notification.hooks_drain)
    firstrun.tell(console, run_id)  # before the closing line, which stays the last
    reporter.finish(time.monotonic() - closing, [getattr(listener, "waits_for", "") for listener in listeners])
    stored = tracking_uri.store_notice(options.recording.tracking_uri, run_id)
    if stored:  # sqlite:, file:, … : nothing was mirrored; say how to
        console.notice(stored)
    return RunResult(run_id, status, _EXIT_CODES[status], runstore.get_run(run_id) if record else None)


def _step_settings(prepared: Prepared, options: RunOptions) -> StepSettings:
    """What stage code's steps may load in this run, and the project identity its state is kept under."""
    planned = prepared.options
    return StepSettings(loading=not planned.no_cache, force=frozenset(planned.force), load_from=planned.load_from,
                        load_steps=tuple(options.cache.load_steps),
                        project_key=sha256(prepared.project.uri.encode()).hexdigest()[:16])


def _remote(options: RunOptions) -> Any:
    """The http(s) tracking server reads of the endpoint fall back to (None: none configured)."""
    if not (options.recording.tracking_uri or settings.current().tracking_uri):
        return None
    from orchestra.integrations import tracking

    try:
        return tracking.configured(options.recording.tracking_uri)
    except tracking.TrackingURIError:
        return None


def _drive(prepared: Prepared, options: RunOptions, driver: EventDriver, recorder: RunRecorder, executor: Any,
           jobs: int, layout: RunLayout) -> tuple[RunStatus, int, float]:
    """Run the engine under the run's watchdog and signal handlers; return (status, failed stages, seconds)."""
    graph = prepared.graph
    pgid_file = layout.run_dir / "pgids"  # its watchdog starts with the first stage process
    started = time.monotonic()
    previous = _install_sigterm()
    try:
        result = drive(graph, driver, executor, jobs=jobs, keep_going=options.execution.keep_going,
                       retries={name: graph.stages[name].retries for name in graph.order})
    finally:
        recorder.flush()
        _restore_sigterm(previous)
        executor.close()  # stops the watchdog
        pgid_file.unlink(missing_ok=True)
    return RunStatus(result.status), len(result.failed), time.monotonic() - started


def _install_sigterm() -> Any:
    """SIGINT and SIGTERM both cancel the run (even when started in the background, where a
    shell leaves SIGINT ignored): the engine turns KeyboardInterrupt into KILLED stages."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    return {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}


install_sigterm = _install_sigterm  # a sweep's main thread cancels its members the same way


def _restore_sigterm(previous: Any) -> None:
    if previous is not None:
        for sig, old in previous.items():
            signal.signal(sig, old)


restore_sigterm = _restore_sigterm
