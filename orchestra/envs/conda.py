"""conda environments: solve and install with py-rattler (or an external conda executable).

A solve becomes a list of package *entries* (plain dicts: name, version, build, url, sha256,
md5, depends, ...), which is what the resolution cache, conda-lock.yml and the key are made of.
The key hashes only what identifies a package's content (platform, name, version, build,
sha256), so an env solved here and the same env read back from conda-lock.yml share one key.
rattler is imported inside functions: ``import orchestra.cli`` must stay light.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import unquote, urlparse

from orchestra.envs import uvtool
from orchestra.envs.specfiles import CondaSpec
from orchestra.errors import EnvError
from orchestra.home import home_path

from orchestra.envs.host import CONDA_EXE_ENV, conda_exe, current_platform  # noqa: F401 (re-exported)


def key_of(platform: str, entries: Sequence[dict[str, Any]], pip_lock: str) -> str:
    rows = sorted(f"{platform} {e['name']} {e['version']} {e['build']} {e.get('sha256') or e['url']}"
                  for e in entries)
    text = "conda-env/1\n" + "\n".join(rows) + "\n--pip--\n" + pip_lock
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _entry(record: Any) -> dict[str, Any]:
    return {
        "name": record.name.normalized, "version": str(record.version), "build": str(record.build),
        "build_number": int(record.build_number), "subdir": str(record.subdir), "url": str(record.url),
        "channel": str(record.channel or ""), "file_name": str(record.file_name),
        "sha256": record.sha256.hex() if record.sha256 else None, "md5": record.md5.hex() if record.md5 else None,
        "depends": [str(d) for d in record.depends],
        "noarch": str(record.noarch) if record.noarch and str(record.noarch) not in ("None", "") else None,
    }


def records_of(entries: Sequence[dict[str, Any]]) -> list[Any]:
    """Entries → rattler RepoDataRecords (what rattler.install takes)."""
    from rattler import BuildString, PackageRecord, RepoDataRecord

    records = []
    for e in entries:
        parts = e["url"].rstrip("/").split("/")
        record = PackageRecord(
            e["name"], e["version"], BuildString(e["build"]), int(e.get("build_number") or 0),
            e.get("subdir") or parts[-2], depends=list(e.get("depends") or []),
            sha256=bytes.fromhex(e["sha256"]) if e.get("sha256") else None,
            md5=bytes.fromhex(e["md5"]) if e.get("md5") else None)
        channel = e.get("channel") or "/".join(parts[:-2]) + "/"
        records.append(RepoDataRecord(record, e.get("file_name") or parts[-1], e["url"], channel))
    return records


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return "; ".join(lines[:3])[:500] or type(exc).__name__


def solve(spec: CondaSpec, where: str, platform: str) -> list[dict[str, Any]]:
    """Solve the spec's dependencies against its channels (offline for file:// channels)."""
    import asyncio

    import rattler
    from rattler import Channel, MatchSpec, Subdir, VirtualPackage
    from rattler.exceptions import GatewayError, InvalidMatchSpecError, SolverError

    specs = []
    for i, dep in enumerate(spec.dependencies):
        try:
            specs.append(MatchSpec(dep, strict=False))
        except InvalidMatchSpecError as exc:
            raise EnvError(f"invalid package spec '{dep}': {_first_line(exc)}",
                           where=f"{where}: dependencies[{i}]") from None
    if not specs:
        return []
    gateway = rattler.Gateway(cache_dir=home_path("cache", "rattler"))
    unreachable = unsatisfiable = None
    try:
        records = asyncio.run(rattler.solve(
            [Channel(uri) for uri in spec.channels], specs, gateway=gateway,
            platforms=[Subdir(platform), Subdir("noarch")], virtual_packages=VirtualPackage.detect()))
    except GatewayError as exc:
        unreachable = _first_line(exc)
    except SolverError as exc:
        unsatisfiable = _first_line(exc)
    # Raised outside the except blocks: an exception chained to rattler's keeps the gateway alive
    # until interpreter shutdown, where freeing it crashes the process (seen with py-rattler 0.28).
    del gateway
    if unreachable is not None:
        raise EnvError(f"channel unreachable: {unreachable}", where=f"{where}: channels",
                       hint="channels: " + ", ".join(spec.channels))
    if unsatisfiable is not None:
        raise EnvError(f"cannot satisfy {', '.join(spec.dependencies)}: {unsatisfiable}",
                       where=f"{where}: dependencies")
    return sorted((_entry(r) for r in records), key=lambda e: e["name"])


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
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError as exc:
            raise EnvError(f"locked package {e['name']} {e['version']} is missing: {path} ({exc.strerror})",
                           where=where, hint="re-lock, or restore the channel") from None
        if digest != e["sha256"]:
            raise EnvError(f"hash mismatch of locked package {e['name']} {e['version']} ({path.name}): "
                           f"expected sha256 {e['sha256']}, got {digest}", where=where,
                           hint="the archive changed since it was locked; re-lock with `orchestra env lock URI`")


def build(resolved: dict[str, Any], tmp: Path, final: Path, where: str) -> None:
    """Install into ``tmp`` with paths rewritten for ``final`` (so renaming keeps it working)."""
    import asyncio

    import rattler
    from rattler.exceptions import InstallerError, TransactionError

    entries = resolved["packages"]
    check_local_hashes(entries, where)
    cache = os.environ.get("RATTLER_CACHE_DIR")
    cache_dir = Path(cache) / "pkgs" if cache else home_path("pkgs")
    message = None
    try:
        asyncio.run(rattler.install(records_of(entries), tmp, cache_dir=cache_dir, show_progress=False,
                                    alternative_target_prefix=final, platform=rattler.Subdir(resolved["platform"])))
    except (InstallerError, TransactionError, OSError) as exc:
        message = _first_line(exc)
    if message is not None:  # raised outside the except block (see solve)
        if "hash mismatch" in message.lower():
            raise EnvError(f"hash mismatch of a locked package: {message}", where=where,
                           hint="re-lock with `orchestra env lock URI`")
        raise EnvError(f"installing the conda packages failed: {message}", where=where)
    _install_pip(resolved, tmp, final, where)


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
