"""``api.run`` behind the scenes: fetch → load → build → plan → drive → record (DESIGN §1)."""

from __future__ import annotations

import getpass
import os
import re
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from orchestra import envs, events, graph as graphmod, plan as planmod, source
from orchestra.api import RunOptions, RunResult
from orchestra.console import Console
from orchestra.engine import FAILED, FINISHED, KILLED, LOADED, SKIPPED, drive
from orchestra.errors import (EXIT_FAILED, EXIT_INTERRUPTED, NotSupportedError, ParamError, RunNotFoundError,
                              SpecError)
from orchestra.executors.base import StageTask, TaskOutcome, latest_metrics
from orchestra.home import home_path
from orchestra.spec import load as specload
from orchestra.spec import params as paramsmod
from orchestra.spec.model import ProjectSpec, StageSpec
from orchestra.store import runs as runstore

_EVENT_STATUS = {FINISHED: events.SUCCESS, FAILED: events.FAILED, SKIPPED: events.SKIPPED, LOADED: events.LOADED,
                 KILLED: events.KILLED}


@dataclass(frozen=True, slots=True)
class Prepared:
    """A project resolved up to its plan: everything ``run`` and ``plan`` share."""

    project: source.ProjectDir
    spec: ProjectSpec
    graph: graphmod.StageGraph
    targets: tuple[str, ...]
    params: Mapping[str, paramsmod.StageParams]
    environments: Mapping[str, envs.Environment | None]
    inputs: Mapping[str, planmod.StageInputs]
    options: planmod.PlanOptions
    plan: planmod.Plan


def prepare(uri: str, options: RunOptions, *, build_envs: bool) -> Prepared:
    """Fetch, load, select, resolve params and environments, and plan. Raises BadInputError."""
    project = source.fetch(uri, options.version)
    try:
        return _prepare(project, options, build_envs=build_envs)
    except BaseException:
        project.cleanup()
        raise


def _prepare(project: source.ProjectDir, options: RunOptions, *, build_envs: bool) -> Prepared:
    spec = specload.load(project.path)
    targets = tuple(dict.fromkeys(options.entry_points)) or _default_targets(spec)
    implicit = []
    for target in targets:
        if target not in spec.entry_points:
            stage = specload.implicit_stage(project.path, target)
            if stage is None:
                raise SpecError(
                    f"unknown entry point '{target}'", where=spec.display_file,
                    hint=("entry points: " + ", ".join(spec.entry_points)) if spec.entry_points
                    else "the project has no MLproject: name a .py or .sh file with -e",
                )
            implicit.append(stage)
    full = graphmod.build(spec, implicit)
    graph = full.subgraph(graphmod.select(full, targets))
    stages = [graph.stages[name] for name in graph.order]
    assignments = paramsmod.parse_assignments(options.params, graph.order)
    allow_extras = len(stages) == 1 and not spec.is_pipeline
    paramsmod.check_unused(assignments, stages, allow_extras)
    cwd = Path.cwd()
    params = {s.name: paramsmod.resolve(s, assignments, cwd=cwd, project_root=project.path, allow_extras=allow_extras)
              for s in stages}
    for name in options.force:
        if name not in graph.stages:
            raise ParamError(f"--force {name}: not a selected stage", hint=f"selected: {', '.join(graph.order)}")
    environments = _environments(spec, stages, project.path, options, build=build_envs)
    load_from = None
    if options.load_from:
        load_from = _resolve_load_from(options)
        for name in options.load_stages:
            if name not in graph.stages:
                raise RunNotFoundError(f"--load-stages {name}: not a selected stage",
                                       hint=f"selected: {', '.join(graph.order)}")
            if runstore.stage_of(load_from, name) is None:
                record = runstore.get_run(load_from)
                valid = [s["name"] for s in record["stages"] if s["status"] in runstore.REUSABLE]
                raise RunNotFoundError(f"--load-stages {name}: run {load_from[:8]} has no finished stage '{name}'",
                                       hint="stages with outputs: " + (", ".join(valid) or "none"))
    elif options.load_stages:
        raise ParamError("--load-stages needs --load-from RUN_ID")
    inputs = {}
    for stage in stages:
        env = environments[stage.name]
        p = params[stage.name]
        inputs[stage.name] = planmod.StageInputs(
            name=stage.name, command=stage.command, params=p, env_key=env.key if env else None,
            code_digest=project.code_digest,
            path_inputs={path: _path_digest(path) for path in p.path_files}, cache=stage.cache,
        )
    plan_options = planmod.PlanOptions(no_cache=options.no_cache, force=frozenset(options.force),
                                       load_from=load_from, load_stages=frozenset(options.load_stages))
    the_plan = planmod.plan(graph, inputs, plan_options, planmod.LiveStoreView(project.uri))
    return Prepared(project, spec, graph, targets, params, environments, inputs, plan_options, the_plan)


