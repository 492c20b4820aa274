"""Stage environments: EnvSpec → a built, cached environment the stage process runs in.

``select()`` decides which kind of environment a stage gets (its own spec, the project's,
MLflow's rule, or the ``--env-manager`` override). ``ensure()`` returns a ready
:class:`Environment`, building it at most once per lock digest. ``peek()`` answers the same
without building or writing anything (for ``orchestra plan`` / ``--dry-run``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from orchestra.spec.model import EnvSpec

ENV_MANAGERS = ("local", "uv", "virtualenv", "conda")


@dataclass(frozen=True, slots=True)
class Environment:
    """A ready environment.

    Attributes:
        kind: ``local``, ``conda`` or ``python``.
        key: digest of the canonical lock and interpreter; a cache-key component.
        prefix: the environment's directory (None for local).
        env_vars: variables to set for the stage process (CONDA_PREFIX, VIRTUAL_ENV, ...).
        path_prepend: directories put first on PATH.
        description: one short line for logs, e.g. ``conda env 3f2a1b (envs/train.yaml)``.
        notice: a message to show once (e.g. an unsupported env replaced by local).
    """

    kind: str
    key: str
    prefix: Path | None = None
    env_vars: Mapping[str, str] = field(default_factory=dict)
    path_prepend: tuple[str, ...] = ()
    description: str = "local environment"
    notice: str | None = None


def local_environment(notice: str | None = None) -> Environment:
    """The caller's environment: keyed by the interpreter so a Python upgrade reruns stages."""
    version = ".".join(map(str, sys.version_info[:3]))
    return Environment(
        kind="local",
        key=f"local:{sys.executable}:{version}",
        description=f"local environment (python {version})",
        notice=notice,
    )


def ensure(spec: EnvSpec | None, *, project_root: Path, env_manager: str | None = None) -> Environment:
    """Return the ready environment for ``spec``, building it if needed.

    Until per-stage environments are implemented, every stage runs in the local environment and
    a notice says so.
    """
    if env_manager == "local" or spec is None or spec.kind == "local":
        return local_environment()
    return local_environment(
        notice=f"{spec.declared_at}: {spec.kind} environments are not built yet; running in the local environment"
    )


def peek(spec: EnvSpec | None, *, project_root: Path, env_manager: str | None = None) -> Environment | None:
    """The environment ``ensure`` would return, if known without building or solving; else None."""
    return ensure(spec, project_root=project_root, env_manager=env_manager)
