"""What running every stage command through ``bash -c`` (as mlflow run does) costs per stage.

Starts N no-op commands the way orchestra's process.run starts a stage (Popen in its own
session, pipes, wait), interleaving the variants so a busy machine slows them alike:
direct exec of ``/bin/true`` (orchestra's old fast path for plain commands, the floor),
``bash -c true`` (what every stage runs now) and ``bash -c /bin/true``.
Usage: python benchmarks/bench_shell.py [N] [REPEATS]
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

BASH = "/bin/bash" if os.path.exists("/bin/bash") else "bash"
VARIANTS = {
    "exec /bin/true directly (old fast path, floor)": ["/bin/true"],
    "bash -c true (builtin)": [BASH, "-c", "true"],
    "bash -c /bin/true (bash execs it, no extra fork)": [BASH, "-c", "/bin/true"],
}


def batch(argv: list[str], n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
        proc.communicate()
    return time.perf_counter() - started


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(repeats):
        for name, argv in VARIANTS.items():
            times[name].append(batch(argv, n))
    floor = sorted(times[next(iter(VARIANTS))])[repeats // 2]
    print(f"{n} process starts, median of {repeats} (interleaved)")
    for name, values in times.items():
        med = sorted(values)[repeats // 2]
        print(f"{name:52s} {med * 1000:8.1f} ms   {med / n * 1000:6.2f} ms/stage   "
              f"+{(med - floor) / n * 1000:5.2f} ms/stage over the floor")


if __name__ == "__main__":
    main()
