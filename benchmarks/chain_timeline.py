"""The critical path of a cold chain with the local pool, stage by stage (README "Speed").

Runs ``orchestra run`` of an N-stage chain (``bench_chain.py``'s stage) in this process with
time stamps around the functions between one stage's process exit and the next one's start,
then prints each function's median and the medians of the gaps:

    exit -> next start     the stage's pipes closed (its process ended) -> the next Popen began
    exit -> thread done    what the stage's thread does after its process (sweep, publish, ...)
    Popen                  starting the next process (vfork + exec of bash)
    command                Popen returned -> the pipes closed (bash and its cat)

Usage: python benchmarks/chain_timeline.py [N] (default 200). The stamps cost a few us each:
compare trees with this script, not its figures with bench_chain.py's.
"""

from __future__ import annotations

import functools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_chain import chain_project  # noqa: E402

LOG: list[tuple[str, float, float]] = []


def _stamp(owner: object, attr: str, label: str) -> None:
    fn = getattr(owner, attr)

    @functools.wraps(fn)
    def stamped(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            LOG.append((label, start, time.perf_counter()))

    setattr(owner, attr, stamped)


def _install() -> None:
    from orchestra.app import driver
    from orchestra.execution import descendants, engine, process
    from orchestra.execution.executors import base, local
    from orchestra.store import artifacts, inputs, runs

    class Popen(subprocess.Popen):  # the stage processes' starts (and the watchdog's, the first)
        def __init__(self, *args, **kwargs):
            start = time.perf_counter()
            super().__init__(*args, **kwargs)
            LOG.append(("Popen", start, time.perf_counter()))

    shim = type(sys)("subprocess")
    shim.__dict__.update(subprocess.__dict__)
    shim.Popen = Popen
    process.subprocess = shim
    for owner, attr, label in [
            (process, "_pump", "pump"), (descendants, "sweep", "sweep"), (inputs, "watch", "inputs.watch"),
            (artifacts, "publish", "publish"), (artifacts, "link_tree", "link_tree"), (local, "execute", "execute"),
            (runs, "record_objects", "record_objects"), (runs, "update_stage", "update_stage"),
            (engine._Engine, "on_outcome", "engine.on_outcome"), (engine._Engine, "start_ready", "engine.start_ready"),
            (driver.EventDriver, "ended", "driver.ended"), (driver.EventDriver, "started", "driver.started"),
            (driver.EventDriver, "task", "driver.task"), (driver.EventDriver, "decide", "driver.decide")]:
        if hasattr(owner, attr):
            _stamp(owner, attr, label)


def _report() -> None:
    by: dict[str, list[float]] = defaultdict(list)
    for label, start, end in LOG:
        by[label].append((end - start) * 1000)
    print(f"{'function':22} {'calls':>6} {'median ms':>10} {'total ms':>9}")
    for label, values in sorted(by.items(), key=lambda kv: -sum(kv[1])):
        print(f"{label:22} {len(values):6d} {statistics.median(values):10.3f} {sum(values):9.1f}")
    exits = sorted(end for label, _s, end in LOG if label == "pump")
    popens = sorted((start, end) for label, start, end in LOG if label == "Popen")[1:]  # (not the watchdog)
    done = sorted(end for label, _s, end in LOG if label == "execute")
    gaps = {"exit -> next start": [b[0] - a for a, b in zip(exits, popens[1:])],
            "exit -> thread done": [b - a for a, b in zip(exits, done)],
            "Popen": [end - start for start, end in popens],
            "command": [a - p[1] for p, a in zip(popens, exits)]}
    for name, values in gaps.items():
        if values[1:]:
            print(f"{name:22} median {statistics.median(values[1:]) * 1000:.3f} ms")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    root = Path(tempfile.mkdtemp(prefix="orchestra-timeline-"))
    project = chain_project(root / "proj", n)
    os.environ["ORCHESTRA_HOME"] = str(root / "home")
    _install()
    from orchestra.cli import main as cli

    sys.argv = ["orchestra", "run", str(project), "-j", "2", "-q", "-e", f"s{n - 1}"]
    started = time.perf_counter()
    try:
        cli()
    except SystemExit as exc:
        if exc.code:
            raise
    print(f"{n}-stage chain, cold: {time.perf_counter() - started:.3f} s in process; "
          f"load average {os.getloadavg()[0]:.2f}")
    _report()
    sys.stdout.flush()
    os._exit(0)  # (the CLI's own exit path ends without the interpreter's teardown)


if __name__ == "__main__":
    main()
