"""conda environments: solve and install with py-rattler (or an external conda executable).

A solve becomes a list of package *entries* (plain dicts: name, version, build, url, sha256,
md5, depends, ...), which is what the resolution cache, conda-lock.yml and the key are made of.
The key hashes only what identifies a package's content (platform, name, version, build,
sha256), so an env solved here and the same env read back from conda-lock.yml share one key.
py-rattler itself runs in a child process (rattler_worker.py): orchestra never imports it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import unquote, urlparse

from orchestra.core.digest import sha256_file
from orchestra.envs import uvtool
from orchestra.envs.host import current_platform
from orchestra.envs.specfiles import CondaSpec
from orchestra.core.errors import EnvError
from orchestra.core.layout import home_path


def key_of(platform: str, entries: Sequence[dict[str, Any]], pip_lock: str) -> str:
    rows = sorted(f"{platform} {e['name']} {e['version']} {e['build']} {e.get('sha256') or e['url']}"
                  for e in entries)
    text = "conda-env/1\n" + "\n".join(rows) + "\n--pip--\n" + pip_lock
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def solve(spec: CondaSpec, where: str, platform: str) -> list[dict[str, Any]]:
    """Solve the spec's dependencies against its channels (offline for file:// channels)."""
    from orchestra.envs import rattler_worker

    if not spec.dependencies:
        return []
    answer = rattler_worker.call("solve", {"specs": list(spec.dependencies), "channels": list(spec.channels),
                                           "platform": platform, "cache_dir": str(home_path("cache", "rattler"))})
    error, message = answer.get("error"), answer.get("message", "")
    if error == "matchspec":
        dep = spec.dependencies[answer["index"]]
        raise EnvError(f"invalid package spec '{dep}': {message}", where=f"{where}: dependencies[{answer['index']}]")
    if error == "gateway":
        raise EnvError(f"channel unreachable: {message}", where=f"{where}: channels",
                       hint="channels: " + ", ".join(spec.channels))
    if error == "solver":
        raise EnvError(f"cannot satisfy {', '.join(spec.dependencies)}: {message}", where=f"{where}: dependencies")
    if error:
        raise EnvError(f"solving failed: {message}", where=where)
    return answer["ok"]


def python_version(entries: Sequence[dict[str, Any]]) -> str | None:
    for e in entries:
        if e["name"] == "python":
            return e["version"]
    return None


def resolve(spec: CondaSpec, project_root: Path, where: str) -> dict[str, Any]:
    """Solve conda packages, then lock the ``pip:`` section with uv for the solved Python."""
    platform = current_platform()
    entries = solve(spec, where, platform)
    return resolved_from(entries, spec.pip, project_root, where, platform, channels=spec.channels)


def resolved_from(entries: list[dict[str, Any]], pip: Sequence[str], project_root: Path, where: str,
                  platform: str, channels: Sequence[str] = (), pip_lock: str | None = None) -> dict[str, Any]:
    if pip_lock is None:
        pip_lock = ""
        if pip:
            version = python_version(entries)
            if version is None:
                raise EnvError("a pip: section needs python among the conda dependencies",
                               where=f"{where}: dependencies")
            pip_lock = uvtool.compile_lock(pip, cwd=project_root, python_version=version, where=f"{where}: pip")
    return {"kind": "conda", "key": key_of(platform, entries, pip_lock), "platform": platform, "packages": entries,
            "pip_lock": pip_lock, "channels": list(channels)}


def check_local_hashes(entries: Sequence[dict[str, Any]], where: str) -> None:
    """rattler does not verify file:// archives: compare their sha256 with the lock ourselves."""
    for e in entries:
        parsed = urlparse(e["url"])
        if parsed.scheme != "file" or not e.get("sha256"):
            continue
        path = Path(unquote(parsed.path))
        try:
            digest = sha256_file(path)
        except OSError as exc:
            raise EnvError(f"locked package {e['name']} {e['version']} is missing: {path} ({exc.strerror})",
                           where=where, hint="re-lock, or restore the channel") from None
        if digest != e["sha256"]:
            raise EnvError(f"hash mismatch of locked package {e['name']} {e['version']} ({path.name}): "
                           f"expected sha256 {e['sha256']}, got {digest}", where=where,
                           hint="the archive changed since it was locked; re-lock with `orchestra env lock URI`")


