"""200-stage chain of no-op commands: cold run, warm run (all stages load), plain bash.

Targets (README): cold ≤ 0.8 s, warm ≤ 0.25 s. Usage: python benchmarks/bench_chain.py [N] [REPEATS]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from _util import ORCHESTRA, chain_project, fresh_home, report, timed


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    project = chain_project(Path(tempfile.mkdtemp()) / "chain", n)
    script = project / "chain.sh"
    script.write_text("set -e\n" + "true\n" * n)
    bash = [timed(["bash", str(script)]) for _ in range(repeats)]
    bash_fork = Path(project / "chain_fork.sh")
    bash_fork.write_text("set -e\n" + "/bin/true\n" * n)
    forked = [timed(["bash", str(bash_fork)]) for _ in range(repeats)]
    cold, warm = [], []
    for _ in range(repeats):
        env = {"ORCHESTRA_HOME": fresh_home()}
        cold.append(timed([*ORCHESTRA, "run", str(project), "-q"], env))
        warm.append(timed([*ORCHESTRA, "run", str(project), "-q"], env))
    help_times = [timed([*ORCHESTRA, "--help"]) for _ in range(repeats * 2)]
    print(f"{n}-stage chain of no-op commands")
    report("bash script (builtin true)", bash)
    report("bash script (/bin/true, one process each)", forked)
    report("orchestra run, cold (fresh ORCHESTRA_HOME)", cold)
    report("orchestra run, warm (every stage loads)", warm)
    report("orchestra --help", help_times)
    med = sorted(cold)[len(cold) // 2] - sorted(forked)[len(forked) // 2]
    print(f"orchestration overhead per stage (cold - /bin/true script) / {n}: {med / n * 1000:.2f} ms")


if __name__ == "__main__":
    main()
