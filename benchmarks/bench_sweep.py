"""A 100-member sweep over a 4-stage pipeline whose first two stages are shared by every member.

``prepare → features → train(alpha) → evaluate``: ``prepare`` and ``features`` take ``--shared``
seconds and do not depend on ``alpha``; ``train`` and ``evaluate`` are ``true``. Timed, each in
a fresh ORCHESTRA_HOME:

- ``orchestra run P --sweep alpha=1:N:1 -j 2`` (one process, one pool: the shared stages run once);
- N sequential ``orchestra run P -P alpha=i -j 2`` calls (the first computes the shared stages,
  the others load them);
- the bash floor measured in the same run: the shared commands once, then N × (train; evaluate)
  as plain commands in one bash process.

Per-member overhead is (wall - floor) / N.

    python benchmarks/bench_sweep.py [--members 100] [--shared 0.2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._util import ORCHESTRA, bench_env, fresh_home  # noqa: E402


def project(root: Path, shared: float) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "MLproject").write_text(f"""name: sweepbench
entry_points:
  prepare: {{command: "sleep {shared} && echo p > {{outputs}}/p.txt"}}
  features: {{command: "sleep {shared} && echo f > {{outputs}}/f.txt", depends_on: [prepare]}}
  train:
    parameters: {{alpha: {{type: float, default: 1}}}}
    command: "echo {{alpha}} > {{outputs}}/m.txt"
    depends_on: [features]
  evaluate: {{command: "true", depends_on: [train]}}
""")
    return root


def _time(argvs: list[list[str]], home: str) -> float:
    env = bench_env({"ORCHESTRA_HOME": home})
    start = time.perf_counter()
    for argv in argvs:
        subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def _floor(members: int, shared: float, scratch: Path) -> float:
    script = (f"sleep {shared}; echo p > {scratch}/p.txt; sleep {shared}; echo f > {scratch}/f.txt; "
              f"for i in $(seq {members}); do echo $i > {scratch}/m.txt; true; done")
    start = time.perf_counter()
    subprocess.run(["bash", "-c", script], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=100)
    parser.add_argument("--shared", type=float, default=0.2, help="seconds of each shared stage")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n = args.members
    root = project(Path(fresh_home()) / "proj", args.shared)
    sweep, sequential, floor = [], [], []
    for _ in range(args.repeat):
        sweep.append(_time([[*ORCHESTRA, "run", str(root), "--env-manager", "local", "-j", "2", "-q",
                             "--sweep", f"alpha=1:{n}:1", "--yes"]], fresh_home()))
        sequential.append(_time([[*ORCHESTRA, "run", str(root), "--env-manager", "local", "-j", "2", "-q",
                                  "-P", f"alpha={i}"] for i in range(1, n + 1)], fresh_home()))
        floor.append(_floor(n, args.shared, Path(fresh_home())))
    base = statistics.median(floor)
    print(f"{n} members, 4 stages (2 shared of {args.shared}s each), -j 2, medians of {args.repeat} runs")
    for label, samples in (("orchestra run --sweep (one process, one pool)", sweep),
                           (f"{n} sequential orchestra run calls", sequential),
                           ("floor: bash, shared once then N x (train; evaluate)", floor)):
        wall = statistics.median(samples)
        over = (wall - base) / n * 1000
        print(f"{label:54} wall {wall:7.2f} s   per member over the floor {over:7.1f} ms   "
              f"(min {min(samples):.2f}, max {max(samples):.2f})")


if __name__ == "__main__":
    os.environ.pop("ORCHESTRA_HOME", None)
    main()