def build(resolved: dict[str, Any], tmp: Path, final: Path, where: str) -> None:
    """Install into ``tmp`` with paths rewritten for ``final`` (so renaming keeps it working)."""
    from orchestra.envs import rattler_worker

    entries = resolved["packages"]
    check_local_hashes(entries, where)
    cache = os.environ.get("RATTLER_CACHE_DIR")
    cache_dir = Path(cache) / "pkgs" if cache else home_path("pkgs")
    answer = rattler_worker.call("install", {"entries": entries, "target": str(tmp), "final": str(final),
                                             "cache_dir": str(cache_dir), "platform": resolved["platform"]})
    if answer.get("error"):
        message = answer.get("message", "")
        if "hash mismatch" in message.lower():
            raise EnvError(f"hash mismatch of a locked package: {message}", where=where,
                           hint="re-lock with `orchestra env lock URI`")
        raise EnvError(f"installing the conda packages failed: {message}", where=where)
    _install_pip(resolved, tmp, final, where)
    record_activation(tmp, final)


ACTIVATION_FILE = ".orchestra-activate.json"


def record_activation(tmp: Path, final: Path) -> None:
    """Run the env's ``etc/conda/activate.d/*.sh`` once, at build time, and keep the variables
    they set (stages then get them without a shell per stage, as ``conda activate`` would)."""
    scripts = sorted((tmp / "etc" / "conda" / "activate.d").glob("*.sh"))
    if not scripts:
        return
    base = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/"), "CONDA_PREFIX": str(final)}
    sources = "; ".join(f". {shlex.quote(str(s))}" for s in scripts)
    dump = "import json, os; print(json.dumps(dict(os.environ)))"
    script = f"{{ {sources}; }} >&2; exec {shlex.quote(sys.executable)} -c {shlex.quote(dump)}"
    proc = subprocess.run(["/bin/bash", "-c", script], env=base, capture_output=True, text=True)
    if proc.returncode != 0:
        raise EnvError(f"an activation script of the env failed: {uvtool.error_line(proc.stderr)}")
    after = json.loads(proc.stdout.strip().splitlines()[-1])
    changed = {k: v.replace(str(tmp), str(final)) for k, v in after.items()
               if base.get(k) != v and k not in ("PWD", "SHLVL", "_", "OLDPWD")}
    (tmp / ACTIVATION_FILE).write_text(json.dumps(changed, indent=1, sort_keys=True))


def build_with_exe(exe: str, resolved: dict[str, Any], prefix: Path, where: str) -> None:
    """Install the solved packages with micromamba/mamba/conda from an @EXPLICIT file, in place."""
    entries = resolved["packages"]
    check_local_hashes(entries, where)
    explicit = prefix.parent / f".explicit-{prefix.name}-{os.getpid()}.txt"
    lines = ["@EXPLICIT"] + [f"{e['url']}#{e['md5']}" if e.get("md5") else e["url"] for e in entries]
    explicit.write_text("\n".join(lines) + "\n")
    try:
        shutil.rmtree(prefix, ignore_errors=True)  # conda refuses an existing non-env directory
        argv = [exe, "create", "--yes", "--prefix", str(prefix), "--file", str(explicit)]
        proc = subprocess.run(argv, capture_output=True, text=True)
    finally:
        explicit.unlink(missing_ok=True)
    if proc.returncode != 0:
        raise EnvError(f"{Path(exe).name} create failed (exit {proc.returncode}): "
                       f"{uvtool.error_line(proc.stderr or proc.stdout)}", where=where)
    prefix.mkdir(parents=True, exist_ok=True)
    _install_pip(resolved, prefix, prefix, where)
    record_activation(prefix, prefix)


def _install_pip(resolved: dict[str, Any], tmp: Path, final: Path, where: str) -> None:
    if not resolved.get("pip_lock", "").strip():
        return
    python = tmp / "bin" / "python"
    if not python.exists():
        raise EnvError("the conda env has no bin/python for its pip: section", where=f"{where}: dependencies")
    uvtool.sync(resolved["pip_lock"], python, where=f"{where}: pip")
    if tmp != final:
        relocate_scripts(tmp, final)


def relocate_scripts(tmp: Path, final: Path) -> None:
    """Point scripts that pip-style installers wrote with the build path at the final prefix
    (the shebang line, or the ``/bin/sh`` trampoline uv writes for long paths)."""
    old, new = str(tmp).encode(), str(final).encode()
    bindir = tmp / "bin"
    for entry in bindir.iterdir() if bindir.is_dir() else ():
        if entry.is_symlink() or not entry.is_file():
            continue
        with open(entry, "rb") as f:
            head = f.read(1024)
        if not head.startswith(b"#!") or old not in head:
            continue
        data = entry.read_bytes()
        mode = entry.stat().st_mode
        tmp_file = entry.with_name(f".{entry.name}.reloc")
        tmp_file.write_bytes(data[:1024].replace(old, new) + data[1024:])
        os.chmod(tmp_file, mode)
        os.replace(tmp_file, entry)
