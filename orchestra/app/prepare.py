"""Fetch, load, select, resolve params and environments, and plan: what ``run`` and ``plan`` share."""

from __future__ import annotations

import gc
import shlex
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from orchestra import envs, source
from orchestra.app.console import Console
from orchestra.core import settings
from orchestra.core.errors import (
    NotSupportedError,
    ParamError,
    RunNotFoundError,
    SpecError,
)
from orchestra.core.options import RunOptions
from orchestra.core.report import STDERR
from orchestra.mlproject import graph as graphmod
from orchestra.mlproject import load as specload
from orchestra.mlproject import params as paramsmod
from orchestra.mlproject.model import EnvSpec, ProjectSpec, StageSpec
from orchestra.planning import fingerprint
from orchestra.planning import plan as planmod
from orchestra.planning.prepared import Prepared
from orchestra.store import runs as runstore


def prepare(uri: str, options: RunOptions, *, build_envs: bool,
            progress: Console | None = None) -> Prepared:
    """Fetch, load, select, resolve params and environments, and plan. Raises BadInputError."""
    project = source.fetch(uri, options.selection.version)
    collecting = gc.isenabled()
    # A large MLproject allocates hundreds of thousands of containers, none of them in a cycle:
    # the cyclic collector would walk them all again and again (a third of planning 100,000
    # stages). It runs as usual once this returns, and what planning allocated starts in the
    # oldest generation (freeze then unfreeze moves it there unscanned; the first young
    # collection would walk all of it), unless the process froze objects of its own.
    gc.disable()
    try:
        return _prepare(project, options, build_envs=build_envs, progress=progress)
    except BaseException:
        project.cleanup()
        raise
    finally:
        if collecting:
            if gc.get_freeze_count() == 0:
                gc.freeze()
                gc.unfreeze()
            gc.enable()


def _entry_hint(names: Iterable[str]) -> str:
    names = list(names)
    return f"entry points: {', '.join(names)}; run one with -e {shlex.quote(names[0])}"


def _prepare(project: source.ProjectDir, options: RunOptions, *, build_envs: bool,
             progress: Console | None = None) -> Prepared:
    spec = specload.load(project.path)
    targets = tuple(dict.fromkeys(options.selection.entry_points)) or _default_targets(spec)
    implicit = []
    for target in targets:
        if target not in spec.entry_points:
            stage = specload.implicit_stage(project.path, target)
            if stage is None:
                raise SpecError(
                    f"unknown entry point '{target}'", where=spec.display_file,
                    hint=_entry_hint(spec.entry_points) if spec.entry_points
                    else "the project has no MLproject: name a .py, .sh or .R file with -e",
                )
            implicit.append(stage)
    full = graphmod.build(spec, implicit)
    graph = full.subgraph(graphmod.select(full, targets))
    graphmod.check_runnable(graph)
    stages = [graph.stages[name] for name in graph.order]
    assignments = paramsmod.parse_assignments(options.selection.params, graph.order)
    allow_extras = len(stages) == 1 and not spec.is_pipeline
    paramsmod.check_unused(assignments, stages, allow_extras)
    cwd = Path.cwd()
    params = {s.name: paramsmod.resolve(s, assignments, cwd=cwd, project_root=project.path, allow_extras=allow_extras,
                                        confine_to=project.confine_to, type_check=options.selection.type_check)
              for s in stages}
    for name in options.cache.force:
        if name not in graph.stages:
            raise ParamError(f"--force {name}: not a selected stage", hint=f"selected: {', '.join(graph.order)}")
    if options.execution.env_manager == "virtualenv" and progress is not None:
        progress.notice("--env-manager virtualenv: python environments are built with uv here, as with --env-manager uv")
    docker = envs.DockerSettings(build_image=options.execution.build_image, args=tuple(options.execution.docker_args),
                                 project_name=spec.name, code_digest=project.code_digest)
    environments = _environments(spec, stages, project.path, options, build=build_envs, progress=progress,
                                 docker=docker)
    load_from = None
    if options.cache.load_from:
        load_from = _resolve_load_from(options, download=build_envs, reporter=progress)
        for name in options.cache.load_stages:
            if name not in graph.stages:
                raise RunNotFoundError(f"--load-stages {name}: not a selected stage",
                                       hint=f"selected: {', '.join(graph.order)}")
            if runstore.stage_of(load_from, name) is None:
                record = runstore.get_run(load_from)
                valid = [s.name for s in record.stages if s.status.has_outputs]
                raise RunNotFoundError(f"--load-stages {name}: run {load_from[:8]} has no finished stage '{name}'",
                                       hint="stages with outputs: " + (", ".join(valid) or "none"))
    run_id, remote_digests = None, {}
    if any(p.remote_paths for p in params.values()):
        from orchestra.app import remote_params  # downloads stay off a plain run's path

        run_id, remote = remote_params.resolve(params, options, download=build_envs, reporter=progress)
        params, remote_digests = dict(remote.params), remote.digests
    inputs = {}
    for stage in stages:
        env = environments[stage.name]
        p = params[stage.name]
        path_inputs = {path: _path_digest(path) for path in p.path_files} if p.path_files else {}
        if remote_digests:
            path_inputs.update(remote_digests.get(stage.name, {}))
        inputs[stage.name] = planmod.StageInputs(
            name=stage.name, command=stage.command, params=p, env_key=env.key if env else None,
            code_digest=project.code_digest, path_inputs=path_inputs, cache=stage.cache,
        )
    plan_options = planmod.PlanOptions(no_cache=options.cache.no_cache, force=frozenset(options.cache.force),
                                       load_from=load_from, load_stages=frozenset(options.cache.load_stages))
    the_plan = planmod.plan(graph, inputs, plan_options, planmod.LiveStoreView(project.uri))
    return Prepared(project, spec, graph, targets, params, environments, inputs, plan_options, the_plan, run_id)


