"""Per-stage cost beside a bash floor measured in the same run (README "Speed").

The chain stage writes one small output file from its predecessor's:
``cat {inputs.prev}/me.txt > {outputs}/me.txt && echo "me p={p}" >> {outputs}/me.txt``. The floor
is a bash script doing the same in plain directories, each made by its own ``mkdir`` as orchestra
makes each stage's (two processes per stage: ``mkdir`` and the stage's ``cat``). Chain rows print
two more floors beside it: bash with every directory made by one ``mkdir`` (one process per
stage), and a Python loop running each stage as ``bash -c COMMAND`` in its own session with its
pipes read, as ``mlflow run`` runs an entry point (the spawn floor: what running stages through
bash costs before any orchestration). Every orchestra run is ``-j 2 -q``. Rows:

    help      orchestra --help
    one       a 1-stage run, cold (the fixed cost of a run)
    c20       20-stage chain, cold (fresh ORCHESTRA_HOME)
    c200      200-stage chain: cold, everything loads, last stage's param changed
    c2000     2,000-stage chain: cold and warm
    fanout    1 -> 16 x sleep 0.5 -> 1 with -j 2 (floor: the same with two bash slots)
    noop      200-stage chain of no-op commands (``true``, exec'd without a shell): cold and loaded
    plan      planning 10,000 and 100,000 stages (time and peak RSS, in a fresh process each; their
              MLprojects are 1.8 and 19 MB, the second over the default 16 MiB limit of a YAML
              file, raised with ORCHESTRA_MAX_YAML_BYTES)

Usage: python benchmarks/bench_chain.py [ROW ...] [--repeat N]   (default: every row, N=5)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import ORCHESTRA, bench_env, fresh_home, timed  # noqa: E402
from _util import chain_project as noop_chain  # noqa: E402

ROWS = ("help", "one", "c20", "c200", "c2000", "fanout", "plan", "noop")
RUN = [*ORCHESTRA, "run", "-j", "2", "-q"]


def chain_project(root: Path, n: int) -> Path:
    """``n`` stages, each copying its predecessor's one file and appending a line."""
    root.mkdir(parents=True, exist_ok=True)
    lines = ["name: chain", "entry_points:",
             "  s0:", "    parameters: {p: {type: string, default: \"1\"}}",
             "    command: \"echo 's0 p={p}' > {outputs}/me.txt\""]
    for i in range(1, n):
        lines += [f"  s{i}:", "    parameters: {p: {type: string, default: \"1\"}}",
                  f"    command: \"cat {{inputs.s{i - 1}}}/me.txt > {{outputs}}/me.txt && "
                  f"echo 's{i} p={{p}}' >> {{outputs}}/me.txt\"",
                  f"    depends_on: [s{i - 1}]"]
    (root / "MLproject").write_text("\n".join(lines) + "\n")
    return root


def chain_floor(root: Path, n: int) -> Path:
    script = root / "floor.sh"
    body = ['set -e', 'd=$(mktemp -d)', 'mkdir "$d/s0"', "echo 's0 p=1' > \"$d/s0/me.txt\""]
    for i in range(1, n):
        body += [f'mkdir "$d/s{i}"',
                 f"cat \"$d/s{i - 1}/me.txt\" > \"$d/s{i}/me.txt\" && echo 's{i} p=1' >> \"$d/s{i}/me.txt\""]
    body.append('rm -rf "$d"')
    script.write_text("\n".join(body) + "\n")
    return script



def chain_floor_one_mkdir(root: Path, n: int) -> Path:
    """The same chain in bash with every directory made by one ``mkdir``: one process per stage
    (its ``cat``), the cheapest way bash does this work."""
    script = root / "floor-one-mkdir.sh"
    body = ['set -e', 'd=$(mktemp -d)', 'cd "$d"', "mkdir " + " ".join(f"s{i}" for i in range(n)),
            "echo 's0 p=1' > s0/me.txt"]
    body += [f"cat s{i - 1}/me.txt > s{i}/me.txt && echo 's{i} p=1' >> s{i}/me.txt" for i in range(1, n)]
    body += ['cd /', 'rm -rf "$d"']
    script.write_text("\n".join(body) + "\n")
    return script