def _resolve_load_from(options: RunOptions) -> str:
    if options.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI"):  # may be an MLflow run id (issue 8)
        from orchestra import tracking

        return tracking.resolve_load_from(options.load_from or "", options)
    return runstore.resolve_run_id(options.load_from or "")


def _default_targets(spec: ProjectSpec) -> tuple[str, ...]:
    if spec.is_pipeline:
        return tuple(spec.entry_points)
    return ("main",)


def _path_digest(path: str) -> str:
    from orchestra import fingerprint

    return fingerprint.path_digest(path)


def _environments(spec: ProjectSpec, stages: Sequence[StageSpec], root: Path, options: RunOptions,
                  *, build: bool) -> dict[str, envs.Environment | None]:
    """Resolve each distinct environment once, in parallel when several need building."""
    if options.env_manager is not None and options.env_manager not in envs.ENV_MANAGERS:
        raise ParamError(f"--env-manager {options.env_manager}: unknown", hint=f"one of {', '.join(envs.ENV_MANAGERS)}")
    wanted = {}
    for stage in stages:
        env_spec = spec.env_for(stage)
        if env_spec is not None and env_spec.kind == "docker" and options.env_manager != "local":
            raise NotSupportedError("docker_env is not supported yet", where=env_spec.declared_at,
                                    hint="run it with --env-manager local, or use conda_env/python_env")
        wanted[stage.name] = env_spec
    distinct = list(dict.fromkeys(wanted.values()))
    resolve = envs.ensure if build else envs.peek
    if len(distinct) > 1 and build:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(4, len(distinct))) as pool:
            built = dict(zip(distinct, pool.map(lambda s: resolve(s, project_root=root, env_manager=options.env_manager), distinct)))
    else:
        built = {s: resolve(s, project_root=root, env_manager=options.env_manager) for s in distinct}
    return {name: built[env_spec] for name, env_spec in wanted.items()}


def plan_only(uri: str, options: RunOptions) -> Prepared:
    """The plan, without running, building or writing anything."""
    prepared = prepare(uri, options, build_envs=False)
    prepared.project.cleanup()
    return prepared


def run(uri: str, options: RunOptions) -> RunResult:
    console = Console(quiet=options.quiet)
    runstore.reap_stale_runs()
    prepared = prepare(uri, options, build_envs=not options.dry_run)
    try:
        if options.dry_run:
            for decision in prepared.plan.stages:
                console.line(planmod.describe(decision))
            return RunResult(None, "PLANNED", 0, {"plan": prepared.plan.to_json()})
        return _execute(prepared, options, console)
    finally:
        prepared.project.cleanup()


