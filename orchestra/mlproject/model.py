"""Frozen values describing an MLproject after validation."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from orchestra.core.errors import SpecError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal

    ParamType = Literal["string", "float", "int", "path", "uri", "bool"]
    EnvKind = Literal["conda", "python", "local", "docker"]

PARAM_TYPES: tuple[str, ...] = ("string", "float", "int", "path", "uri", "bool")
RESERVED_PARAMS: frozenset[str] = frozenset({"outputs", "inputs"})


@dataclass(frozen=True, slots=True)
class EnvSpec:
    """Where a stage's environment comes from.

    Attributes:
        kind: ``conda`` (conda.yaml or conda-lock.yml), ``python`` (python_env.yaml),
            ``local`` (the caller's environment), ``docker`` (a container of ``image``).
        file: absolute path of the spec file, when there is one (None for local, or for
            MLflow's "python env with no file" default).
        declared_at: where it came from, e.g. ``entry_points.train.conda_env`` or
            ``python_env.yaml (implicit)`` — used in messages.
        image: docker image (docker only).
        volumes: ``docker_env.volumes``, each passed as ``docker run -v`` (docker only).
        environment: ``docker_env.environment``: a ``(NAME, value)`` pair sets a variable, a bare
            ``NAME`` copies the caller's (docker only).
    """

    kind: EnvKind
    file: Path | None = None
    declared_at: str = ""
    image: str | None = None
    volumes: tuple[str, ...] = ()
    environment: tuple[str | tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Problem:
    """Why an entry point cannot run (MLflow, too, fails on it only when it runs it)."""

    message: str
    where: str
    hint: str | None = None

    def error(self) -> SpecError:
        return SpecError(self.message, where=self.where, hint=self.hint)


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """A declared parameter. ``default is None`` means required."""

    name: str
    type: ParamType = "string"
    default: Any = None

    @property
    def required(self) -> bool:
        return self.default is None


@dataclass(frozen=True, slots=True)
class StageSpec:
    """One entry point = one stage.

    Attributes:
        name: entry point name (for implicit entry points: the script path).
        command: the command template (Python ``str.format`` syntax).
        parameters: declared parameters, in file order.
        depends_on: names of upstream stages (orchestra).
        outputs: relative paths that must exist in the output dir after success (orchestra).
        cache: whether the stage's outputs may be loaded instead of rerun (orchestra).
        retries: extra attempts after a failure (orchestra).
        timeout: seconds before the stage is killed (orchestra).
        env: the stage's own environment, when it declares one (else the project's).
        resources: optional resource request, e.g. {"cpus": 2} (used by distributed executors).
        implicit: the stage is a ``.py``/``.sh`` file with no declared params (MLflow).
        problem: why the stage cannot run (no command, an undeclared placeholder): an error
            only when it is selected (None: it can run).
    """

    name: str
    command: str
    parameters: tuple[ParamSpec, ...] = ()
    depends_on: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    cache: bool = True
    retries: int = 0
    timeout: float | None = None
    env: EnvSpec | None = None
    resources: Mapping[str, Any] = field(default_factory=dict)
    implicit: bool = False
    problem: Problem | None = None

    def param(self, name: str) -> ParamSpec | None:
        for spec in self.parameters:
            if spec.name == name:
                return spec
        return None


@dataclass(frozen=True, slots=True)
class ProjectSpec:
    """A validated MLproject.

    Attributes:
        root: the project directory.
        spec_file: the MLproject file (None when the project has none: implicit entry points only).
        name: project name (None when not given, as in MLflow).
        entry_points: stage name → StageSpec, in file order.
        env: the project-level environment (explicit key or MLflow's implicit files); None = MLflow
            default (a bare environment of the current Python).
        hooks: the raw ``hooks`` mapping (validated by the schema; interpreted by
            orchestra.integrations.hooks).
        schedules: the raw ``schedules`` mapping (interpreted by orchestra.app.schedule).
        warnings: what MLflow accepts but orchestra reads leniently (unknown keys and types,
            entry points that cannot run), one line each; ``orchestra validate --strict`` refuses them.
    """

    root: Path
    spec_file: Path | None
    name: str | None
    entry_points: Mapping[str, StageSpec]
    env: EnvSpec | None = None
    hooks: Mapping[str, Any] = field(default_factory=dict)
    schedules: Mapping[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    @property
    def is_pipeline(self) -> bool:
        """True when any entry point declares ``depends_on`` (then the default target is all)."""
        return any(stage.depends_on for stage in self.entry_points.values())

    @property
    def display_file(self) -> str:
        return self.spec_file.name if self.spec_file else "MLproject"

    def env_for(self, stage: StageSpec) -> EnvSpec | None:
        """The stage's environment: its own, else the project's."""
        return stage.env if stage.env is not None else self.env
