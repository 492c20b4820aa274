"""--load-from of a stage with a 1 GB output: time, and disk growth (must not copy the bytes).

Usage: python benchmarks/bench_load_from.py [SIZE_MB] [REPEATS]
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _util import ORCHESTRA, bench_env, fresh_home, report


def disk_used(path: Path) -> int:
    out = subprocess.run(["du", "-s", "-B1", str(path)], capture_output=True, text=True, check=True).stdout
    return int(out.split()[0])


def main() -> None:
    size_mb = int(sys.argv[1]) if len(sys.argv) > 1 else 1024
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    project = Path(tempfile.mkdtemp()) / "big"
    project.mkdir()
    (project / "MLproject").write_text(
        "entry_points:\n  big:\n"
        f"    command: \"head -c {size_mb}M /dev/urandom > {{outputs}}/blob.bin\"\n"
        "  small:\n    depends_on: [big]\n    command: \"ls -l {inputs.big} > {outputs}/listing.txt\"\n")
    home = fresh_home()
    env = bench_env({"ORCHESTRA_HOME": home})
    first = subprocess.run([*ORCHESTRA, "run", str(project), "--json", "-q"], env=env, capture_output=True,
                           text=True, check=True)
    run_id = json.loads(first.stdout)["run_id"]
    before = disk_used(Path(home))
    cli, in_process = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([*ORCHESTRA, "run", str(project), "-q", "--load-from", run_id], env=env, check=True)
        cli.append(time.perf_counter() - start)
    # The load step alone, in process: verify the manifest against the stored stat, then link.
    os.environ["ORCHESTRA_HOME"] = home
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from orchestra.store import artifacts, runs

    source = runs.stage_of(run_id, "big")
    assert source is not None
    for i in range(repeats):
        dest = Path(tempfile.mkdtemp(dir=home)) / "out"
        start = time.perf_counter()
        result = artifacts.load(source.manifest, dest)
        in_process.append(time.perf_counter() - start)
        assert result.ok, result.problem
        shutil.rmtree(dest.parent)
    after = disk_used(Path(home))
    print(f"--load-from of a {size_mb} MB output")
    report("orchestra run --load-from (whole CLI)", cli)
    report("load step (verify + link), in process", in_process)
    print(f"disk growth over {repeats} loads: {(after - before) / 1e6:.2f} MB (output is {size_mb} MB)")
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
