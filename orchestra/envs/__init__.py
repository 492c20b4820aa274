"""Stage environments: EnvSpec → a built, cached environment the stage process runs in.

``select()`` decides which kind of environment a stage gets (its own spec, the project's,
MLflow's rule, or the ``--env-manager`` override). ``ensure()`` returns a ready
:class:`Environment`, building it at most once per lock digest (across threads, processes and
machines sharing ``ORCHESTRA_HOME``). ``peek()`` answers the same without building or writing
anything (for ``orchestra plan`` / ``--dry-run``).

Modules: select.py (the rules), specfiles.py (conda.yaml / python_env.yaml), resolve.py (spec
digest → lock → key), store.py (prefixes, filelock, build-then-rename), conda.py (py-rattler or
an external conda executable), condalock.py (conda-lock.yml), venv.py + uvtool.py (uv),
docker_image.py (``docker_env``: the image checked, pulled or built on a docker engine).
Nothing heavy is imported here: rattler, conda-lock and uv are used inside functions.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from orchestra.core.options import ENV_MANAGERS
from orchestra.envs import docker_image, resolve, store
from orchestra.envs.docker_image import Container, DockerSettings
from orchestra.envs.select import Request, select
from orchestra.mlproject.model import EnvSpec

__all__ = ["ENV_MANAGERS", "Container", "DockerSettings", "Environment", "Request", "ensure", "local_environment",
           "peek", "select"]


@dataclass(frozen=True, slots=True)
class Environment:
    """A ready environment.

    Attributes:
        kind: ``local``, ``conda``, ``python`` or ``docker``.
        key: digest of the canonical lock and interpreter; a cache-key component.
        prefix: the environment's directory (None for local).
        env_vars: variables to set for the stage process (CONDA_PREFIX, VIRTUAL_ENV, ...).
        path_prepend: directories put first on PATH.
        description: one short line for logs, e.g. ``conda env 3f2a1b (envs/train.yaml)``.
        notice: a message to show once (e.g. packages dropped converting a conda.yaml for uv).
        unset: variables removed from the stage's environment (e.g. an outer VIRTUAL_ENV).
        built: whether this call built it (False: it was reused).
        container: for ``docker``: the image and how the stage's ``docker run`` is written
            (``env_vars`` then holds ``docker_env.environment``, passed into the container).
    """

    kind: str
    key: str
    prefix: Path | None = None
    env_vars: Mapping[str, str] = field(default_factory=dict, hash=False)
    path_prepend: tuple[str, ...] = ()
    description: str = "local environment"
    notice: str | None = None
    unset: tuple[str, ...] = ()
    built: bool = False
    container: Container | None = None

    def apply(self, base: Mapping[str, str]) -> dict[str, str]:
        """``base`` with this environment's variables, PATH entries and removals applied."""
        import os

        env = {k: v for k, v in base.items() if k not in self.unset}
        env.update(self.env_vars)
        if self.path_prepend:
            env["PATH"] = os.pathsep.join([*self.path_prepend, env.get("PATH", "")])
        return env


def local_environment(notice: str | None = None) -> Environment:
    """The caller's environment: keyed by the interpreter so a Python upgrade reruns stages."""
    version = ".".join(map(str, sys.version_info[:3]))
    return Environment(
        kind="local",
        key=f"local:{sys.executable}:{version}",
        description=f"local environment (python {version})",
        notice=notice,
    )


def _activation(kind: str, prefix: Path) -> tuple[dict[str, str], tuple[str, ...], tuple[str, ...]]:
    """(variables to set, PATH entries to prepend, variables to unset) for a stage in the env.

    What ``conda activate`` / ``source bin/activate`` would do, minus the shell: an outer venv
    or conda env must not leak into the stage (its ``python`` would shadow the env's).
    """
    bindir = (str(prefix / "bin"),)
    if kind == "python":
        return {"VIRTUAL_ENV": str(prefix)}, bindir, ("PYTHONHOME", "CONDA_PREFIX", "CONDA_DEFAULT_ENV")
    return ({"CONDA_PREFIX": str(prefix), "CONDA_DEFAULT_ENV": str(prefix), "CONDA_SHLVL": "1"}, bindir,
            ("VIRTUAL_ENV", "PYTHONHOME"))


