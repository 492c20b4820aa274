"""conda-lock.yml (conda-lock's format, version 1): written with conda-lock, read as plain YAML.

Writing goes through conda-lock's own models and writer so the file is exactly what conda-lock
produces and reads. Reading is a small YAML walk (no 0.5 s conda-lock import on the run path),
with errors naming the key path. A ``pip:`` section's uv lock travels in
``metadata.custom_metadata["orchestra.pip_lock"]``, so the lock still installs exactly.
``metadata.content_hash`` holds the sha256 of the conda.yaml it was made from: a lock whose hash
matches its spec is used instead of solving.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Sequence

from orchestra.envs.specfiles import display, read_yaml
from orchestra.core.errors import EnvError

PIP_LOCK_KEY = "orchestra.pip_lock"


def lock_path_for(spec_file: Path) -> Path:
    """Where ``orchestra env lock`` writes the lock of ``spec_file``: ``conda-lock.yml`` beside it,
    or ``<stem>.conda-lock.yml`` when the spec is not the directory's main conda file."""
    if spec_file.name in ("conda.yaml", "conda.yml", "environment.yml", "environment.yaml"):
        return spec_file.with_name("conda-lock.yml")
    return spec_file.with_name(f"{spec_file.stem}.conda-lock.yml")


def spec_hash(spec_file: Path, platform: str) -> str:
    return hashlib.sha256(platform.encode() + b"\n" + spec_file.read_bytes()).hexdigest()


def write(path: Path, spec_file: Path, platform: str, entries: Sequence[dict[str, Any]], channels: Sequence[str],
          pip_lock: str) -> None:
    """Write ``path`` in conda-lock's format (atomically)."""
    import os
    import secrets

    from conda_lock.lockfile import write_conda_lock_file
    from conda_lock.lockfile.v1.models import HashModel
    from conda_lock.lockfile.v2prelim.models import LockedDependency, Lockfile, LockMeta
    from conda_lock.models.channel import Channel

    packages = []
    for e in entries:
        deps = {}
        for dep in e.get("depends") or []:
            name, _, constraint = dep.partition(" ")
            deps[name] = constraint.strip() or "*"
        packages.append(LockedDependency(
            name=e["name"], version=e["version"], manager="conda", platform=platform, dependencies=deps,
            url=e["url"], hash=HashModel(md5=e.get("md5"), sha256=e.get("sha256")), build=e["build"],
            categories={"main"}))
    meta = LockMeta(
        content_hash={platform: spec_hash(spec_file, platform)},
        channels=[Channel.from_string(c) for c in channels], platforms=[platform],
        sources=[os.path.relpath(spec_file, path.parent)],
        custom_metadata={PIP_LOCK_KEY: pip_lock} if pip_lock else None)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    try:
        write_conda_lock_file(Lockfile(package=packages, metadata=meta), tmp, metadata_choices=(),
                              include_help_text=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read(path: Path, project_root: Path, platform: str) -> tuple[list[dict[str, Any]], str, dict[str, Any]]:
    """``(entries, pip_lock, metadata)`` for ``platform`` from a conda-lock.yml."""
    shown = display(path, project_root)
    data = read_yaml(path, shown)
    if not isinstance(data, dict) or "package" not in data or "metadata" not in data:
        raise EnvError("not a conda-lock file (needs version, metadata and package)", where=shown)
    if data.get("version") != 1:
        raise EnvError(f"unsupported conda-lock version {data.get('version')!r}", where=f"{shown}: version",
                       hint="version 1 (conda-lock's default format)")
    meta = data["metadata"] if isinstance(data["metadata"], dict) else {}
    platforms = meta.get("platforms") or []
    if platform not in platforms:
        raise EnvError(f"no packages for this platform ({platform})", where=f"{shown}: metadata.platforms",
                       hint=f"locked for: {', '.join(map(str, platforms)) or 'none'}; re-lock on this platform")
    if not isinstance(data["package"], list):
        raise EnvError("must be a list of packages", where=f"{shown}: package")
    entries = []
    for i, pkg in enumerate(data["package"]):
        where = f"{shown}: package[{i}]"
        if not isinstance(pkg, dict):
            raise EnvError("must be a mapping", where=where)
        if pkg.get("platform") != platform:
            continue
        if pkg.get("manager", "conda") != "conda":
            raise EnvError(f"pip packages in conda-lock files are not supported ({pkg.get('name')})",
                           where=f"{where}.manager", hint="lock the pip: section with `orchestra env lock`")
        for field in ("name", "version", "url"):
            if not isinstance(pkg.get(field), str) or not pkg[field]:
                raise EnvError("missing or not a string", where=f"{where}.{field}")
        hashes = pkg.get("hash") if isinstance(pkg.get("hash"), dict) else {}
        if not hashes.get("sha256") and not hashes.get("md5"):
            raise EnvError("a locked package needs a sha256 or md5", where=f"{where}.hash")
        url = pkg["url"]
        file_name = url.rstrip("/").rsplit("/", 1)[-1]
        build = pkg.get("build")
        if not build:  # conda-lock 1.x omitted build: recover it from name-version-build.tar.bz2
            stem = file_name.removesuffix(".tar.bz2").removesuffix(".conda")
            build = stem.rsplit("-", 1)[-1]
        deps = pkg.get("dependencies") or {}
        entries.append({
            "name": pkg["name"], "version": str(pkg["version"]), "build": str(build), "build_number": 0,
            "subdir": url.rstrip("/").split("/")[-2], "url": url, "channel": url.rsplit("/", 2)[0] + "/",
            "file_name": file_name, "sha256": hashes.get("sha256"), "md5": hashes.get("md5"),
            "depends": [f"{k} {v}".strip() if v and v != "*" else k for k, v in deps.items()], "noarch": None,
        })
    custom = meta.get("custom_metadata") or {}
    pip_lock = custom.get(PIP_LOCK_KEY, "") if isinstance(custom, dict) else ""
    return sorted(entries, key=lambda e: e["name"]), str(pip_lock or ""), meta


def is_conda_lock_file(path: Path) -> bool:
    """A conda_env file that is a lock rather than an environment spec."""
    name = path.name.lower()
    return name.endswith("conda-lock.yml") or name.endswith("conda-lock.yaml") or name.endswith(".lock.yml")