# Each stage as its own ``bash -c COMMAND`` in a new session with both pipes read, from a Python
# loop: what any driver that runs a stage the way ``mlflow run`` does (``bash -c``) pays before
# it does anything else (no planning, no store, no outputs moved).
_SPAWN_FLOOR = """
import os, shutil, subprocess, sys, tempfile
n, d = int(sys.argv[1]), tempfile.mkdtemp()
for i in range(n):
    os.mkdir(f"{d}/s{i}")
    cmd = (f"echo 's0 p=1' > {d}/s0/me.txt" if i == 0 else
           f"cat {d}/s{i - 1}/me.txt > {d}/s{i}/me.txt && echo 's{i} p=1' >> {d}/s{i}/me.txt")
    proc = subprocess.Popen(["bash", "-c", cmd], cwd=d, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    proc.communicate()
shutil.rmtree(d)
"""

def fanout_project(root: Path, width: int, seconds: float) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    lines = ["name: fanout", "entry_points:", "  start:", "    command: \"true\""]
    for i in range(width):
        lines += [f"  w{i}:", f"    command: \"sleep {seconds}\"", "    depends_on: [start]"]
    lines += ["  end:", "    command: \"true\"", f"    depends_on: [{', '.join(f'w{i}' for i in range(width))}]"]
    (root / "MLproject").write_text("\n".join(lines) + "\n")
    script = root / "floor.sh"
    pairs = "\n".join(f"sleep {seconds} & sleep {seconds} & wait" for _ in range(width // 2))
    script.write_text(f"true\n{pairs}\ntrue\n")
    return root


def ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def row(label: str, floor: list[float] | None, samples: list[float], note: str = "") -> None:
    floor_text = f"{ms(floor):9.1f} ms" if floor else "        —   "
    ratio = f"{ms(samples) / ms(floor):5.2f}x" if floor else "      "
    print(f"{label:44} floor {floor_text}   orchestra {ms(samples):9.1f} ms  {ratio}  "
          f"(min {min(samples) * 1000:.1f}, max {max(samples) * 1000:.1f}, n={len(samples)}){note}", flush=True)


def bench_chain(n: int, repeat: int, warm_variants: bool) -> None:
    root = Path(tempfile.mkdtemp()) / f"chain{n}"
    project = chain_project(root, n)
    floor_script = chain_floor(root, n)
    floor = [timed(["bash", str(floor_script)]) for _ in range(repeat)]
    cold, warm, changed = [], [], []
    target = ["-e", f"s{n - 1}"]  # (a 1-stage project without depends_on would default to main)
    for _ in range(repeat):
        env = {"ORCHESTRA_HOME": fresh_home()}
        cold.append(timed([*RUN, str(project), *target], env))
        if warm_variants:
            warm.append(timed([*RUN, str(project), *target], env))
            if n == 200:
                changed.append(timed([*RUN, str(project), *target, "-P", f"s{n - 1}.p=2"], env))
    row(f"{n}-stage chain, cold", floor, cold,
        f"  [{(ms(cold) - ms(floor)) / n:.2f} ms/stage above the floor]")
    if n > 1:  # two more floors, measured beside it
        tight = [timed(["bash", str(chain_floor_one_mkdir(root, n))]) for _ in range(repeat)]
        spawn = [timed([sys.executable, "-c", _SPAWN_FLOOR, str(n)]) for _ in range(repeat)]
        print(f"{'':44} floors: bash with one mkdir {ms(tight):.1f} ms ({ms(cold) / ms(tight):.2f}x); "
              f"a Python loop of `bash -c STAGE` {ms(spawn):.1f} ms ({ms(cold) / ms(spawn):.2f}x, "
              f"{(ms(cold) - ms(spawn)) / n:.2f} ms/stage above it)", flush=True)
    if warm:
        row(f"{n}-stage chain, everything loads", floor, warm)
    if changed:
        row(f"{n}-stage chain, last stage's param changed", floor, changed)


def bench_fanout(repeat: int) -> None:
    project = fanout_project(Path(tempfile.mkdtemp()) / "fanout", 16, 0.5)
    floor = [timed(["bash", str(project / "floor.sh")]) for _ in range(repeat)]
    env = {"ORCHESTRA_HOME": fresh_home()}
    timed([*RUN, str(project)], env)  # validates the MLproject once (cached by digest)
    samples = [timed([*RUN, str(project), "--no-cache"], env) for _ in range(repeat)]
    row("1 -> 16 x sleep 0.5 -> 1, -j 2", floor, samples)


_PLAN = """
import os, resource, sys, time
os.environ["ORCHESTRA_HOME"] = sys.argv[2]
start = time.perf_counter()
from orchestra.app import api
api.plan(sys.argv[1], api.RunOptions())
first = time.perf_counter() - start
start = time.perf_counter()
api.plan(sys.argv[1], api.RunOptions())
again = time.perf_counter() - start
print(first, again, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def bench_plan(repeat: int) -> None:
    for n in (10_000, 100_000):
        project = chain_project(Path(tempfile.mkdtemp()) / f"plan{n}", n)
        firsts, agains, rss = [], [], []
        for _ in range(repeat if n < 100_000 else max(1, repeat // 2)):
            # The 100,000-stage MLproject (19 MB) is over the default limit of a YAML file (16 MiB).
            out = subprocess.run([sys.executable, "-c", _PLAN, str(project), fresh_home()], check=True,
                                 env=bench_env({"ORCHESTRA_MAX_YAML_BYTES": str(64 << 20)}),
                                 capture_output=True, text=True).stdout.split()
            firsts.append(float(out[0]))
            agains.append(float(out[1]))
            rss.append(float(out[2]))
        row(f"plan {n} stages, cold (imports + validation)", None, firsts)
        row(f"plan {n} stages, again in the same process", None, agains,
            f"  peak RSS {statistics.median(rss):.0f} MB")


def bench_noop(repeat: int) -> None:
    root = Path(tempfile.mkdtemp()) / "noop"
    project = noop_chain(root, 200)
    (root / "floor.sh").write_text("set -e\n" + "/bin/true\n" * 200)
    floor = [timed(["bash", str(root / "floor.sh")]) for _ in range(repeat)]
    cold, warm = [], []
    for _ in range(repeat):
        env = {"ORCHESTRA_HOME": fresh_home()}
        cold.append(timed([*RUN, str(project)], env))
        warm.append(timed([*RUN, str(project)], env))
    row("200-stage chain of no-op commands, cold", floor, cold)
    row("200-stage chain of no-op commands, loaded", floor, warm)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("rows", nargs="*", help=f"any of {', '.join(ROWS)} (default: all)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rows = args.rows or list(ROWS)
    if set(rows) - set(ROWS):
        parser.error(f"unknown rows {sorted(set(rows) - set(ROWS))}: choose among {', '.join(ROWS)}")
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}, {os.cpu_count()} cores, "
          f"medians of {args.repeat}")
    start = time.perf_counter()
    if "help" in rows:
        row("orchestra --help", None, [timed([*ORCHESTRA, "--help"]) for _ in range(args.repeat * 2)])
        row("python -c pass (the interpreter's own start)", None,
            [timed([sys.executable, "-c", "pass"]) for _ in range(args.repeat * 2)])
    if "one" in rows:
        bench_chain(1, args.repeat, warm_variants=False)
    if "c20" in rows:
        bench_chain(20, args.repeat, warm_variants=False)
    if "c200" in rows:
        bench_chain(200, args.repeat, warm_variants=True)
    if "c2000" in rows:
        bench_chain(2000, max(1, args.repeat // 2), warm_variants=True)
    if "fanout" in rows:
        bench_fanout(max(1, args.repeat // 2))
    if "plan" in rows:
        bench_plan(max(1, args.repeat // 2))
    if "noop" in rows:
        bench_noop(args.repeat)
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}; took {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
