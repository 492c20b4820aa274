"""16-wide fan-out of 0.5 s stages with -j 2: wall time vs the ideal 4 s (target ≤ 1.05×)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from _util import ORCHESTRA, fanout_project, fresh_home, report, timed


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    project = fanout_project(Path(tempfile.mkdtemp()) / "fanout", 16, 0.5)
    # One home: the first run validates the MLproject (cached by digest); --no-cache makes every
    # measured run execute all 17 stages.
    env = {"ORCHESTRA_HOME": fresh_home()}
    timed([*ORCHESTRA, "run", str(project), "-q"], env)
    samples = [timed([*ORCHESTRA, "run", str(project), "-j", "2", "-q", "--no-cache"], env) for _ in range(repeats)]
    report("16 x 0.5 s stages, -j 2 (ideal 4.0 s)", samples)
    print(f"ratio to ideal: {sorted(samples)[len(samples) // 2] / 4.0:.3f}")


if __name__ == "__main__":
    main()
