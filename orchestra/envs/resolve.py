"""Request → lock → key → built prefix, with a spec-digest cache so warm reuse never solves.

The *spec digest* hashes everything a resolution depends on that is cheap to read: the spec
file's bytes, the platform, the stats of local channels' repodata, an adjacent conda-lock.yml,
the uv index settings. It maps to the resolved lock (``envs/resolved/<digest>.json``). A warm
``ensure`` is: read the spec, hash it, read one small JSON, stat one marker.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

from orchestra.core.digest import sha256
from orchestra.core.errors import EnvError
from orchestra.envs import needs, store
from orchestra.envs.select import Request
from orchestra.envs.specfiles import (
    CURRENT_PYTHON,
    PythonEnvSpec,
    conda_to_python_env,
    display,
    parse_conda,
    parse_python_env,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def spec_digest(request: Request, project_root: Path) -> str:
    """A digest of the request's inputs (no solve, no subprocess, no rattler import)."""
    from orchestra.envs.host import INDEX_VARS, conda_exe, current_platform

    h = sha256(f"{store.LAYOUT_VERSION}\n{request.kind}\n{current_platform()}\n".encode())
    if request.file is not None:
        h.update(_read(request.file, request))
    if request.kind == "conda":
        from orchestra.envs import condalock

        spec = parse_conda(request.file, project_root)
        for uri in spec.channels:
            if uri.startswith("file://"):
                for subdir in ("noarch", current_platform()):
                    try:
                        st = os.stat(Path(unquote(urlparse(uri).path)) / subdir / "repodata.json")
                        h.update(f"{uri} {subdir} {st.st_mtime_ns} {st.st_size}\n".encode())
                    except OSError:
                        h.update(f"{uri} {subdir} -\n".encode())
        lock = condalock.lock_path_for(request.file)
        if lock.is_file():
            h.update(b"lock\n" + lock.read_bytes())
    if request.kind in ("conda", "conda-lock"):
        h.update(f"exe={bool(conda_exe())}\n".encode())
    if request.kind in ("python", "python-from-conda", "conda"):
        for var in INDEX_VARS:
            h.update(f"{var}={os.environ.get(var, '')}\n".encode())
        if request.file is not None:
            for ref in _referenced_files(request.file, project_root):
                h.update(f"{ref}\n".encode() + (ref.read_bytes() if ref.is_file() else b"-"))
    if request.kind == "python-bare":
        h.update(f"{sys.executable}\n{sys.version}\n".encode())
    return h.hexdigest()[:32]


def _read(file: Path, request: Request) -> bytes:
    try:
        return file.read_bytes()
    except OSError as exc:
        raise EnvError(f"cannot read {file} ({exc.strerror})", where=request.declared_at) from None


_REF = re.compile(r"""(?:^|[\s'"\[,])(?:-r|-c|--requirement|--constraint)[\s=]+([^\s'",\]]+)""")


def _referenced_files(file: Path, project_root: Path) -> list[Path]:
    """Files named by ``-r``/``-c`` lines (resolved against the project dir, as uv runs there)."""
    text = file.read_text(errors="replace")
    return [(project_root / m.group(1)).resolve() for m in _REF.finditer(text)]


