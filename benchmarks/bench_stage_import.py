"""What ``import orchestra.stage`` costs a stage process: the interpreter with and without it, and
``python -X importtime``'s own figure for the package (target: under 20 ms)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _util import bench_env, report, timed  # noqa: E402

REPO = str(Path(__file__).resolve().parents[2])


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")]))}
    timed([sys.executable, "-c", "import orchestra.stage"], env)  # bytecode written once
    floor = [timed(["bash", "-c", "true"], env) for _ in range(n)]
    bare = [timed([sys.executable, "-c", "pass"], env) for _ in range(n)]
    stage = [timed([sys.executable, "-c", "import orchestra.stage"], env) for _ in range(n)]
    report("bash -c true (floor)", floor)
    report("python -c pass", bare)
    report("python -c 'import orchestra.stage'", stage)
    own = []
    for _ in range(n):
        err = subprocess.run([sys.executable, "-X", "importtime", "-c", "import orchestra.stage"], env=bench_env(env),
                             capture_output=True, text=True, check=True).stderr
        own.append(int(re.search(r"\|\s*(\d+) \| orchestra\.stage$", err, re.M).group(1)) / 1e6)
    report("-X importtime: orchestra.stage (cumulative)", own)


if __name__ == "__main__":
    main()
