"""Where a chained stage's time and CPU go on Dask: per process and between tasks.

Starts the cluster of ``bench_dask.py`` (a scheduler and two 1-thread workers on 127.0.0.1, using
the driver's ``ORCHESTRA_HOME``), runs the 200-stage no-op chain cold ROUNDS times and prints, per
round and per stage:
- the CPU of the driver, the scheduler, each worker process and the stage processes it reaped
  (``/proc``; the driver's includes its fixed cost, ~0.5 s: run with ``--stages 2`` to see it);
- from Dask's task stream, how long each task ran on its worker (``compute``) and the time from
  a task's end to the start of the next one (``gap``: the worker reporting the end, the
  scheduler sending the next task, the worker starting it), as deciles.
The same for plain ``client.submit`` tasks chained through futures (``bash -c true`` each),
the floor, with ``--floor``.

Usage: python benchmarks/profile_dask.py [ROUNDS] [--store] [--floor] [--stages N]
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bench_dask
from _util import ORCHESTRA, bench_env, chain_project

TICK = os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except OSError:
                continue
    return found


def _cpu(pid: int) -> tuple[float, float]:
    """Seconds of CPU of ``pid`` itself and of its reaped children."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    user, system, child_user, child_system = (int(x) for x in fields[11:15])
    return (user + system) / TICK, (child_user + child_system) / TICK


def _deciles(values: list[float]) -> str:
    return " ".join(f"{q * 1000:.1f}" for q in statistics.quantiles(values, n=10))


def _stream(client, since: float, prefix: str) -> str:  # noqa: ANN001 - a distributed.Client
    records = [r for r in client.get_task_stream(start=since) if str(r["key"]).startswith(prefix)]
    spans = sorted((r["startstops"][-1] for r in records), key=lambda s: s["start"])
    compute = [s["stop"] - s["start"] for s in spans]
    gaps = [b["start"] - a["stop"] for a, b in zip(spans, spans[1:])]
    return (f"  {len(spans)} tasks on {len({r['worker'] for r in records})} worker(s); compute median "
            f"{statistics.median(compute) * 1000:.2f} ms (deciles {_deciles(compute)}); gap median "
            f"{statistics.median(gaps) * 1000:.2f} ms (deciles {_deciles(gaps)})")


def _shell_stage(command: str, _previous: object = None) -> int:
    """The floor's task (defined here: the scheduler unpickles this script's functions by value)."""
    return subprocess.run(["bash", "-c", command], stdout=subprocess.PIPE, stderr=subprocess.PIPE).returncode


def _floor(client, stages: int) -> None:  # noqa: ANN001 - a distributed.Client
    since, future = time.time(), None
    for _ in range(stages):
        future = client.submit(_shell_stage, "true", future, pure=False, key=f"floor-{time.time_ns()}")
    assert future is not None
    future.result()
    print(f"floor, chained through futures, load {os.getloadavg()[0]:.2f}")
    print(_stream(client, since, "floor-"), flush=True)


def main() -> None:
    args = sys.argv[1:]
    rounds = int(args[0]) if args and args[0].isdigit() else 3
    stages = int(args[args.index("--stages") + 1]) if "--stages" in args else 200
    tmp = Path(tempfile.mkdtemp(prefix="profile-dask-"))
    home = tmp / "home"
    address, procs = bench_dask.start_cluster(tmp, home)
    # The worker processes are the nannies' children (with multiprocessing's resource tracker;
    # the nannies' own CPU is negligible).
    workers = [pid for proc in procs[1:] for pid in _children(proc.pid)]
    from distributed import Client

    client = Client(address, timeout=30, set_as_default=False)
    client.get_task_stream()  # installs the scheduler's task-stream plugin
    chain = chain_project(tmp / "chain", stages)
    try:
        if "--floor" in args:
            client.submit(_shell_stage, "true", pure=False).result()
            for _ in range(rounds):
                _floor(client, stages)
            return
        for i in range(rounds):
            env = {"ORCHESTRA_HOME": str(home)}
            if "--store" in args:
                env["ORCHESTRA_ARTIFACTS"] = f"file://{tmp}/store{i}"
            project = bench_dask._fresh(chain, "profile", i)
            before = {pid: _cpu(pid) for pid in [procs[0].pid, *workers]}
            own = resource.getrusage(resource.RUSAGE_CHILDREN)
            since, start = time.time(), time.perf_counter()
            executor = "dask://" + address.removeprefix("tcp://")
            subprocess.run([*ORCHESTRA, "run", str(project), "-q", "--executor", executor], check=True, env=bench_env(env), stdout=subprocess.DEVNULL)
            wall = time.perf_counter() - start
            done = resource.getrusage(resource.RUSAGE_CHILDREN)
            driver = done.ru_utime + done.ru_stime - own.ru_utime - own.ru_stime
            after = {pid: _cpu(pid) for pid in before}
            per = {pid: ((after[pid][0] - before[pid][0]) / stages * 1000,
                         (after[pid][1] - before[pid][1]) / stages * 1000) for pid in before}
            print(f"round {i}: {wall / stages * 1000:.1f} ms a stage (fixed cost included), load "
                  f"{os.getloadavg()[0]:.2f}; CPU ms a stage: driver {driver / stages * 1000:.1f}, "
                  f"scheduler {per[procs[0].pid][0]:.1f}, workers " + ", ".join(
                      f"{mine:.1f} (+ stage processes {reaped:.1f})" for pid, (mine, reaped) in per.items()
                      if pid != procs[0].pid))
            print(_stream(client, since, "orchestra-"), flush=True)
    finally:
        client.close()
        bench_dask.stop_cluster(procs)


if __name__ == "__main__":
    main()
