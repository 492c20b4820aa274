"""One stage attempt as a :class:`StageTask`: its command rendered, its environment and paths set.

``build_task`` is the only place that decides what a stage process sees: the command with
``{outputs}`` / ``{inputs.X}`` filled in, the working directory, ``ORCHESTRA_*`` variables,
the stage environment's variables, and what listeners provide (``MLFLOW_RUN_ID`` & co.); for a
``docker_env`` stage, the ``docker run`` line around the command (``container.py``). Every
executor receives what it builds, so the local pool and a remote worker run the same thing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from _string import formatter_parser  # what string.Formatter().parse calls

from orchestra.core.layout import RunLayout, input_variable
from orchestra.execution.executors.base import StageTask
from orchestra.mlproject import params as paramsmod
from orchestra.mlproject.graph import StageGraph
from orchestra.mlproject.model import StageSpec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


@dataclass(frozen=True, slots=True)
class StepSettings:
    """What the run allows the steps of stage code (``orchestra.stage.managed_artifact(...,
    step=)``) to load.

    Attributes:
        loading: False with ``--no-cache``: every step is computed.
        force: stages whose steps are computed (``--force``).
        load_from: the run ``load_steps`` are taken from (resolved id).
        load_steps: steps loaded from ``load_from`` whatever their key (``--load-steps``).
        project_key: the project's identity (``persistent_dict`` keeps one store per project).
    """

    loading: bool = True
    force: frozenset[str] = frozenset()
    load_from: str | None = None
    load_steps: tuple[str, ...] = ()
    project_key: str | None = None

    def env(self, stage: str, base: str | None) -> dict[str, str]:
        """The ``ORCHESTRA_*`` variables of one stage's process."""
        env: dict[str, str] = {}
        if base:
            env["ORCHESTRA_STEP_BASE"] = base
        if not self.loading or stage in self.force:
            env["ORCHESTRA_STEP_LOADING"] = "off"
        if self.load_from and self.load_steps:
            env["ORCHESTRA_LOAD_FROM"] = self.load_from
            env["ORCHESTRA_LOAD_STEPS"] = ",".join(self.load_steps)
        if self.project_key:
            env["ORCHESTRA_PROJECT_KEY"] = self.project_key
        return env


@dataclass(frozen=True, slots=True)
class TaskContext:
    """What every task of one run shares.

    Attributes:
        run_id: the run.
        layout: where the run's stage directories are.
        project_dir: the stages' working directory.
        base_env: the caller's environment every stage starts from.
        extra_env: variables set for every stage (the scheduler's ``ORCHESTRA_SCHEDULE``, ...).
        env_manager: the ``--env-manager`` override, for workers that resolve environments.
        steps: what stage code's steps may load.
    """

    run_id: str
    layout: RunLayout
    project_dir: Path
    base_env: Mapping[str, str]
    extra_env: Mapping[str, str] = field(default_factory=dict)
    env_manager: str | None = None
    steps: StepSettings = field(default_factory=StepSettings)


# A stage is given every upstream stage (``ORCHESTRA_INPUT_<X>``, its input check) up to this many;
# past it (a long chain), its depends_on and the stages its command names (``{inputs.X}``), and
# ``ORCHESTRA_INPUTS_FILE`` lists every stage of the run for ``orchestra.stage.input_path``. Each
# variable costs every ``bash`` start (2,000 of them ~35 ms, 200 ~0.5 ms), and checking every
# ancestor's files at every stage made a chain quadratic; a far ancestor's objects are verified
# again when a later run loads them.
MAX_INPUT_VARIABLES = 64


def upstream_inputs(graph: StageGraph, name: str, outputs: Mapping[str, str]) -> tuple[dict[str, str], bool]:
    """The upstream stages ``name`` is given (stage → outputs directory), and whether there are
    more (past MAX_INPUT_VARIABLES: then only its depends_on and the ones its command names)."""
    upstream = graph.ancestors(name, limit=MAX_INPUT_VARIABLES)
    if len(upstream) <= MAX_INPUT_VARIABLES:
        return {parent: outputs[parent] for parent in upstream}, False
    stage = graph.stages[name]
    named = [field[len("inputs."):] for _, field, _, _ in formatter_parser(stage.command)
             if field and field.startswith("inputs.")]
    return {parent: outputs[parent] for parent in dict.fromkeys((*stage.depends_on, *named))
            if parent in outputs}, True


