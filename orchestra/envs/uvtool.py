"""Calling uv: where it is, the environment it runs with, Python discovery, lock and sync.

uv never downloads Python here (``UV_PYTHON_DOWNLOADS=never`` and ``--no-python-downloads``).
pyenv shims break uv's discovery of the versions they do not currently select, so discovery
runs with each pyenv version's ``bin`` on PATH instead of the shims.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Sequence

from orchestra.core import extras
from orchestra.core.errors import EnvError



@lru_cache(maxsize=1)
def find_uv() -> str | None:
    """The uv executable: the ``uv`` Python package's binary (``orchestra[python-env]``), else
    ``uv`` on PATH, else None."""
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except Exception:  # noqa: BLE001 - the package is optional when uv is on PATH
        return shutil.which("uv")


def uv_bin() -> str:
    """:func:`find_uv`, which callers checked first (``envs/needs.py``); a last guard otherwise."""
    found = find_uv()
    if found is None:
        raise extras.missing("uv", "building a python environment",
                             alternative="put uv on PATH, or run in the current environment with --env-manager local")
    return found


def _pyenv_bins() -> list[str]:
    roots = [os.environ.get("PYENV_ROOT"), str(Path.home() / ".pyenv")]
    for r in roots:
        if r and (Path(r) / "versions").is_dir():
            return [str(p / "bin") for p in sorted((Path(r) / "versions").iterdir()) if (p / "bin").is_dir()]
    return []


def uv_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["UV_PYTHON_DOWNLOADS"] = "never"
    env.pop("VIRTUAL_ENV", None)
    env.pop("CONDA_PREFIX", None)
    env.setdefault("UV_NO_PROGRESS", "1")
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p and not p.rstrip("/").endswith("/shims")]
    env["PATH"] = os.pathsep.join(path + _pyenv_bins())
    env.update(extra or {})
    return env


def run(args: Sequence[str], *, cwd: Path | None = None, input: str | None = None,
        what: str) -> subprocess.CompletedProcess[str]:
    """Run uv; a failure becomes an EnvError quoting uv's own error line."""
    proc = subprocess.run([uv_bin(), *args], cwd=cwd, input=input, capture_output=True, text=True, env=uv_env(),
                          start_new_session=False)
    if proc.returncode != 0:
        raise EnvError(f"{what} failed: {error_line(proc.stderr)}")
    return proc


def error_line(stderr: str) -> str:
    """uv's message, minus its decoration, on one line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    wanted = [re.sub(r"^(error|×|╰─▶|help|hint|Caused by):\s*", "", line) for line in lines
              if not line.startswith(("warning:", "Using ", "Resolved ", "Prepared ", "Installed ", "Audited "))]
    text = "; ".join(dict.fromkeys(w for w in wanted if w))
    return text[:600] or "no error output"


def find_python(request: str, *, where: str | None = None) -> tuple[str, str]:
    """``(path, version)`` of an installed interpreter matching ``request`` (uv's semantics:
    "3.11" matches any 3.11.x). Raises EnvError listing the versions found."""
    proc = subprocess.run(
        [uv_bin(), "python", "find", "--system", "--no-python-downloads", "--python-preference", "only-system",
         request], capture_output=True, text=True, env=uv_env())
    path = proc.stdout.strip().splitlines()[-1] if proc.returncode == 0 and proc.stdout.strip() else ""
    if not path:
        found = ", ".join(installed_versions()) or "none"
        raise EnvError(
            f"Python {request} is asked for, but no matching interpreter is installed on this machine "
            f"(found: {found}); orchestra never downloads Python", where=where,
            hint=f"install Python {request} (pyenv, your OS packages, or `uv python install {request}` where "
                 f"downloads are allowed) and re-run, or change 'python:'; uv said: {error_line(proc.stderr)}")
    return path, interpreter_version(path)


def installed_versions() -> list[str]:
    proc = subprocess.run(
        [uv_bin(), "python", "list", "--only-installed", "--python-preference", "only-system",
         "--output-format", "json"], capture_output=True, text=True, env=uv_env())
    try:
        entries = json.loads(proc.stdout or "[]")
    except ValueError:
        return []
    versions = {e.get("version") for e in entries if isinstance(e, dict) and e.get("version")}
    return sorted(versions, key=lambda v: tuple(int(x) if x.isdigit() else 0 for x in re.split(r"[.+a-z]", v)))


@lru_cache(maxsize=32)
def interpreter_version(path: str) -> str:
    proc = subprocess.run([path, "-c", "import sys; print('.'.join(map(str, sys.version_info[:3])))"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise EnvError(f"the interpreter {path} does not run: {error_line(proc.stderr)}")
    return proc.stdout.strip()


def compile_lock(requirements: Sequence[str], *, cwd: Path, python: str | None = None,
                 python_version: str | None = None, where: str) -> str:
    """``uv pip compile`` the requirement lines into a hashed, deterministic lock (text)."""
    if not requirements:
        return ""
    args = ["pip", "compile", "-", "--generate-hashes", "--no-header", "--no-annotate", "--no-python-downloads",
            "--quiet"]
    if python:
        args += ["--python", python]
    if python_version:
        args += ["--python-version", python_version, "--python-platform", "linux"]
    proc = subprocess.run([uv_bin(), *args], cwd=cwd, input="\n".join(requirements) + "\n", capture_output=True,
                          text=True, env=uv_env())
    if proc.returncode != 0:
        raise EnvError(f"cannot resolve the requirements {', '.join(requirements)}: {error_line(proc.stderr)}",
                       where=where)
    return proc.stdout


def sync(lock_text: str, python: Path, *, where: str) -> None:
    """Install exactly the lock into the environment of ``python`` (hashes required)."""
    if not lock_text.strip():
        return
    lock = python.parent.parent / ".orchestra-requirements.txt"
    lock.write_text(lock_text)
    try:
        proc = subprocess.run(
            [uv_bin(), "pip", "sync", "--require-hashes", "--python", str(python), "--no-python-downloads",
             "--quiet", str(lock)], capture_output=True, text=True, env=uv_env())
    finally:
        lock.unlink(missing_ok=True)
    if proc.returncode != 0:
        said = error_line(proc.stderr)
        if "hash mismatch" in said.lower():
            raise EnvError(f"hash mismatch of a locked package: {said}", where=where,
                           hint="the package changed since it was locked; re-resolve with "
                                "`orchestra env create URI --update`")
        raise EnvError(f"installing the locked requirements failed: {said}", where=where)
