"""Per-stage overhead of ``--executor dask://`` vs the local pool, beside a Dask floor.

Starts a Dask scheduler and two workers (one thread each) on 127.0.0.1, then times the same
projects on both executors: the 200-stage chain of no-op commands (cold: every stage runs) and
the 16-wide fan-out of 0.5 s stages with -j 2 (ideal 4 s). The chain also runs through a
``file://`` artifact store, which adds the upload/download path of multi-machine runs.

The floor, measured in the same run on the same cluster: the same chain as plain
``client.submit`` tasks that each run the same command (``bash -c true``, its output piped):
one after the other, each submitted once the previous result is back (what a driver that
decides each stage after its parent ended pays), and chained inside Dask (each task takes the
previous one's future: no driver between stages). Then a 1 → N fan-out of no-op stages for
N = 250, 1,000 and 2,000, with the driver's peak RSS: what it costs per stage shows whether the
driver's memory is bounded.

Usage: python benchmarks/bench_dask.py [REPEATS] [--only-fanout | --only-chain]
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _util import ORCHESTRA, bench_env, chain_project, fanout_project, fresh_home, report, timed

_PEAK = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
         "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
         "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")

REPO = Path(__file__).resolve().parents[1]


def start_cluster(tmp: Path, home: Path | None = None) -> tuple[str, list[subprocess.Popen]]:
    """A scheduler and two 1-thread workers; with ``home``, the workers use it as ORCHESTRA_HOME
    (as a driver on the same machine does by default): they publish outputs themselves, and
    orchestra submits a chain's next stages ahead of their parent's end."""
    env = bench_env({"PYTHONPATH": str(REPO), "DASK_LOGGING__DISTRIBUTED": "error",
                     **({"ORCHESTRA_HOME": str(home)} if home else {})})
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


def stop_cluster(procs: list[subprocess.Popen]) -> None:
    """SIGTERM the process groups ``start_cluster`` made, workers first, and wait for them."""
    for proc in reversed(procs):
        os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        proc.wait(10)


def _shell_stage(command: str, _previous: object = None) -> int:
    """A floor task: the stage's command through bash, its output piped, as orchestra runs it."""
    return subprocess.run(["bash", "-c", command], stdout=subprocess.PIPE, stderr=subprocess.PIPE).returncode


def floor(address: str, n: int, repeats: int) -> tuple[list[float], list[float]]:
    """Seconds per stage of an ``n``-task chain of plain Dask tasks: submitted one after the other's
    result, and chained through futures (each task waits on the previous one inside Dask)."""
    from distributed import Client

    sequential: list[float] = []
    chained: list[float] = []
    with Client(address, timeout=30, set_as_default=False) as client:
        client.submit(_shell_stage, "true", pure=False).result()  # warm: the function is known
        for _ in range(repeats):
            start = time.perf_counter()
            for _i in range(n):
                client.submit(_shell_stage, "true", pure=False).result()
            sequential.append((time.perf_counter() - start) / n)
            start = time.perf_counter()
            future = None
            for _i in range(n):
                future = client.submit(_shell_stage, "true", future, pure=False)
            assert future is not None
            future.result()
            chained.append((time.perf_counter() - start) / n)
            del future
    return sequential, chained


def fanout_noop(root: Path, width: int) -> Path:
    """1 → ``width`` stages of ``true``."""
    root.mkdir(parents=True, exist_ok=True)
    lines = ["name: wide", "entry_points:", "  start:", "    command: \"true\""]
    for i in range(width):
        lines += [f"  w{i}:", "    command: \"true\"", "    depends_on: [start]"]
    (root / "MLproject").write_text("\n".join(lines) + "\n")
    return root


def _fresh(project: Path, label: str, i: int) -> Path:
    """A copy of ``project`` whose code differs (a marker file): cold in a home of earlier runs."""
    copy = project.with_name(f"{project.name}-{label}-{i}")
    shutil.copytree(project, copy, dirs_exist_ok=True)
    (copy / "marker.txt").write_text(f"{label} {i} {time.time_ns()}\n")
    return copy


