"""Per-stage overhead of ``--executor dask://`` vs the local pool.

Starts a Dask scheduler and two workers (one thread each) on 127.0.0.1, then times the same
projects on both executors: the 200-stage chain of no-op commands (cold: every stage runs) and
the 16-wide fan-out of 0.5 s stages with -j 2 (ideal 4 s). The chain also runs through a
``file://`` artifact store, which adds the upload/download path of multi-machine runs.

Usage: python benchmarks/bench_dask.py [REPEATS]
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _util import ORCHESTRA, bench_env, chain_project, fanout_project, fresh_home, report, timed

REPO = Path(__file__).resolve().parents[1]


def start_cluster(tmp: Path) -> tuple[str, list[subprocess.Popen]]:
    env = bench_env({"PYTHONPATH": str(REPO), "DASK_LOGGING__DISTRIBUTED": "error"})
    sfile = tmp / "scheduler.json"
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", "0", "--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(sfile)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)]
    while not (sfile.exists() and sfile.read_text().strip()):
        time.sleep(0.05)
    time.sleep(0.1)
    address = json.loads(sfile.read_text())["address"]
    for i in range(2):
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", address, "--host", "127.0.0.1", "--nthreads", "1",
             "--dashboard-address", "127.0.0.1:0", "--local-directory", str(tmp / f"w{i}")],
            env={**env, "ORCHESTRA_WORKER_DIR": str(tmp / f"scratch{i}")}, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True))
    from distributed import Client

    with Client(address, timeout=30) as client:
        client.wait_for_workers(2, timeout=60)
    return address, procs


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    tmp = Path(tempfile.mkdtemp(prefix="bench-dask-"))
    address, procs = start_cluster(tmp)
    dask = ["--executor", "dask://" + address.removeprefix("tcp://")]
    try:
        n = 200
        chain = chain_project(tmp / "chain", n)
        single = chain_project(tmp / "single", 1)
        fan = fanout_project(tmp / "fanout", 16, 0.5)
        rows: dict[str, list[float]] = {k: [] for k in ("local", "dask", "dask_store", "fan_local", "fan_dask",
                                                         "one_local", "one_dask")}
        for i in range(repeats):
            # The fixed cost of a run (interpreter, imports: distributed alone is ~0.5-1.5 s here).
            rows["one_local"].append(timed([*ORCHESTRA, "run", str(single), "-e", "s0", "-q"], {"ORCHESTRA_HOME": fresh_home()}))
            rows["one_dask"].append(timed([*ORCHESTRA, "run", str(single), "-e", "s0", "-q", *dask],
                                          {"ORCHESTRA_HOME": fresh_home()}))
            rows["local"].append(timed([*ORCHESTRA, "run", str(chain), "-q"], {"ORCHESTRA_HOME": fresh_home()}))
            rows["dask"].append(timed([*ORCHESTRA, "run", str(chain), "-q", *dask], {"ORCHESTRA_HOME": fresh_home()}))
            rows["dask_store"].append(timed([*ORCHESTRA, "run", str(chain), "-q", *dask], {
                "ORCHESTRA_HOME": fresh_home(), "ORCHESTRA_ARTIFACTS": f"file://{tmp}/store{i}"}))
        home = fresh_home()
        timed([*ORCHESTRA, "run", str(fan), "-q"], {"ORCHESTRA_HOME": home})
        for _ in range(max(3, repeats // 2)):
            rows["fan_local"].append(timed([*ORCHESTRA, "run", str(fan), "-j", "2", "-q", "--no-cache"],
                                           {"ORCHESTRA_HOME": home}))
            rows["fan_dask"].append(timed([*ORCHESTRA, "run", str(fan), "-j", "2", "-q", "--no-cache", *dask],
                                          {"ORCHESTRA_HOME": home}))
        print("1-stage project (fixed cost of a run)")
        report("local pool", rows["one_local"])
        report("dask", rows["one_dask"])
        print(f"{n}-stage chain of no-op commands, cold (every stage runs)")
        report("local pool", rows["local"])
        report("dask, shared paths", rows["dask"])
        report("dask, file:// artifact store", rows["dask_store"])
        med = {k: statistics.median(v) for k, v in rows.items()}
        per = {k: (med[k] - med["one_" + ("local" if k == "local" else "dask")]) / (n - 1) * 1000
               for k in ("local", "dask", "dask_store")}
        print(f"per stage, fixed cost removed ((chain - 1-stage) / {n - 1}): local {per['local']:.2f} ms, "
              f"dask {per['dask']:.2f} ms, dask + file:// store {per['dask_store']:.2f} ms")
        print("16 x 0.5 s stages, -j 2 (ideal 4.0 s; dask: 2 workers x 1 thread)")
        report("local pool", rows["fan_local"])
        report("dask", rows["fan_dask"])
        fixed = med["one_dask"] - med["one_local"]
        print(f"ratio to ideal: local {med['fan_local'] / 4:.3f}, dask {med['fan_dask'] / 4:.3f}; dask adds "
              f"{(med['fan_dask'] - med['fan_local'] - fixed) / 17 * 1000:.1f} ms/stage beyond its fixed cost")
    finally:
        for proc in reversed(procs):
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            proc.wait(10)


if __name__ == "__main__":
    main()
