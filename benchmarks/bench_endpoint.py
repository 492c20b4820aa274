"""Per-stage cost of the run's MLflow tracking endpoint.

A chain of N stages (default 20) whose command runs the mlflow venv's python:
- ``log``: imports mlflow and logs 10 metrics through the client (so: to the endpoint);
- ``nolog``: imports mlflow and logs nothing (the same process cost without the endpoint's work);
- the bash floor: the N ``nolog`` commands in a bash loop, without orchestra;
and, for the endpoint alone, in this process: the time ``Endpoint.open_stage`` takes the first
time (binding the socket, starting its thread) and the time of one ``runs/log-metric`` request.

(log − nolog) / N is what the endpoint costs a stage that logs 10 metrics.

Needs the mlflow venv (.ci/run builds .ci/.venvs/mlflow, or set ORCHESTRA_TEST_MLFLOW_VENV).
Usage: python benchmarks/bench_endpoint.py [N] [REPEATS]
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _util import ORCHESTRA, chain_project, fresh_home, report, timed  # noqa: E402

from tests.mlflow_server import mlflow_venv  # noqa: E402

LOG = "import mlflow; [mlflow.log_metric('m%d' % i, i) for i in range(10)]"
NOLOG = "import mlflow"


def start_cost(repeats: int) -> list[float]:
    from orchestra.integrations.endpoint import Endpoint

    samples = []
    for _ in range(repeats):
        endpoint = Endpoint("bench")
        scratch = Path(tempfile.mkdtemp())
        began = time.perf_counter()
        endpoint.open_stage("s", staging=scratch / "staging", outputs=scratch / "out")
        samples.append(time.perf_counter() - began)
        endpoint.stop()
    return samples


def request_cost(repeats: int, calls: int = 200) -> list[float]:
    """Seconds per ``runs/log-metric`` request over one keep-alive connection, as the mlflow
    client sends them (the endpoint's own cost, without the client's)."""
    import requests

    from orchestra.integrations.endpoint import Endpoint

    samples = []
    for _ in range(repeats):
        endpoint = Endpoint("bench")
        scratch = Path(tempfile.mkdtemp())
        env = endpoint.open_stage("s", staging=scratch / "staging", outputs=scratch / "out")
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {env['MLFLOW_TRACKING_TOKEN']}"
        url = f"{env['MLFLOW_TRACKING_URI']}/api/2.0/mlflow/runs/log-metric"
        began = time.perf_counter()
        for i in range(calls):
            session.post(url, json={"run_id": env["MLFLOW_RUN_ID"], "key": "m", "value": i, "step": i,
                                    "timestamp": 1}).raise_for_status()
        samples.append((time.perf_counter() - began) / calls)
        endpoint.stop()
    return samples


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    if n == 0:  # the endpoint alone (no mlflow venv needed)
        report("endpoint start (first open_stage)", start_cost(5))
        report("one log-metric request (keep-alive)", request_cost(max(repeats, 5)))
        return
    venv = mlflow_venv()
    if venv is None:
        sys.exit("no mlflow venv: run .ci/run once or set ORCHESTRA_TEST_MLFLOW_VENV")
    python = venv / "bin" / "python"
    root = Path(tempfile.mkdtemp())
    logging = chain_project(root / "log", n, command=f"{python} -c \\\"{LOG}\\\"")
    silent = chain_project(root / "nolog", n, command=f"{python} -c \\\"{NOLOG}\\\"")
    floor_cmd = ["bash", "-c", f"for i in $(seq {n}); do {python} -c \"{NOLOG}\"; done"]
    logged, quiet, floor = [], [], []
    for _ in range(repeats):
        floor.append(timed(floor_cmd))
        logged.append(timed([*ORCHESTRA, "run", str(logging), "-q", "-j", "1"], {"ORCHESTRA_HOME": fresh_home()}))
        quiet.append(timed([*ORCHESTRA, "run", str(silent), "-q", "-j", "1"], {"ORCHESTRA_HOME": fresh_home()}))
    print(f"{n}-stage chain, each stage a python with mlflow imported")
    report("bash floor: the nolog commands in a loop", floor)
    report("orchestra run, stages log 10 metrics each", logged)
    report("orchestra run, stages log nothing", quiet)
    per_stage = (statistics.median(logged) - statistics.median(quiet)) / n
    print(f"{'endpoint cost per stage logging 10 metrics':48} {per_stage * 1000:8.1f} ms")
    report("endpoint start (first open_stage)", start_cost(max(repeats, 5)))
    report("one log-metric request (keep-alive)", request_cost(max(repeats, 5)))


if __name__ == "__main__":
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    main()