def _activation_file(prefix: Path) -> dict[str, str]:
    """Variables the env's activate.d scripts set (recorded at build time; usually absent)."""
    import json

    try:
        with open(prefix / ".orchestra-activate.json") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    data.pop("PATH", None)  # the env's bin is prepended anyway; the build's PATH is not the stage's
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _environment(resolved: Mapping, prefix: Path | None, built: bool = False) -> Environment:
    kind, key = resolved["kind"], resolved["key"]
    variables, path, unset = _activation(kind, prefix) if prefix is not None else ({}, (), ())
    variables = {**(resolved.get("variables") or {}), **variables}
    if kind == "conda" and prefix is not None:
        variables.update(_activation_file(prefix))
    origin = resolved.get("from_lock") or resolved.get("shown") or ""
    return Environment(kind=kind, key=f"{kind}-{key}", prefix=prefix, env_vars=variables, path_prepend=path,
                       unset=unset, description=f"{kind} env {key[:12]} ({origin})", notice=resolved.get("notice"),
                       built=built)


def _docker_environment(container: Container, values: dict[str, str], built: bool,
                        notice: str | None = None) -> Environment:
    return Environment(kind="docker", key=f"docker-{container.image}", env_vars=values, notice=notice,
                       description=docker_image.description(container), built=built, container=container)


def ensure(spec: EnvSpec | None, *, project_root: Path, env_manager: str | None = None,
           update: bool = False, docker: DockerSettings | None = None) -> Environment:
    """Return the ready environment for ``spec``, building it if needed.

    A plain function, safe to call from any thread or process (a Dask worker, say): builds of one
    env are serialized by a filelock under ``ORCHESTRA_HOME/envs``; a warm call takes no lock.

    Args:
        spec: the stage's environment (``ProjectSpec.env_for(stage)``); None = MLflow's default.
        project_root: the MLproject directory (channel paths and ``-r`` files are relative to it).
        env_manager: ``--env-manager`` (local, uv, virtualenv, conda) or None.
        update: resolve again even when a cached resolution exists.
        docker: the run's docker options, for a ``docker_env`` (which wins over ``env_manager``,
            as in MLflow: a docker project never runs on the host).

    Raises:
        EnvError: bad spec file, unreachable channel, unsatisfiable specs, missing Python,
            hash mismatch of a locked package, no docker engine for a docker_env (all exit 2).
    """
    if spec is not None and spec.kind == "docker":
        container, values, built = docker_image.ensure(spec, docker or DockerSettings(), project_root)
        notice = (f"--env-manager {env_manager} does not apply to docker_env stages: they run in their image"
                  " (as with mlflow run)") if env_manager else None
        return _docker_environment(container, values, built, notice)
    request = select(spec, env_manager)
    if request.kind == "local":
        return local_environment()
    digest, resolved = resolve.cached(request, project_root)
    if resolved is None or update:
        resolved = resolve.resolve(request, project_root)
        store.write_resolved(digest, resolved)
    prefix, built = resolve.build(resolved)
    return _environment(resolved, prefix, built)


def peek(spec: EnvSpec | None, *, project_root: Path, env_manager: str | None = None,
         docker: DockerSettings | None = None) -> Environment | None:
    """The environment ``ensure`` would return, if known without building or solving; else None.

    Known means resolved before (the cache) or locked (a conda-lock.yml), or, for docker, an
    image the engine already has. Writes nothing.
    """
    if spec is not None and spec.kind == "docker":
        container = docker_image.peek(spec, docker or DockerSettings())
        return None if container is None else _docker_environment(container, {}, False)
    request = select(spec, env_manager)
    if request.kind == "local":
        return local_environment()
    _digest, resolved = resolve.cached(request, project_root, peek=True)
    if resolved is None and request.kind == "conda-lock":
        from orchestra.envs import condalock
        from orchestra.envs.conda import key_of
        from orchestra.envs.host import current_platform

        platform = current_platform()
        entries, pip_lock, _meta = condalock.read(request.file, project_root, platform)  # type: ignore[arg-type]
        resolved = {"kind": "conda", "key": key_of(platform, entries, pip_lock), "shown": str(request.file)}
    if resolved is None:
        return None
    prefix = store.root_peek() / f"{resolved['kind']}-{resolved['key']}"
    return _environment(resolved, prefix if store.is_valid(prefix) else None)
