"""README command 1, timed: a fresh venv, ``pip install -e .``, the quickstart run.

    python benchmarks/bench_install.py [N]      # N rounds (default 3), medians printed

Each round, in fresh venvs under a temporary directory, on a copy of the repository's tracked
files (the install writes ``*.egg-info`` beside the sources), with pip's cache as it is (warm
after the first round: the figure is for a machine that has downloaded the packages before):

    command 1        python -m venv + pip install -e . (editable_mode=compat) + orchestra run
                     example_projects/quickstart, as the README says
    with the envs    the same with ``.[conda,python-env,pandas,svg]``: the runtime set before the
                     environments, runs_frame and the SVG layout became extras
    floor            python -m venv + pip install -e . --no-deps: the venv and orchestra alone

The rows of a round run one after the other, so a busy machine slows all three alike; compare
them within one run. Prints the package count each installs (pip and setuptools excluded).
"""

from __future__ import annotations

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

PIP = ["install", "-q", "--disable-pip-version-check", "--config-settings", "editable_mode=compat"]
CASES = {"command 1": (".", True), "with the envs": (".[conda,python-env,pandas,svg]", True),
         "floor": (".", False)}


def one(work: Path, source: Path, target: str, run: bool, deps: bool = True) -> tuple[float, int]:
    venv = work / "venv"
    shutil.rmtree(venv, ignore_errors=True)
    env = bench_env({"PYTHONPATH": ""})
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=env)
    extra = [] if deps else ["--no-deps"]
    subprocess.run([str(venv / "bin" / "pip"), *PIP, *extra, "-e", target], cwd=source, check=True, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if run:
        home = work / "home"
        shutil.rmtree(home, ignore_errors=True)
        done = subprocess.run([str(venv / "bin" / "orchestra"), "run", "example_projects/quickstart", "-q"],
                              cwd=source, env={**env, "ORCHESTRA_HOME": str(home)}, capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"the quickstart failed after `pip install -e {target}`:\n{done.stderr}")
    elapsed = time.perf_counter() - start
    listed = subprocess.run([str(venv / "bin" / "pip"), "list", "--format", "freeze", "--disable-pip-version-check"],
                            capture_output=True, text=True, check=True, env=env).stdout.split()
    count = len([p for p in listed if p.split("==")[0].lower() not in ("pip", "setuptools")])
    return elapsed, count


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    with tempfile.TemporaryDirectory(prefix="orchestra-bench-install-") as tmp:
        work, source = Path(tmp), Path(tmp) / "src"
        files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
        for name in filter(None, files.decode().split("\0")):
            if (REPO / name).is_symlink() or (REPO / name).is_file():  # orchestra/schemas is a symlink
                (source / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / name, source / name, follow_symlinks=False)
        one(work, source, CASES["with the envs"][0], False)  # fills pip's cache for every row
        samples: dict[str, list[float]] = {case: [] for case in CASES}
        counts: dict[str, int] = {}
        for _ in range(rounds):
            for case, (target, run) in CASES.items():
                elapsed, counts[case] = one(work, source, target, run, deps=case != "floor")
                samples[case].append(elapsed)
    for case, values in samples.items():
        print(f"{case:16} median {statistics.median(values):6.1f} s   (min {min(values):.1f}, max {max(values):.1f}, "
              f"n={len(values)})   {counts[case]} packages")


if __name__ == "__main__":
    main()