def _resolve_load_from(options: RunOptions, *, download: bool, reporter: Console | None = None) -> str:
    if options.recording.tracking_uri or settings.current().tracking_uri:  # it may be an MLflow run id
        from orchestra.integrations import tracking

        return tracking.resolve_load_from(options.cache.load_from or "", options, download=download,
                                          reporter=reporter or STDERR)
    return runstore.resolve_run_id(options.cache.load_from or "")


def _default_targets(spec: ProjectSpec) -> tuple[str, ...]:
    if spec.is_pipeline:
        return tuple(spec.entry_points)
    return ("main",)


def _path_digest(path: str) -> str:
    return fingerprint.path_digest(path)


def _environments(spec: ProjectSpec, stages: Sequence[StageSpec], root: Path, options: RunOptions,
                  *, build: bool, progress: Console | None = None,
                  docker: envs.DockerSettings | None = None) -> dict[str, envs.Environment | None]:
    """Resolve each distinct environment once, in parallel when several need building."""
    wanted = {}
    for stage in stages:
        env_spec = spec.env_for(stage)
        if env_spec is not None and env_spec.kind == "docker" and options.execution.executor != "local":
            raise NotSupportedError("docker_env stages run with the local executor only", where=env_spec.declared_at,
                                    hint="drop --executor, or give the stage a conda_env/python_env")
        wanted[stage.name] = env_spec
    distinct = list(dict.fromkeys(wanted.values()))
    manager = options.execution.env_manager
    if not build:
        peeked = {s: envs.peek(s, project_root=root, env_manager=manager, docker=docker) for s in distinct}
        return {name: peeked[env_spec] for name, env_spec in wanted.items()}

    def resolve(env_spec: EnvSpec | None) -> envs.Environment:
        # A cold build can take a while (a conda solve): say so before, and how long after.
        started = time.monotonic()
        # (A docker image is checked by ensure itself: one call, no peek first.)
        peek = progress is not None and (env_spec is None or env_spec.kind != "docker")
        known = envs.peek(env_spec, project_root=root, env_manager=manager, docker=docker) if peek else None
        cold = progress is not None and (known is None or (known.prefix is not None and not known.prefix.exists()))
        if cold and env_spec is not None and progress is not None:
            progress.transient(f"orchestra: building environment ({env_spec.declared_at}) …")
        try:
            environment = envs.ensure(env_spec, project_root=root, env_manager=manager, docker=docker)
        finally:
            if cold and progress is not None:
                progress.clear()
        if cold and environment.built and progress is not None:
            progress.line(f"orchestra: built {environment.description} in {time.monotonic() - started:.1f}s")
        return environment

    if len(distinct) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(4, len(distinct))) as pool:
            built = dict(zip(distinct, pool.map(resolve, distinct)))
    else:
        built = {s: resolve(s) for s in distinct}
    return {name: built[env_spec] for name, env_spec in wanted.items()}


def plan_only(uri: str, options: RunOptions) -> Prepared:
    """The plan, without running, building or writing anything."""
    prepared = prepare(uri, options, build_envs=False)
    prepared.project.cleanup()
    return prepared
