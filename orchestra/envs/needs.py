"""The optional packages a cold environment build needs, checked before the work starts.

A warm environment (built before, reused by key) needs none of them. Building one does: py-rattler
solves and installs conda packages (unless ``ORCHESTRA_CONDA_EXE`` names an installer), uv builds a
python_env and locks a conda.yaml's ``pip:`` section, conda-lock writes ``conda-lock.yml``. They
come with the extras ``orchestra[conda]`` (py-rattler, conda-lock, uv) and ``orchestra[python-env]``
(uv); a missing one fails here as one line naming the spec, what needs it and the extra, exit 2,
like ``mlflow run`` on a conda project without conda saying how to get conda.
"""

from __future__ import annotations

from orchestra.core import extras

LOCAL = "or run in the current environment with --env-manager local"


def rattler(where: str, doing: str) -> None:
    """py-rattler for ``doing`` (solving or installing a conda environment). It is imported only by
    the short-lived worker process (rattler_worker.py), so here it is looked up, not imported."""
    if not extras.installed("rattler"):
        raise extras.missing("rattler", doing, where=where, alternative=LOCAL)


def uv(where: str, doing: str, *, extra: str = "python-env") -> None:
    """uv (the package's binary, or ``uv`` on PATH) for ``doing``."""
    from orchestra.envs import uvtool  # the uv caller, loaded by cold builds only

    if uvtool.find_uv() is None:
        raise extras.missing("uv", doing, where=where, extra=extra, alternative=f"put uv on PATH, {LOCAL}")


def conda_lock(where: str) -> None:
    """conda-lock, which writes the lock files (checked before solving, not after)."""
    if not extras.installed("conda_lock"):
        raise extras.missing("conda_lock", "writing conda-lock.yml", where=where)
