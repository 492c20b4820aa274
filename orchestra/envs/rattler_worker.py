"""py-rattler calls, made in a short-lived child process.

Why a child: py-rattler 0.28 sometimes crashes the interpreter at exit (SIGSEGV or abort in
finalization while its tokio runtime winds down; seen in about 1 of 8 processes that solved
anything, on success and error paths alike). A child that ends with ``os._exit`` after writing
its answer never finalizes, and orchestra's own process (and a test runner) never loads rattler.
It costs one interpreter start (~0.1 s) per cold solve or install; warm reuse never gets here.

Protocol: ``python -m orchestra.envs.rattler_worker OP`` reads a JSON request on stdin and
writes one JSON answer on stdout: ``{"ok": result}`` or ``{"error": kind, "message": ..., ...}``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any


def call(op: str, request: dict[str, Any]) -> dict[str, Any]:
    """Run ``op`` in a child; returns the answer dict (``ok`` or ``error``)."""
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run([sys.executable, "-m", "orchestra.envs.rattler_worker", op], input=json.dumps(request),
                          capture_output=True, text=True, env=env)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    tail = " ".join(proc.stderr.strip().splitlines()[-2:])[:400]
    return {"error": "crash", "message": f"py-rattler exited with {proc.returncode}: {tail or 'no output'}"}


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return "; ".join(lines[:3])[:500] or type(exc).__name__


def _entry(record: Any) -> dict[str, Any]:
    noarch = str(record.noarch) if record.noarch else None
    return {
        "name": record.name.normalized, "version": str(record.version), "build": str(record.build),
        "build_number": int(record.build_number), "subdir": str(record.subdir), "url": str(record.url),
        "channel": str(record.channel or ""), "file_name": str(record.file_name),
        "sha256": record.sha256.hex() if record.sha256 else None, "md5": record.md5.hex() if record.md5 else None,
        "depends": [str(d) for d in record.depends],
        "noarch": noarch if noarch not in ("None", "") else None,
    }


def _records(entries: list[dict[str, Any]]) -> list[Any]:
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


def _solve(request: dict[str, Any]) -> dict[str, Any]:
    import asyncio

    import rattler
    from rattler import Channel, MatchSpec, Subdir, VirtualPackage
    from rattler.exceptions import GatewayError, InvalidMatchSpecError, SolverError

    specs = []
    for i, dep in enumerate(request["specs"]):
        try:
            specs.append(MatchSpec(dep, strict=False))
        except InvalidMatchSpecError as exc:
            return {"error": "matchspec", "index": i, "message": _first_line(exc)}
    gateway = rattler.Gateway(cache_dir=request["cache_dir"])
    try:
        records = asyncio.run(rattler.solve(
            [Channel(uri) for uri in request["channels"]], specs, gateway=gateway,
            platforms=[Subdir(request["platform"]), Subdir("noarch")], virtual_packages=VirtualPackage.detect()))
    except GatewayError as exc:
        return {"error": "gateway", "message": _first_line(exc)}
    except SolverError as exc:
        return {"error": "solver", "message": _first_line(exc)}
    return {"ok": sorted((_entry(r) for r in records), key=lambda e: e["name"])}


def _install(request: dict[str, Any]) -> dict[str, Any]:
    import asyncio

    import rattler
    from rattler.exceptions import InstallerError, TransactionError

    try:
        asyncio.run(rattler.install(
            _records(request["entries"]), request["target"], cache_dir=request["cache_dir"], show_progress=False,
            alternative_target_prefix=request["final"], platform=rattler.Subdir(request["platform"])))
    except (InstallerError, TransactionError, OSError) as exc:
        return {"error": "install", "message": _first_line(exc)}
    return {"ok": True}


def _index(request: dict[str, Any]) -> dict[str, Any]:
    import asyncio

    import rattler.index

    asyncio.run(rattler.index.index_fs(request["channel"], write_zst=False, write_shards=False, force=True))
    return {"ok": True}


def main() -> None:
    op = sys.argv[1]
    try:
        answer = {"solve": _solve, "install": _install, "index": _index}[op](json.loads(sys.stdin.read()))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises EnvError
        answer = {"error": "crash", "message": f"{type(exc).__name__}: {_first_line(exc)}"}
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # skip interpreter finalization (see the module docstring)


if __name__ == "__main__":
    main()
