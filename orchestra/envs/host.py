"""Facts about this machine the env layer needs on its warm path (no heavy imports here)."""

from __future__ import annotations

import os
import shutil
import sys

from orchestra.core import settings
from orchestra.core.errors import EnvError

CONDA_EXE_ENV = "ORCHESTRA_CONDA_EXE"
# uv settings that change what a resolution returns: part of a python_env's spec digest.
INDEX_VARS = ("UV_INDEX_URL", "UV_DEFAULT_INDEX", "UV_EXTRA_INDEX_URL", "UV_FIND_LINKS", "UV_INDEX",
              "UV_OFFLINE", "UV_PRERELEASE", "UV_RESOLUTION", "UV_EXCLUDE_NEWER")


def current_platform() -> str:
    """conda's name for this machine's subdir (computed without importing rattler)."""
    machine = os.uname().machine.lower() if hasattr(os, "uname") else "x86_64"
    arch = {"x86_64": "64", "amd64": "64", "aarch64": "aarch64", "arm64": "arm64", "ppc64le": "ppc64le",
            "s390x": "s390x", "i686": "32", "i386": "32"}.get(machine, machine)
    system = {"linux": "linux", "darwin": "osx", "win32": "win"}.get(sys.platform, sys.platform)
    if system == "osx" and arch == "aarch64":
        arch = "arm64"
    return f"{system}-{arch}"


def conda_exe() -> str | None:
    """The external executable named by ORCHESTRA_CONDA_EXE (micromamba, mamba or conda), if any."""
    value = settings.current().conda_exe
    if not value:
        return None
    found = shutil.which(value)
    if not found:
        raise EnvError(f"{CONDA_EXE_ENV}={value}: no such executable",
                       hint="name micromamba, mamba or conda (on PATH or as a path), or unset it to use py-rattler")
    return found
