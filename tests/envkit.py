"""Offline building blocks for environment tests: a local conda channel and local wheels.

Everything is made here from the standard library plus py-rattler (to index the channel): no
network. Archives carry fixed mtimes, so their hashes are the same on every rebuild.

Conda channel (``noarch``):
    hellolib 1.0            bin/hellolib
    hello 0.1, 0.2          bin/hello (prints "hello <version>"), depends on hellolib >=1.0
    othertool 1.0           bin/othertool
    hellodata 1.0           etc/conda/activate.d/hellodata.sh (exports HELLO_DATA)
    python <host version>   a shim: pyvenv.cfg + bin/python → the host interpreter, so conda
                            envs with a ``pip:`` section are testable offline

Wheels: tinydep 1.0; tinypkg 1.0 and 2.0 (need tinydep); otherpkg 1.0; and an sdist
``slowpkg 1.0`` whose in-tree build backend sleeps while ``SLOWPKG_GATE`` names an existing
file (to catch a build in the middle).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile
import textwrap
import zipfile
from pathlib import Path

PY_VERSION = ".".join(map(str, sys.version_info[:3]))
PY_MINOR = f"{sys.version_info[0]}.{sys.version_info[1]}"
_MTIME = 1_700_000_000


def _tar_add(tf: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, _MTIME
    tf.addfile(info, io.BytesIO(data))


def make_conda_pkg(noarch: Path, name: str, version: str, *, build: str = "0", depends: tuple[str, ...] = (),
                   files: dict[str, tuple[str, int]] | None = None,
                   symlinks: dict[str, str] | None = None) -> Path:
    """Write ``noarch/<name>-<version>-<build>.tar.bz2``: info/index.json, info/paths.json, files."""
    files = files if files is not None else {f"bin/{name}": (f"#!/bin/sh\necho {name} {version}\n", 0o755)}
    symlinks = symlinks or {}
    index = {"name": name, "version": version, "build": build, "build_number": 0, "depends": list(depends),
             "subdir": "noarch", "noarch": "generic", "timestamp": _MTIME * 1000}
    entries = [{"_path": p, "path_type": "hardlink", "sha256": hashlib.sha256(t.encode()).hexdigest(),
                "size_in_bytes": len(t.encode())} for p, (t, _) in files.items()]
    entries += [{"_path": p, "path_type": "softlink"} for p in symlinks]
    paths = {"paths_version": 1, "paths": entries}
    noarch.mkdir(parents=True, exist_ok=True)
    out = noarch / f"{name}-{version}-{build}.tar.bz2"
    with tarfile.open(out, "w:bz2") as tf:
        for path, (text, mode) in files.items():
            _tar_add(tf, path, text.encode(), mode)
        for path, target in symlinks.items():
            info = tarfile.TarInfo(path)
            info.type, info.linkname, info.mtime = tarfile.SYMTYPE, target, _MTIME
            tf.addfile(info)
        _tar_add(tf, "info/index.json", json.dumps(index).encode())
        _tar_add(tf, "info/paths.json", json.dumps(paths).encode())
    return out


def index_channel(channel: Path) -> None:
    """Index with py-rattler, in a child process (py-rattler can crash at interpreter exit)."""
    from orchestra.envs import rattler_worker

    answer = rattler_worker.call("index", {"channel": str(channel)})
    assert "ok" in answer, answer


def build_channel(channel: Path) -> Path:
    """The test channel described in the module docstring, indexed."""
    noarch = channel / "noarch"
    make_conda_pkg(noarch, "hellolib", "1.0")
    make_conda_pkg(noarch, "hello", "0.1", depends=("hellolib >=1.0",))
    make_conda_pkg(noarch, "hello", "0.2", depends=("hellolib >=1.0",))
    make_conda_pkg(noarch, "othertool", "1.0")
    make_conda_pkg(noarch, "hellodata", "1.0", files={
        "etc/conda/activate.d/hellodata.sh": ('export HELLO_DATA="$CONDA_PREFIX/share/hellodata"\n', 0o644),
        "share/hellodata/README": ("data\n", 0o644)})
    real = Path(os.path.realpath(sys.executable))
    make_conda_pkg(
        noarch, "python", PY_VERSION,
        files={"pyvenv.cfg": (f"home = {real.parent}\ninclude-system-site-packages = false\n"
                              f"version = {PY_VERSION}\n", 0o644),
               f"lib/python{PY_MINOR}/site-packages/.keep": ("", 0o644)},
        symlinks={"bin/python": str(real), f"bin/python{PY_MINOR}": str(real), "bin/python3": str(real)},
    )
    index_channel(channel)
    return channel


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def make_wheel(wheels: Path, name: str, version: str, *, requires: tuple[str, ...] = (),
               module_text: str | None = None) -> Path:
    """A pure-Python ``py3-none-any`` wheel with one module ``<name>`` (``VERSION`` constant)."""
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": module_text if module_text is not None else f"VERSION = {version!r}\n",
        f"{dist}/METADATA": "Metadata-Version: 2.1\n" f"Name: {name}\nVersion: {version}\n"
                            + "".join(f"Requires-Dist: {r}\n" for r in requires),
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: envkit\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [_record_line(p, t.encode()) for p, t in files.items()] + [f"{dist}/RECORD,,"]
    files[f"{dist}/RECORD"] = "\n".join(record) + "\n"
    wheels.mkdir(parents=True, exist_ok=True)
    out = wheels / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(out, "w") as zf:
        for path, text in files.items():
            info = zipfile.ZipInfo(path, date_time=(2024, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, text)
    return out


_SLOW_BACKEND = '''\
"""In-tree PEP 517 backend: builds a one-module wheel; sleeps while $SLOWPKG_GATE exists."""
import base64, hashlib, os, time, zipfile

NAME, VERSION = "slowpkg", "1.0"
DIST = f"{NAME}-{VERSION}.dist-info"
META = f"Metadata-Version: 2.1\\nName: {NAME}\\nVersion: {VERSION}\\n"


def _wait():
    gate = os.environ.get("SLOWPKG_GATE")
    if not gate:
        return
    started = gate + ".started"
    with open(started, "a") as f:
        f.write(f"{os.getpid()}\\n")
    deadline = time.time() + float(os.environ.get("SLOWPKG_MAX", "60"))
    while os.path.exists(gate) and time.time() < deadline:
        time.sleep(0.05)


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    os.makedirs(os.path.join(metadata_directory, DIST), exist_ok=True)
    with open(os.path.join(metadata_directory, DIST, "METADATA"), "w") as f:
        f.write(META)
    return DIST


def get_requires_for_build_wheel(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    _wait()
    files = {f"{NAME}/__init__.py": "VERSION = '1.0'\\n", f"{DIST}/METADATA": META,
             f"{DIST}/WHEEL": "Wheel-Version: 1.0\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"}
    rec = []
    for p, t in files.items():
        d = base64.urlsafe_b64encode(hashlib.sha256(t.encode()).digest()).rstrip(b"=").decode()
        rec.append(f"{p},sha256={d},{len(t.encode())}")
    files[f"{DIST}/RECORD"] = "\\n".join(rec + [f"{DIST}/RECORD,,"]) + "\\n"
    name = f"{NAME}-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as zf:
        for p, t in files.items():
            zf.writestr(zipfile.ZipInfo(p, date_time=(2024, 1, 1, 0, 0, 0)), t)
    return name
'''


def make_slow_sdist(wheels: Path) -> Path:
    """``slowpkg-1.0.tar.gz`` with an in-tree backend and no build requirements (offline)."""
    root = "slowpkg-1.0"
    files = {
        f"{root}/pyproject.toml": textwrap.dedent("""\
            [build-system]
            requires = []
            build-backend = "slowbackend"
            backend-path = ["."]
            [project]
            name = "slowpkg"
            version = "1.0"
            """),
        f"{root}/slowbackend.py": _SLOW_BACKEND,
        f"{root}/PKG-INFO": "Metadata-Version: 2.1\nName: slowpkg\nVersion: 1.0\n",
    }
    wheels.mkdir(parents=True, exist_ok=True)
    out = wheels / "slowpkg-1.0.tar.gz"
    with open(out, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w") as tf:
        for path, text in files.items():
            _tar_add(tf, path, text.encode())
    return out


def build_wheels(wheels: Path) -> Path:
    """The wheel set described in the module docstring."""
    make_wheel(wheels, "tinydep", "1.0")
    make_wheel(wheels, "tinypkg", "1.0", requires=("tinydep",))
    make_wheel(wheels, "tinypkg", "2.0", requires=("tinydep",))
    make_wheel(wheels, "otherpkg", "1.0")
    make_slow_sdist(wheels)
    return wheels
