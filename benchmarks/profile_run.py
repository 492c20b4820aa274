"""Where a run's time goes: cProfile of one ``orchestra run`` in a fresh process, top entries.

Profiles (in a child interpreter, so imports count as they do for a user):
    one       a 1-stage run, cold (fresh ORCHESTRA_HOME): the fixed cost of a run
    c200      200-stage chain, cold
    loaded    200-stage chain, everything loads (run once before, not profiled)

Usage: python benchmarks/profile_run.py [one|c200|loaded] [--top N]
Prints the share of imports, then the top functions by cumulative time (orchestra's own and the
standard library's). cProfile inflates Python-heavy code; read the shares, not the absolute times.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import bench_env  # noqa: E402
from bench_chain import chain_project  # noqa: E402

CHILD = r"""
import cProfile, pstats, sys
argv, out, top = sys.argv[1:-2], sys.argv[-2], int(sys.argv[-1])
sys.argv = ["orchestra", *argv]
profile = cProfile.Profile()
profile.enable()
try:
    from orchestra.cli import main
    main()
finally:
    profile.disable()
stats = pstats.Stats(profile)
total = stats.total_tt
imports = sum(v[3] for k, v in stats.stats.items() if k[2] == "_find_and_load" and "importlib._bootstrap" in k[0])
print(f"profiled {total * 1000:.0f} ms; imports (outermost _find_and_load) {imports * 1000:.0f} ms", file=sys.stderr)
stats.sort_stats("cumulative").print_stats(top)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("one", "c200", "loaded"), nargs="?", default="one")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="orchestra-profile-"))
    project = chain_project(root / "proj", 1 if args.what == "one" else 200)
    env = bench_env({"ORCHESTRA_HOME": str(root / "home")})
    argv = ["run", str(project), "-j", "2", "-q", "-e", "s0" if args.what == "one" else "s199"]
    if args.what == "loaded":
        subprocess.run([sys.executable, "-m", "orchestra", *argv], env=env, check=True, stdout=subprocess.DEVNULL)
    result = subprocess.run([sys.executable, "-c", CHILD, *argv, os.devnull, str(args.top)], env=env,
                            capture_output=True, text=True, check=True)
    print(result.stderr.strip())
    lines = result.stdout.splitlines()
    start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls")), 0)
    print("\n".join(lines[start:]))


if __name__ == "__main__":
    main()
