"""Shared helpers for the benchmark scripts (generate projects, time commands)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ORCHESTRA = [sys.executable, "-m", "orchestra"]


def chain_project(root: Path, n: int, command: str = "true") -> Path:
    """An MLproject with ``n`` stages, each depending on the previous one."""
    root.mkdir(parents=True, exist_ok=True)
    lines = ["name: chain", "entry_points:"]
    for i in range(n):
        lines.append(f"  s{i}:")
        lines.append(f"    command: \"{command}\"")
        if i:
            lines.append(f"    depends_on: [s{i - 1}]")
    (root / "MLproject").write_text("\n".join(lines) + "\n")
    return root


def fanout_project(root: Path, width: int, seconds: float) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    lines = ["name: fanout", "entry_points:", "  start:", "    command: \"true\""]
    for i in range(width):
        lines += [f"  w{i}:", f"    command: \"sleep {seconds}\"", "    depends_on: [start]"]
    (root / "MLproject").write_text("\n".join(lines) + "\n")
    return root


def bench_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a normal install: bytecode caching on (some sandboxes disable it,
    which makes every start recompile every module and measures the sandbox, not orchestra)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, **(extra or {})}


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, env=bench_env(env),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def fresh_home() -> str:
    return tempfile.mkdtemp(prefix="orchestra-bench-")


def report(label: str, samples: list[float]) -> None:
    print(f"{label:48} median {statistics.median(samples) * 1000:8.1f} ms   "
          f"(min {min(samples) * 1000:.1f}, max {max(samples) * 1000:.1f}, n={len(samples)})")
