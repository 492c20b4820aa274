"""python_env environments with uv: find the interpreter, lock with hashes, sync a relocatable venv."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path
from typing import Any

from orchestra.envs import uvtool
from orchestra.envs.specfiles import PythonEnvSpec
from orchestra.core.errors import EnvError


def key_of(interpreter: str, version: str, lock_text: str) -> str:
    """The env key: the interpreter's identity and the canonical lock text."""
    text = f"python-env/1\n{os.path.realpath(interpreter)}\n{version}\n{lock_text}"
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def resolve(spec: PythonEnvSpec, project_root: Path, where: str) -> dict[str, Any]:
    """Find the interpreter and lock the requirements (no writes outside uv's cache)."""
    interpreter, version = uvtool.find_python(spec.python, where=f"{where}: python")
    lock_text = uvtool.compile_lock(spec.requirements, cwd=project_root, python=interpreter, where=where)
    return {"kind": "python", "key": key_of(interpreter, version, lock_text), "interpreter": interpreter,
            "python_version": version, "lock": lock_text, "requirements": list(spec.requirements)}


def build(resolved: dict[str, Any], tmp: Path, final: Path, where: str) -> None:
    """Create the venv in ``tmp`` (relocatable, so renaming it to ``final`` keeps it working)."""
    interpreter = resolved["interpreter"]
    if not os.path.exists(interpreter):
        raise EnvError(f"the interpreter {interpreter} is gone", where=where,
                       hint="re-resolve with `orchestra env create URI --update`")
    proc = subprocess.run(
        [uvtool.uv_bin(), "venv", "--relocatable", "--no-python-downloads", "--python", interpreter, "--quiet",
         "--allow-existing", str(tmp)], capture_output=True, text=True, env=uvtool.uv_env())
    if proc.returncode != 0:
        raise EnvError(f"creating the virtualenv failed: {uvtool.error_line(proc.stderr)}", where=where)
    uvtool.sync(resolved["lock"], tmp / "bin" / "python", where=where)
