"""Cost of checking a stage's inputs before and after its attempt, on a 10,000-file input.

A real run publishes 10,000 files; then the check the executor does around each downstream
attempt (``store.inputs.watch`` before: stat + recorded-token lookup; ``check`` after: stat and
compare) is timed on that run's outputs, beside a floor measured in the same run:
``find DIR -type f | xargs stat`` (one stat per file, from bash).

    python benchmarks/bench_input_check.py [--files 10000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._util import ORCHESTRA, bench_env, fresh_home, report  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    home = fresh_home()
    os.environ["ORCHESTRA_HOME"] = home
    project = Path(home) / "proj"
    project.mkdir()
    (project / "make.sh").write_text(f'for i in $(seq {args.files}); do echo "$i" > "$1/f$i.txt"; done\n')
    (project / "MLproject").write_text('entry_points:\n  make: {command: "bash make.sh {outputs}"}\n'
                                       '  use: {command: "true", depends_on: [make]}\n')
    subprocess.run([*ORCHESTRA, "run", str(project), "-q"], check=True, env=bench_env())

    from orchestra.store import inputs, runs as runstore

    record = runstore.list_runs(limit=1)[0]
    make_stage = next(s for s in record.stages if s.name == "make")
    dirs, manifests = {"make": make_stage.outputs_dir}, {"make": make_stage.manifest}
    print(f"input: {len(make_stage.manifest)} files in {make_stage.outputs_dir}")
    before, after = [], []
    for _ in range(args.repeat):
        start = time.perf_counter()
        guard, problem = inputs.watch(dirs, manifests)
        before.append(time.perf_counter() - start)
        assert problem is None and guard is not None
        start = time.perf_counter()
        assert guard.check() is None
        after.append(time.perf_counter() - start)
    floor = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        subprocess.run(["bash", "-c", f"find {make_stage.outputs_dir} -type f | xargs stat > /dev/null"], check=True)
        floor.append(time.perf_counter() - start)
    report("before the attempt (stat + recorded tokens)", before)
    report("after the attempt (stat + compare)", after)
    report("floor: find DIR -type f | xargs stat", floor)


if __name__ == "__main__":
    main()