def _safe(name: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    if safe != name:
        import hashlib

        safe += "-" + hashlib.sha256(name.encode()).hexdigest()[:6]
    return safe


def _env_suffix(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", name).upper()


class RunDriver:
    """The engine's view of one run: decisions, tasks, loading, and recording every change."""

    def __init__(self, run_id: str, prepared: Prepared, options: RunOptions, console: Console,
                 bus: events.EventBus) -> None:
        self.run_id = run_id
        self.prepared = prepared
        self.options = options
        self.console = console
        self.bus = bus
        self.run_dir = home_path("runs", run_id)
        self.view = planmod.LiveStoreView(prepared.project.uri)
        self.planned = {decision.name: decision for decision in prepared.plan.stages}
        self._deferred: list[tuple[str, dict[str, Any]]] = []
        self._commands: dict[str, str] = {}
        # Computed once: a long chain asks for every ancestor's paths at every stage.
        self.stage_dirs = {name: self.run_dir / _safe(name) for name in prepared.graph.order}
        self.out_strs = {name: str(path / "out") for name, path in self.stage_dirs.items()}
        self.input_vars = {name: f"ORCHESTRA_INPUT_{_env_suffix(name)}" for name in prepared.graph.order}
        self.counts = {"PENDING": len(prepared.graph.order)}
        self.console.total = len(prepared.graph.order)
        self.started_at: dict[str, float] = {}
        self.manifests: dict[str, Mapping[str, Any]] = {}  # finished/loaded stage → its manifest
        self.loaded = 0
        self.ran = 0
        project = prepared.project
        self.project_info = {"uri": project.uri, "commit": project.commit, "entry_point": ",".join(prepared.targets)}
        self.run_params = _run_params(prepared)
        self.tags = _run_tags(prepared, options)
        self.base_env = {**os.environ, **options.extra_env, "ORCHESTRA_RUN_ID": run_id, "PYTHONUNBUFFERED": "1"}
        # Listeners that give each stage variables (the MLflow mirror: MLFLOW_RUN_ID of its child run).
        self.env_providers = [listener.stage_env for listener in bus.listeners if hasattr(listener, "stage_env")]

    def stage_dir(self, name: str) -> Path:
        return self.stage_dirs[name]

    def outputs_dir(self, name: str) -> Path:
        return self.stage_dirs[name] / "out"

    def _count(self, old: str | None, new: str) -> None:
        if old:
            self.counts[old] = max(0, self.counts.get(old, 0) - 1)
        self.counts[new] = self.counts.get(new, 0) + 1
        self.console.set_counts(self.counts)

    def _event(self, name: str, **fields: Any) -> None:
        fields.setdefault("params", self.run_params)
        fields.setdefault("tags", self.tags)
        self.bus.publish(events.Event(name=name, run_id=self.run_id, experiment=self.options.experiment,
                                      project=self.project_info, **fields))

    # -- Driver protocol ---------------------------------------------------------------
    def decide(self, name: str, upstream: Mapping[str, str]) -> planmod.StagePlan:
        planned = self.planned[name]
        # The plan's decision stands when it was final and the upstream outputs are the ones it
        # assumed; otherwise (an upstream stage ran, or failed to load) decide again now.
        if planned.final and (planned.trusted or (planned.components or {}).get("upstream") == dict(upstream)):
            return planned
        return planmod.decide(self.prepared.inputs[name], upstream, self.prepared.options, self.view)

    def task(self, name: str, attempt: int, decision: planmod.StagePlan) -> StageTask:
        stage = self.prepared.graph.stages[name]
        sdir = self.stage_dir(name)
        inputs = {parent: self.out_strs[parent] for parent in self.prepared.graph.ancestors(name)}
        staging = sdir / f".staging-{attempt}"
        command = paramsmod.render(stage, self.prepared.params[name], outputs=str(staging), inputs=inputs)
        env = dict(self.base_env)
        environment = self.prepared.environments[name]
        if environment is not None:
            env = environment.apply(env)
        overlay = {**self.options.extra_env, "ORCHESTRA_RUN_ID": self.run_id, "PYTHONUNBUFFERED": "1",
                   "ORCHESTRA_STAGE": name, "ORCHESTRA_OUTPUT_DIR": str(staging), "ORCHESTRA_ATTEMPT": str(attempt),
                   "ORCHESTRA_METRICS_FILE": str(sdir / "tracking.jsonl")}
        for parent, path in inputs.items():
            overlay[self.input_vars[parent]] = path
        env.update((k, v) for k, v in overlay.items() if k.startswith("ORCHESTRA_"))
        for provide in self.env_providers:  # MLFLOW_RUN_ID & co. of the stage's mirrored run
            provided = provide(name, decision)
            env.update(provided)
            overlay.update(provided)
        self._commands[name] = command
        return StageTask(
            run_id=self.run_id, stage=name, attempt=attempt, command=command, cwd=str(self.prepared.project.path),
            env=env, log_dir=str(sdir / "logs"), staging_dir=str(staging), outputs_dir=str(self.outputs_dir(name)),
            metrics_file=str(sdir / "tracking.jsonl"), declared_outputs=stage.outputs, timeout=stage.timeout,
            resources=dict(stage.resources), overlay_env=overlay, env_spec=self.prepared.spec.env_for(stage),
            env_manager=self.options.env_manager, input_dirs=inputs,
            input_manifests={parent: self.manifests.get(parent, {}) for parent in inputs},
        )

    def load(self, decision: planmod.StagePlan) -> str | None:
        from orchestra.store import artifacts

        assert decision.source is not None
        result = artifacts.load(decision.source.manifest, self.outputs_dir(decision.name))
        if not result.ok:
            self.console.stage_line(decision.name, f"cannot load outputs of run {decision.source.run_id[:8]}: "
                                                   f"{result.problem}; running it again")
        return result.problem

    def flush(self) -> None:
        """Write deferred LOADED records (batched: one transaction for a run of loads)."""
        if self._deferred:
            runstore.update_stages(self.run_id, self._deferred)
            self._deferred = []

    def started(self, name: str, attempt: int, decision: planmod.StagePlan) -> None:
        self.flush()
        now = time.time()
        self.started_at[name] = now
        environment = self.prepared.environments[name]
        runstore.update_stage(self.run_id, name, status="RUNNING", start_time=now, attempts=attempt,
                              cache_key=decision.key, components=decision.components,
                              env_key=environment.key if environment else None,
                              log_dir=str(self.stage_dir(name) / "logs"), command=self._commands.get(name))
        self.console.stage_running(name)
        if attempt == 1:
            self._count("PENDING", "RUNNING")
            why = "; ".join(decision.reasons)
            self.console.stage_line(name, self.console.color("started", "RUN") + (f" ({why})" if why else ""))
        else:
            self.console.stage_line(name, f"attempt {attempt} started")
        self._event(events.STAGE_STARTED, stage=name, attempt=attempt, cache_key=decision.key)

    def retrying(self, name: str, outcome: TaskOutcome) -> None:
        self.console.stage_line(name, f"attempt {outcome.attempt} {outcome.status}"
                                      f" ({outcome.message or ''}); retrying")
        self._event(events.STAGE_RETRYING, stage=name, attempt=outcome.attempt, exit_code=outcome.exit_code,
                    message=_last_line(outcome), status=events.FAILED)

    def ended(self, name: str, status: str, decision: planmod.StagePlan | None, outcome: TaskOutcome | None,
              message: str | None) -> None:
        now = time.time()
        self.console.stage_done(name)
        fields: dict[str, Any] = {"status": status, "end_time": now, "message": message}
        old = "RUNNING" if outcome is not None or name in self.started_at else "PENDING"
        if status == LOADED and decision and decision.source:
            src = decision.source
            self.loaded += 1
            fields.update(cache_key=decision.key, components=decision.components, manifest=src.manifest,
                          manifest_digest=src.manifest_digest, outputs_dir=str(self.outputs_dir(name)),
                          loaded_from_run=src.run_id, loaded_from_stage=src.stage, metrics=src.metrics,
                          start_time=now, env_key=(self.prepared.environments[name].key
                                                   if self.prepared.environments[name] else None))
            self.manifests[name] = src.manifest or {}
            trust = " (trusted by --load-stages)" if decision.trusted else ""
            self.console.stage_line(name, self.console.color("loaded", LOADED) + f" from run {src.run_id[:8]}{trust}")
        elif outcome is not None:
            self.ran += 1
            metrics = latest_metrics(outcome.metrics)
            fields.update(exit_code=outcome.exit_code, metrics=metrics, params=dict(outcome.params),
                          tags=dict(outcome.tags))
            if status == FINISHED:
                self.manifests[name] = outcome.manifest or {}
                fields.update(manifest=outcome.manifest, manifest_digest=outcome.manifest_digest,
                              outputs_dir=str(self.outputs_dir(name)))
            runstore.log_metrics(self.run_id, name, outcome.metrics)
            took = outcome.end_time - self.started_at.get(name, outcome.start_time)
            if status == FINISHED:
                self.console.stage_line(name, self.console.color("finished", FINISHED) + f" in {took:.2f}s")
            else:
                self._report_failure(name, status, outcome, took)
        else:
            self.console.stage_line(name, self.console.color(status.lower(), status) + (f" ({message})" if message else ""))
        if status == LOADED:
            self._deferred.append((name, fields))
        else:
            self.flush()
            runstore.update_stage(self.run_id, name, **fields)
        self._count(old, status)
        duration = (outcome.end_time - self.started_at.get(name, outcome.start_time)) if outcome else None
        self._event(events.STAGE_ENDED, stage=name, status=_EVENT_STATUS[status],
                    attempt=outcome.attempt if outcome else None, exit_code=outcome.exit_code if outcome else None,
                    duration_s=duration, message=_last_line(outcome) if status == FAILED and outcome else message,
                    loaded_from={"run_id": decision.source.run_id, "stage": decision.source.stage}
                    if status == LOADED and decision and decision.source else None,
                    cache_key=decision.key if decision else None)

    def _report_failure(self, name: str, status: str, outcome: TaskOutcome, took: float) -> None:
        self.console.stage_line(name, self.console.color(status, status) + f" after {took:.2f}s"
                                      + (f": {outcome.message}" if outcome.message else ""))
        if status == FAILED:
            for line in outcome.last_stderr[-10:]:
                self.console.line(f"[{name}] | {line}")
            self.console.line(f"[{name}] full log: {self.stage_dir(name) / 'logs' / 'stderr.log'}")


def _last_line(outcome: TaskOutcome | None) -> str | None:
    if outcome is None:
        return None
    for line in reversed(outcome.last_stderr):
        if line.strip():
            return line.strip()[:500]
    return outcome.message


def _run_tags(prepared: Prepared, options: RunOptions) -> dict[str, str]:
    project = prepared.project
    tags = {
        "mlflow.user": _user(), "mlflow.source.name": project.uri, "mlflow.source.type": "PROJECT",
        "mlflow.project.entryPoint": ",".join(prepared.targets),
        "mlflow.project.backend": "local" if options.executor in ("", "local") else options.executor.split(":", 1)[0],
        "mlflow.project.env": ",".join(sorted({e.kind for e in prepared.environments.values() if e})) or "local",
    }
    if project.commit:
        tags["mlflow.source.git.commit"] = project.commit
    if project.repo_url:
        tags["mlflow.source.git.repoURL"] = project.repo_url
    if project.branch:
        tags["mlflow.source.git.branch"] = project.branch
    if project.dirty is not None:
        tags["orchestra.source.git.dirty"] = str(project.dirty).lower()
    if prepared.options.load_from:
        tags["orchestra.loaded_from"] = prepared.options.load_from
    if prepared.options.load_stages:
        tags["orchestra.trusted_stages"] = ",".join(sorted(prepared.options.load_stages))
    tags.update(options.tags)
    return tags


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _run_params(prepared: Prepared) -> dict[str, str]:
    """Run-level params: ``name`` when every stage agrees on its value, else ``stage.name``."""
    seen: dict[str, set[str]] = {}
    for p in prepared.params.values():
        for key, value in p.text.items():
            seen.setdefault(key, set()).add(value)
    result: dict[str, str] = {}
    for stage, p in prepared.params.items():
        for key, value in p.text.items():
            result[key if len(seen[key]) == 1 else f"{stage}.{key}"] = value
        for key, value in p.extras:
            result[key] = value
    return result


def _listeners(prepared: Prepared, options: RunOptions, console: Console) -> list[events.Listener]:
    listeners: list[events.Listener] = []
    configured = (prepared.spec.hooks or options.hooks_uris or os.environ.get("ORCHESTRA_HOOKS_URI")
                  or os.environ.get("MLFLOW_HOOKS_URI"))
    if configured:  # importing the webhook machinery costs ~25 ms: only when hooks exist
        from orchestra import hooks

        listener = hooks.make_listener(prepared.spec.hooks, prepared.project, options)
        if listener is not None:
            listeners.append(listener)
    if options.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI"):  # MLflow mirror (issue 8)
        from orchestra import tracking

        mirror = tracking.make_listener(prepared, options)
        if mirror is not None:
            listeners.append(mirror)
    return listeners


def _execute(prepared: Prepared, options: RunOptions, console: Console) -> RunResult:
    from orchestra import executors, process

    listeners = _listeners(prepared, options, console)  # bad hook config fails before anything is stored
    graph = prepared.graph
    run_id = runstore.new_run_id()
    pgid_file = home_path("runs") / run_id / "pgids"  # the run directory is made once the run is stored
    # The executor is checked (reachable, resources satisfiable) before anything is stored.
    executor, jobs = executors.create(
        options.executor, jobs=options.jobs, pgid_file=pgid_file,
        sink_for=lambda name: (lambda stream, line: console.stage_line(name, line)) if not options.quiet else None,
        requests={name: graph.stages[name].resources for name in graph.order},
        probe=home_path("runs") / f".probe-{run_id}", project_dir=prepared.project.path)
    for environment in {e for e in prepared.environments.values() if e is not None and e.notice}:
        console.line(f"orchestra: note: {environment.notice}")
    bus = events.EventBus(listeners)
    runstore.create_run(run_id, experiment=options.experiment, project_uri=prepared.project.uri,
                        targets=prepared.targets, params=_run_params(prepared), tags=_run_tags(prepared, options),
                        stages=graph.order)
    driver = RunDriver(run_id, prepared, options, console, bus)
    for decision in prepared.plan.stages:
        for reason in decision.load_from_differences:
            console.stage_line(decision.name, f"cannot reuse run {prepared.options.load_from[:8]}: {reason}")
    counts = planmod.summarize(prepared.plan.stages)
    console.line(f"orchestra: run {run_id} · {len(graph.order)} stage(s) ({counts}) · {prepared.project.uri}")
    driver._event(events.RUN_STARTED, params=_run_params(prepared))
    watchdog = process.start_watchdog(pgid_file)
    started = time.monotonic()
    previous = _install_sigterm()
    try:
        result = drive(graph, driver, executor, jobs=jobs, keep_going=options.keep_going,
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
    bus.close(options.hooks_drain)
    code = {FINISHED: 0, FAILED: EXIT_FAILED, KILLED: EXIT_INTERRUPTED}[status]
    return RunResult(run_id, status, code, runstore.get_run(run_id))


def _resume_command(prepared: Prepared, options: RunOptions, run_id: str) -> str:
    import shlex

    parts = ["orchestra", "run", prepared.project.uri]
    if options.version:
        parts += ["--version", options.version]
    for target in options.entry_points:
        parts += ["-e", target]
    for param in options.params:
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
