"""Cost of mirroring to MLflow: a 20-stage chain run without tracking, mirrored to a live
`mlflow server` (waiting for the queue to drain at the end, and not: the latter is what the
pipeline itself pays, one synchronous child-run creation per stage), and with the server down
(the pipeline must not wait on it).

Needs the mlflow venv (.ci/run builds .ci/.venvs/mlflow, or set ORCHESTRA_TEST_MLFLOW_VENV).
Usage: python benchmarks/bench_mlflow.py [N] [REPEATS]
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _util import ORCHESTRA, chain_project, fresh_home, report, timed  # noqa: E402

from tests.mlflow_server import MlflowServer, mlflow_venv  # noqa: E402


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    venv = mlflow_venv()
    if venv is None:
        sys.exit("no mlflow venv: run .ci/run once or set ORCHESTRA_TEST_MLFLOW_VENV")
    project = chain_project(Path(tempfile.mkdtemp()) / "chain", n)
    server = MlflowServer(venv, Path(tempfile.mkdtemp()) / "server").start()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    plain, live, nodrain, down = [], [], [], []
    try:
        for _ in range(repeats):
            plain.append(timed([*ORCHESTRA, "run", str(project), "-q", "--no-cache"], {"ORCHESTRA_HOME": fresh_home()}))
            live.append(timed([*ORCHESTRA, "run", str(project), "-q", "--no-cache", "--tracking-uri", server.url,
                               "--experiment", "bench"], {"ORCHESTRA_HOME": fresh_home()}))
            nodrain.append(timed([*ORCHESTRA, "run", str(project), "-q", "--no-cache", "--tracking-uri", server.url,
                                  "--experiment", "bench", "--hooks-drain", "0"], {"ORCHESTRA_HOME": fresh_home()}))
            down.append(timed([*ORCHESTRA, "run", str(project), "-q", "--no-cache", "--tracking-uri", dead],
                              {"ORCHESTRA_HOME": fresh_home()}))
    finally:
        server.stop()
    print(f"{n}-stage chain of no-op commands")
    report("orchestra run, no tracking", plain)
    report("mirrored to a live mlflow server (full drain)", live)
    report("mirrored, not waiting for the queue (drain 0)", nodrain)
    report("orchestra run, tracking server down", down)


if __name__ == "__main__":
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    main()