def write_inputs_file(path: Path, outputs: Mapping[str, str], parents: Mapping[str, Sequence[str]], *,
                      unlinked: Mapping[str, Mapping[str, Any]] = {}, objects: str = "") -> str:
    """Write the run's inputs file (JSON: stage → its outputs directory and depends_on),
    atomically; ``orchestra.stage.input_path`` reads it for upstream stages without a variable.

    Args:
        unlinked: loaded stages whose outputs directory is not linked yet → their manifest: their
            entries carry it and ``objects`` (the object store), so ``input_path`` links the
            directory (atomically) the first time stage code reads it.
    """
    data: dict[str, dict[str, Any]] = {name: {"outputs": out, "parents": list(parents.get(name, ()))}
                                       for name, out in outputs.items()}
    for name, manifest in unlinked.items():
        data[name].update(manifest=manifest, objects=objects)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)
    return str(path)


def build_task(context: TaskContext, stage: StageSpec, attempt: int, *, params: paramsmod.StageParams,
               environment: Any = None, env_spec: Any = None, inputs: Mapping[str, str] = {},
               input_manifests: Mapping[str, Mapping[str, Any]] = {},
               provided_env: Mapping[str, str] = {}, step_base: str | None = None,
               inputs_file: str | None = None) -> StageTask:
    """The StageTask of ``stage``'s attempt ``attempt``.

    Args:
        params: the stage's resolved parameters.
        environment: its built :class:`orchestra.envs.Environment` (None: the caller's).
        env_spec: the EnvSpec a remote worker resolves on its side.
        inputs: upstream stage → its published outputs directory (``upstream_inputs``).
        input_manifests: upstream stage → its outputs' manifest (remote workers fetch by it).
        provided_env: variables that listeners give this stage (the MLflow mirror's run ids).
        step_base: the stage's step base (``planning.fingerprint.step_base``), None when unknown.
        inputs_file: the run's file of every stage's outputs and parents (``write_inputs_file``),
            given as ``ORCHESTRA_INPUTS_FILE`` when ``inputs`` are not all the upstream stages.
    """
    layout = context.layout
    name = stage.name
    staging = str(layout.staging_dir(name, attempt))
    metrics_file = str(layout.metrics_file(name))
    command = paramsmod.render(stage, params, outputs=staging, inputs=inputs)
    env = dict(context.base_env)
    if environment is not None:
        env = environment.apply(env)
    overlay = {**context.extra_env, "ORCHESTRA_RUN_ID": context.run_id, "PYTHONUNBUFFERED": "1",
               "ORCHESTRA_STAGE": name, "ORCHESTRA_OUTPUT_DIR": staging, "ORCHESTRA_ATTEMPT": str(attempt),
               "ORCHESTRA_METRICS_FILE": metrics_file, **context.steps.env(name, step_base)}
    for parent, path in inputs.items():
        overlay[input_variable(parent)] = path
    if inputs_file:
        overlay["ORCHESTRA_INPUTS_FILE"] = inputs_file
    env.update((k, v) for k, v in overlay.items() if k.startswith("ORCHESTRA_"))
    env.update(provided_env)
    overlay.update(provided_env)
    cleanup: tuple[str, ...] = ()
    if environment is not None and environment.container is not None:
        from orchestra.execution import container as containermod  # (docker_env stages only)

        command, cleanup = containermod.wrap(
            environment.container, command, name=containermod.container_name(context.run_id, name, attempt),
            env=env, passed=[*overlay, *environment.env_vars], project_dir=str(context.project_dir),
            writable=[str(layout.stage_dir(name)), *containermod.tracking_paths(env)],
            readable=[*inputs.values(), *params.path_files])
    return StageTask(
        run_id=context.run_id, stage=name, attempt=attempt, command=command, cwd=str(context.project_dir),
        env=env, log_dir=str(layout.log_dir(name)), staging_dir=staging, outputs_dir=str(layout.outputs_dir(name)),
        metrics_file=metrics_file, declared_outputs=stage.outputs, timeout=stage.timeout,
        resources=dict(stage.resources), overlay_env=overlay, env_spec=env_spec,
        env_manager=context.env_manager, input_dirs=dict(inputs),
        input_manifests={parent: input_manifests.get(parent, {}) for parent in inputs}, cleanup=cleanup,
    )