def resolve(request: Request, project_root: Path) -> dict[str, Any]:
    """Solve/lock the request. Returns the resolved record (kind, key, lock, notice, ...)."""
    assert request.file is not None or request.kind == "python-bare"
    shown = display(request.file, project_root) if request.file else "python (current)"
    where = request.declared_at or shown
    notice = None
    if request.kind in ("python", "python-from-conda", "python-bare"):
        from orchestra.envs import venv

        needs.uv(where, "building a python environment")

        if request.kind == "python":
            spec = parse_python_env(request.file, project_root)
        elif request.kind == "python-from-conda":
            spec, _dropped, notice = conda_to_python_env(parse_conda(request.file, project_root), project_root)
        else:
            spec = PythonEnvSpec(file=None, python=CURRENT_PYTHON)
        resolved = venv.resolve(spec, project_root, shown)
    else:
        from orchestra.envs import conda, condalock

        platform = conda.current_platform()
        if request.kind == "conda-lock":
            entries, pip_lock, meta = condalock.read(request.file, project_root, platform)
            channels = [c.get("url", "") if isinstance(c, dict) else str(c) for c in meta.get("channels") or []]
            resolved = conda.resolved_from(entries, (), project_root, shown, platform, channels, pip_lock=pip_lock)
        else:
            spec = parse_conda(request.file, project_root)
            lock = condalock.lock_path_for(request.file)
            resolved = None
            if lock.is_file():
                entries, pip_lock, meta = condalock.read(lock, project_root, platform)
                if (meta.get("content_hash") or {}).get(platform) == condalock.spec_hash(request.file, platform):
                    resolved = conda.resolved_from(entries, (), project_root, shown, platform, spec.channels,
                                                   pip_lock=pip_lock)
                    resolved["from_lock"] = display(lock, project_root)
                else:
                    notice = (f"{display(lock, project_root)} was made from another version of {shown}; "
                              f"solving instead (re-lock with `orchestra env lock`)")
            if resolved is None:
                needs.rattler(where, "solving a conda environment")
                if spec.pip:
                    needs.uv(where, "locking the pip: section of a conda environment", extra="conda")
                resolved = conda.resolve(spec, project_root, shown)
            resolved["variables"] = dict(spec.variables)
    resolved.update(spec=str(request.file) if request.file else "", shown=shown, notice=notice,
                    declared_at=request.declared_at)
    return resolved


def cached(request: Request, project_root: Path, *, peek: bool = False) -> tuple[str, dict[str, Any] | None]:
    """``(spec digest, resolved record or None)`` from the resolution cache."""
    digest = spec_digest(request, project_root)
    resolved = store.peek_resolved(digest) if peek else store.read_resolved(digest)
    if resolved is not None and resolved.get("kind") == "python" and not os.path.exists(resolved.get("interpreter", "")):
        resolved = None  # the interpreter it was locked for is gone: resolve again
    return digest, resolved


def lock_ext(resolved: dict[str, Any]) -> str:
    return "txt" if resolved["kind"] == "python" else "json"


def build(resolved: dict[str, Any]) -> tuple[Path, bool]:
    """Build (or find) the prefix of a resolved record. Returns ``(prefix, built)``."""
    import json

    kind, key = resolved["kind"], resolved["key"]
    name = f"{kind}-{key}"
    final = store.prefix_for(name)
    if store.is_valid(final):  # warm: no lock, no backend import
        store.touch(final)
        return final, False
    shown = resolved.get("shown", "")
    marker = {"kind": kind, "key": key, "spec": resolved.get("spec", ""), "declared_at": resolved.get("declared_at")}
    where = resolved.get("declared_at") or shown
    if kind == "python":
        from orchestra.envs import venv

        needs.uv(where, "building a python environment")

        def builder(tmp: Path, final: Path) -> None:
            venv.build(resolved, tmp, final, shown)

        prefix, built = store.ensure(name, builder, marker)
        lock_text = resolved["lock"]
    else:
        from orchestra.envs import conda
        from orchestra.envs.host import conda_exe

        exe = conda_exe()
        if not exe:
            needs.rattler(where, "installing a conda environment")
        if resolved.get("pip_lock", "").strip():
            needs.uv(where, "installing the pip: section of a conda environment", extra="conda")
        if exe:
            def builder(tmp: Path, final: Path) -> None:
                conda.build_with_exe(exe, resolved, final, shown)
        else:
            def builder(tmp: Path, final: Path) -> None:
                conda.build(resolved, tmp, final, shown)

        prefix, built = store.ensure(name, builder, {**marker, "backend": Path(exe).name if exe else "py-rattler"},
                                     relocatable=exe is None)
        lock_text = json.dumps({"packages": resolved["packages"], "pip_lock": resolved.get("pip_lock", "")}, indent=1)
    if built:
        store.save_lock_text(name, lock_ext(resolved), lock_text)
    return prefix, built
