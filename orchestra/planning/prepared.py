"""A project resolved up to its plan: the value ``run`` and ``plan`` share, and listeners read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from orchestra import envs
from orchestra.mlproject import graph as graphmod
from orchestra.mlproject import params as paramsmod
from orchestra.mlproject.model import ProjectSpec
from orchestra.planning import plan as planmod
from orchestra.source.project import ProjectDir


@dataclass(frozen=True, slots=True)
class Prepared:
    """A project resolved up to its plan: everything ``run`` and ``plan`` share."""

    project: ProjectDir
    spec: ProjectSpec
    graph: graphmod.StageGraph
    targets: tuple[str, ...]
    params: Mapping[str, paramsmod.StageParams]
    environments: Mapping[str, envs.Environment | None]
    inputs: Mapping[str, planmod.StageInputs]
    options: planmod.PlanOptions
    plan: planmod.Plan
    run_id: str | None = None  # chosen early when remote ``path`` parameters were downloaded into the run
