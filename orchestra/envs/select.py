"""Which environment a stage gets: its EnvSpec, read through the ``--env-manager`` override.

MLflow's rules: ``--env-manager local`` runs everything in the caller's environment;
``virtualenv`` (served by uv here) and ``uv`` build a python env, converting a conda.yaml as
MLflow does; ``conda`` builds conda envs and refuses a python_env project, as MLflow does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from orchestra.core.errors import EnvError, NotSupportedError
from orchestra.mlproject.model import EnvSpec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Literal

    RequestKind = Literal["local", "conda", "conda-lock", "python", "python-from-conda", "python-bare"]

UV_MANAGERS = ("uv", "virtualenv")


@dataclass(frozen=True, slots=True)
class Request:
    """What to build. ``kind`` picks the backend; ``file`` is the spec (None for local/bare)."""

    kind: RequestKind
    file: Path | None = None
    declared_at: str = ""

    @property
    def env_kind(self) -> str:
        """The kind of the built env (and the prefix of its directory name)."""
        if self.kind.startswith("python"):
            return "python"
        return "local" if self.kind == "local" else "conda"


def select(spec: EnvSpec | None, env_manager: str | None = None) -> Request:
    """The build request for a stage whose declared (or implicit) environment is ``spec``."""
    if env_manager == "local":
        return Request("local")
    if spec is None:
        # MLflow's default for a project with no env file: the current Python, nothing installed.
        return Request("python-bare", declared_at="--env-manager") if env_manager in UV_MANAGERS else Request("local")
    if spec.kind == "local":
        return Request("local", declared_at=spec.declared_at)
    if spec.kind == "docker":  # ensure()/peek() take docker_env before asking for a build request
        raise NotSupportedError("a docker_env runs in its image: there is no host environment to build",
                                where=spec.declared_at, hint="orchestra run builds or pulls the image itself")
    assert spec.file is not None
    from orchestra.envs.condalock import is_conda_lock_file

    if spec.kind == "conda":
        locked = is_conda_lock_file(spec.file)
        if env_manager in UV_MANAGERS:
            if locked:
                raise EnvError(f"--env-manager {env_manager} cannot install a conda-lock file", where=spec.declared_at,
                               hint="use --env-manager conda, or point conda_env at the conda.yaml")
            return Request("python-from-conda", spec.file, spec.declared_at)
        return Request("conda-lock" if locked else "conda", spec.file, spec.declared_at)
    if env_manager == "conda":
        raise EnvError("a python_env project cannot be run with --env-manager conda (as in MLflow)",
                       where=spec.declared_at, hint="use --env-manager uv, virtualenv or local")
    return Request("python", spec.file, spec.declared_at)
