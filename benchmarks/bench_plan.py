"""Planning 10,000 stages (load + validate + graph + plan, no execution): target ≤ 1 s."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _util import chain_project  # noqa: E402


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    project = chain_project(Path(tempfile.mkdtemp()) / "big", n)
    os.environ["ORCHESTRA_HOME"] = tempfile.mkdtemp()
    from orchestra.app import api

    samples = []
    for attempt in range(4):
        start = time.perf_counter()
        api.plan(str(project), api.RunOptions())
        samples.append(time.perf_counter() - start)
    print(f"plan {n} stages: first {samples[0] * 1000:.0f} ms (validates the schema), "
          f"warm median {sorted(samples[1:])[1] * 1000:.0f} ms")


if __name__ == "__main__":
    main()
