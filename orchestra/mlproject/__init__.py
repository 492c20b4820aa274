"""MLproject → ProjectSpec: model (values), load (file → spec), params (CLI values → typed)."""

from orchestra.mlproject.model import EnvSpec, ParamSpec, ProjectSpec, StageSpec

__all__ = ["EnvSpec", "ParamSpec", "ProjectSpec", "StageSpec"]
