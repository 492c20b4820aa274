"""Environment resolution, cold and warm, for conda (py-rattler) and python_env (uv), against
``python -m venv`` + pip. Offline: the channel and wheels are built by tests/envkit.py.

    python benchmarks/bench_envs.py [N]      # N samples per case (default 5), medians printed

Cases:
    conda cold            fresh ORCHESTRA_HOME and package cache: solve + install (+ pip: section)
    conda warm            the same spec again: first call in a new process (after the imports the
                          run path has made anyway; includes the env modules' own imports), and a
                          second call in that process
    uv cold               fresh ORCHESTRA_HOME and uv cache: find python, lock, venv, sync
    uv cold, warm cache   fresh ORCHESTRA_HOME, uv cache kept (a new spec on a used machine)
    uv warm               the same spec again (as for conda)
    venv + pip            python -m venv, then pip install the same wheels (no lock, no cache)
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._util import bench_env  # noqa: E402
from tests import envkit  # noqa: E402

_ENSURE = """\
import sys, time
from pathlib import Path
import yaml  # loaded by the run path before environments (MLproject parsing)
from orchestra import envs
from orchestra.mlproject.model import EnvSpec
t0 = time.perf_counter()
env = envs.ensure(EnvSpec(kind=sys.argv[1], file=Path(sys.argv[2])), project_root=Path(sys.argv[2]).parent)
t1 = time.perf_counter()
envs.ensure(EnvSpec(kind=sys.argv[1], file=Path(sys.argv[2])), project_root=Path(sys.argv[2]).parent)
t2 = time.perf_counter()
print(t1 - t0, t2 - t1, env.built)
"""


def _ensure(kind: str, spec: Path, env: dict[str, str]) -> tuple[float, float, bool]:
    """(seconds for the first ensure in a new process, seconds for a second one in-process, built)."""
    out = subprocess.run([sys.executable, "-c", _ENSURE, kind, str(spec)], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(out.stderr)
    first, second, built = out.stdout.split()
    return float(first), float(second), built == "True"


def _report(label: str, samples: list[float]) -> None:
    print(f"{label:44} median {statistics.median(samples) * 1000:8.1f} ms   "
          f"(min {min(samples) * 1000:.1f}, max {max(samples) * 1000:.1f}, n={len(samples)})")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    scratch = Path(tempfile.mkdtemp(prefix="orchestra-bench-envs-"))
    channel = envkit.build_channel(scratch / "channel")
    wheels = envkit.build_wheels(scratch / "wheels")
    project = scratch / "proj"
    project.mkdir()
    conda_yaml = project / "conda.yaml"
    conda_yaml.write_text(f"channels: [{channel}]\ndependencies:\n  - hello\n  - python\n"
                          f"  - pip:\n    - tinypkg==1.0\n")
    conda_plain = project / "tools.yaml"
    conda_plain.write_text(f"channels: [{channel}]\ndependencies: [hello, othertool]\n")
    python_env = project / "python_env.yaml"
    python_env.write_text(f"python: '{envkit.PY_MINOR}'\ndependencies: [tinypkg==1.0]\n")
    base = bench_env({"UV_OFFLINE": "1", "UV_NO_CONFIG": "1", "UV_FIND_LINKS": str(wheels),
                      "UV_PYTHON_DOWNLOADS": "never", "PIP_CONFIG_FILE": os.devnull,
                      "PYTHONPATH": str(REPO)})

    results: dict[str, list[float]] = {}

    def add(label: str, value: float) -> None:
        results.setdefault(label, []).append(value)

    for i in range(n):
        for label, kind, spec in (("conda (2 pkgs)", "conda", conda_plain),
                                  ("conda + pip: section", "conda", conda_yaml),
                                  ("uv python_env", "python", python_env)):
            home = scratch / f"home-{label[:5]}-{i}"
            env = {**base, "ORCHESTRA_HOME": str(home), "UV_CACHE_DIR": str(scratch / f"uvc-{label[:5]}-{i}")}
            cold, _, built = _ensure(kind, spec, env)
            assert built
            add(f"{label}: cold", cold)
            warm, in_process, built = _ensure(kind, spec, env)
            assert not built
            add(f"{label}: warm, first call in a new process", warm)
            add(f"{label}: warm, in process", in_process)
            if kind == "python":
                env2 = {**env, "ORCHESTRA_HOME": str(scratch / f"home2-{i}")}
                cold_cache_warm, _, _ = _ensure(kind, spec, env2)
                add(f"{label}: cold env, warm uv cache", cold_cache_warm)
        venv = scratch / f"venv-{i}"
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=base)
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-index", "--find-links",
                        str(wheels), "tinypkg==1.0"], check=True, env=base)
        add("python -m venv + pip install (baseline)", time.perf_counter() - start)
        shutil.rmtree(venv)
    for label, samples in results.items():
        _report(label, samples)
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