def peak(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and the peak RSS (MB) of the command (the run's driver: its stage processes
    are far smaller)."""
    out = subprocess.run([sys.executable, "-c", _PEAK, *argv], check=True, env=bench_env(env),
                         capture_output=True, text=True).stdout.split()
    return float(out[0]), int(out[1]) / 1024


def fanout_memory(tmp: Path, dask: list[str], repeats: int, home: Path) -> None:
    """The 1 → N fan-out on dask and on the local pool (-j 2), N = 250, 1,000, 2,000: wall time and
    the driver's peak RSS; what one more stage costs in driver memory."""
    widths = (250, 1000, 2000)
    print("1 → N fan-out of no-op stages (cold), the driver's peak RSS (medians)")
    for label, extra in (("dask", dask), ("local -j 2", ["-j", "2"])):
        med = {}
        for width in widths:
            project = fanout_noop(tmp / f"wide{width}", width)
            samples = [peak([*ORCHESTRA, "run", str(_fresh(project, label[:5], i)), "-q", *extra],
                            {"ORCHESTRA_HOME": str(home) if extra is dask else fresh_home()})
                       for i in range(max(1, repeats // 2))]
            wall = statistics.median(w for w, _ in samples)
            rss = statistics.median(r for _, r in samples)
            med[width] = rss
            print(f"  {label:10} N = {width:5}: {wall:6.2f} s ({wall / (width + 1) * 1000:.1f} ms a stage), "
                  f"peak RSS {rss:6.1f} MB")
        print(f"  {label:10} driver memory per extra stage: " + ", ".join(
            f"{(med[b] - med[a]) * 1024 / (b - a):.1f} KB ({a} → {b})" for a, b in zip(widths, widths[1:])))


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    repeats = int(args[0]) if args else 5
    tmp = Path(tempfile.mkdtemp(prefix="bench-dask-"))
    home = tmp / "home"  # the driver's and the workers' (each dask run: a project of its own, so cold)
    address, procs = start_cluster(tmp, home)
    dask = ["--executor", "dask://" + address.removeprefix("tcp://")]
    try:
        if "--only-fanout" in sys.argv:
            fanout_memory(tmp, dask, repeats, home)
            return
        n = 200
        chain = chain_project(tmp / "chain", n)
        single = chain_project(tmp / "single", 1)
        fan = fanout_project(tmp / "fanout", 16, 0.5)
        rows: dict[str, list[float]] = {k: [] for k in ("local", "dask", "dask_store", "fan_local", "fan_dask",
                                                         "one_local", "one_dask")}
        sequential: list[float] = []
        chained: list[float] = []
        for i in range(repeats):
            # Interleaved with orchestra's runs: the machine's load moves the floor too.
            seq, chn = floor(address, n, 1)
            sequential += seq
            chained += chn
            # The fixed cost of a run (interpreter, imports: distributed alone is ~0.5-1.5 s here).
            rows["one_local"].append(timed([*ORCHESTRA, "run", str(single), "-e", "s0", "-q"], {"ORCHESTRA_HOME": fresh_home()}))
            rows["one_dask"].append(timed([*ORCHESTRA, "run", str(_fresh(single, "one", i)), "-e", "s0", "-q", *dask],
                                          {"ORCHESTRA_HOME": str(home)}))
            rows["local"].append(timed([*ORCHESTRA, "run", str(chain), "-q"], {"ORCHESTRA_HOME": fresh_home()}))
            rows["dask"].append(timed([*ORCHESTRA, "run", str(_fresh(chain, "shared", i)), "-q", *dask],
                                      {"ORCHESTRA_HOME": str(home)}))
            rows["dask_store"].append(timed([*ORCHESTRA, "run", str(_fresh(chain, "store", i)), "-q", *dask], {
                "ORCHESTRA_HOME": str(home), "ORCHESTRA_ARTIFACTS": f"file://{tmp}/store{i}"}))
        timed([*ORCHESTRA, "run", str(fan), "-q"], {"ORCHESTRA_HOME": str(home)})
        for _ in range(0 if "--only-chain" in sys.argv else max(3, repeats // 2)):
            rows["fan_local"].append(timed([*ORCHESTRA, "run", str(fan), "-j", "2", "-q", "--no-cache"],
                                           {"ORCHESTRA_HOME": str(home)}))
            rows["fan_dask"].append(timed([*ORCHESTRA, "run", str(fan), "-j", "2", "-q", "--no-cache", *dask],
                                          {"ORCHESTRA_HOME": str(home)}))
        print("1-stage project (fixed cost of a run)")
        report("local pool", rows["one_local"])
        report("dask", rows["one_dask"])
        print(f"{n}-stage chain of no-op commands, cold (every stage runs)")
        report("local pool", rows["local"])
        report("dask, shared paths", rows["dask"])
        report("dask, file:// artifact store", rows["dask_store"])
        med = {k: statistics.median(v) for k, v in rows.items() if v}
        # Each repeat's chain minus the same repeat's 1-stage run (the load drifts between repeats).
        per = {k: statistics.median(chain - one for chain, one in
                                    zip(rows[k], rows["one_" + ("local" if k == "local" else "dask")])) / (n - 1) * 1000
               for k in ("local", "dask", "dask_store")}
        print(f"per stage, fixed cost removed (median of (chain - 1-stage) / {n - 1}): local {per['local']:.2f} ms, "
              f"dask {per['dask']:.2f} ms, dask + file:// store {per['dask_store']:.2f} ms")
        print(f"floor, {n} plain client.submit tasks of `bash -c true` on the same cluster: "
              f"one after the other's result {statistics.median(sequential) * 1000:.2f} ms a stage, "
              f"chained through futures {statistics.median(chained) * 1000:.2f} ms a stage")
        if "--only-chain" in sys.argv:
            return
        print("16 x 0.5 s stages, -j 2 (ideal 4.0 s; dask: 2 workers x 1 thread)")
        report("local pool", rows["fan_local"])
        report("dask", rows["fan_dask"])
        fixed = med["one_dask"] - med["one_local"]
        print(f"ratio to ideal: local {med['fan_local'] / 4:.3f}, dask {med['fan_dask'] / 4:.3f}; dask adds "
              f"{(med['fan_dask'] - med['fan_local'] - fixed) / 17 * 1000:.1f} ms/stage beyond its fixed cost")
        fanout_memory(tmp, dask, repeats, home)
    finally:
        stop_cluster(procs)


if __name__ == "__main__":
    main()
