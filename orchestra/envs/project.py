"""Project-level environment commands: create every env a project needs, lock its conda specs,
list and collect the store. What ``orchestra env ...`` calls."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from orchestra.core.errors import EnvError, SpecError
from orchestra.envs import Environment, ensure, needs, select, store
from orchestra.envs.specfiles import display, parse_conda
from orchestra.mlproject import load as specload
from orchestra.mlproject.model import EnvSpec


@dataclass(frozen=True, slots=True)
class ProjectEnv:
    """One distinct environment of a project and the stages that use it."""

    spec: EnvSpec | None
    stages: tuple[str, ...]


def project_envs(root: Path, entry_points: Sequence[str] = ()) -> list[ProjectEnv]:
    """The distinct environments of the project's (selected) entry points, in file order."""
    spec = specload.load(root)
    names = list(entry_points) or list(spec.entry_points)
    wanted: dict[EnvSpec | None, list[str]] = {}
    for name in names:
        stage = spec.entry_points.get(name)
        if stage is None:
            raise SpecError(f"unknown entry point '{name}'", where=spec.display_file,
                            hint="entry points: " + ", ".join(spec.entry_points))
        wanted.setdefault(spec.env_for(stage), []).append(name)
    if not names:
        wanted[spec.env] = []
    return [ProjectEnv(env_spec, tuple(stages)) for env_spec, stages in wanted.items()]


def create(root: Path, *, entry_points: Sequence[str] = (), env_manager: str | None = None,
           update: bool = False) -> list[tuple[ProjectEnv, Environment]]:
    """Build (or reuse) every environment the project needs, in parallel."""
    envs = project_envs(root, entry_points)

    def one(item: ProjectEnv) -> Environment:
        return ensure(item.spec, project_root=root, env_manager=env_manager, update=update)

    with ThreadPoolExecutor(max_workers=max(1, min(4, len(envs)))) as pool:
        return list(zip(envs, pool.map(one, envs)))


def lock(root: Path, *, entry_points: Sequence[str] = ()) -> list[Path]:
    """Solve each conda.yaml of the project and write its conda-lock.yml beside it."""
    from orchestra.envs import conda, condalock
    from orchestra.envs.host import current_platform

    written = []
    platform = current_platform()
    seen = set()
    for item in project_envs(root, entry_points):
        request = select(item.spec, "conda") if item.spec is not None and item.spec.kind == "conda" else None
        if request is None or request.kind != "conda" or request.file in seen:
            continue
        seen.add(request.file)
        spec = parse_conda(request.file, root)
        shown = display(request.file, root)
        where = request.declared_at or shown
        needs.conda_lock(where)
        needs.rattler(where, "solving a conda environment")
        if spec.pip:
            needs.uv(where, "locking the pip: section of a conda environment", extra="conda")
        entries = conda.solve(spec, shown, platform)
        resolved = conda.resolved_from(entries, spec.pip, root, shown, platform, spec.channels)
        path = condalock.lock_path_for(request.file)
        condalock.write(path, request.file, platform, entries, spec.channels, resolved["pip_lock"])
        written.append(path)
    if not written:
        raise EnvError("the project has no conda.yaml environment to lock",
                       hint="conda_env: must name a conda environment file (not a conda-lock file)")
    return written


@dataclass(frozen=True, slots=True)
class EnvGcReport:
    """What the environment garbage collector removed, swept and left because in use."""

    removed: tuple[str, ...]
    swept: int
    bytes: int
    busy: tuple[str, ...]


def gc(*, older_than_days: float = 30.0, remove_all: bool = False, dry_run: bool = False) -> EnvGcReport:
    """Delete envs unused for ``older_than_days`` (or all), and builds left by dead processes."""
    if older_than_days < 0:
        raise EnvError(f"--older-than {older_than_days}: must be 0 or more")
    cutoff = time.time() - older_than_days * 86400
    removed, busy = [], []
    freed = 0
    for env in store.published():
        if not remove_all and env.last_used >= cutoff:
            continue
        size = env.size()
        if dry_run:
            removed.append(env.name)
            freed += size
        elif store.remove(env):
            removed.append(env.name)
            freed += size
        else:
            busy.append(env.name)
    swept = 0 if dry_run else len(store.sweep()) + len(store.sweep_unmarked())
    return EnvGcReport(tuple(removed), swept, freed, tuple(busy))
