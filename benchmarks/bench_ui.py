"""How fast ``orchestra ui`` serves the runs page of a store with 10,000 runs.

The store is populated directly (one transaction: 10,000 runs of 4 stages, each with params and
two metrics), then a real ``orchestra ui`` process serves it. Timed: the runs page's data
(``/api/runs``, newest first, first 200 rows, param and metric columns), sorted by a metric, and
filtered; beside them the floor measured in the same run: a static file from the same server
(the HTTP round trip) and ``bash -c true``. Target: the runs page in under 300 ms.

    python benchmarks/bench_ui.py [--runs 10000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._util import bench_env, fresh_home  # noqa: E402


def populate(home: str, n: int) -> None:
    os.environ["ORCHESTRA_HOME"] = home
    from orchestra.store import runs

    conn = runs.db()
    rng = random.Random(7)
    now = time.time()
    stages = ("prepare", "features", "train", "evaluate")
    with runs.transaction():
        for i in range(n):
            run_id = f"{i:032x}"
            start = now - (n - i) * 60
            params = {"alpha": f"{rng.random():.3f}", "epochs": str(rng.choice((50, 100, 200))), "seed": str(i % 10)}
            tags = {"mlflow.runName": f"run-{i}", "mlflow.user": "bench"}
            conn.execute("INSERT INTO runs (run_id, experiment, status, start_time, end_time, project_uri, targets,"
                         " params, tags) VALUES (?, 'Default', 'FINISHED', ?, ?, '/bench/project', '[]', ?, ?)",
                         (run_id, start, start + 30, json.dumps(params), json.dumps(tags)))
            for j, name in enumerate(stages):
                metrics = {"rmse": rng.random(), "mae": rng.random()} if name == "evaluate" else (
                    {"loss": rng.random()} if name == "train" else {})
                conn.execute("INSERT INTO stages (run_id, name, status, start_time, end_time, attempts, metrics)"
                             " VALUES (?, ?, 'FINISHED', ?, ?, 1, ?)",
                             (run_id, name, start + j, start + j + 5, json.dumps(metrics)))


def fetch(url: str) -> float:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as answer:
        answer.read()
    return time.perf_counter() - start


def median_ms(samples: list[float]) -> str:
    return f"median {statistics.median(samples) * 1000:7.1f} ms (min {min(samples) * 1000:.1f}, max {max(samples) * 1000:.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    home = fresh_home()
    started = time.perf_counter()
    populate(home, args.runs)
    print(f"populated {args.runs} runs x 4 stages in {time.perf_counter() - started:.1f} s ({home})")
    env = bench_env({"ORCHESTRA_HOME": home, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    proc = subprocess.Popen([sys.executable, "-m", "orchestra", "ui", "--port", "0"], env=env,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        base = re.search(r"(http://\S+?)/", proc.stdout.readline()).group(1)
        queries = {
            "runs page (newest first, 200 rows)": "/api/runs",
            "runs page sorted by metrics.evaluate.rmse": "/api/runs?" + urllib.parse.urlencode(
                {"sort": "metrics.evaluate.rmse", "desc": "0"}),
            "runs page filtered (rmse < 0.1 and alpha)": "/api/runs?" + urllib.parse.urlencode(
                {"filter": "metrics.evaluate.rmse < 0.1 and params.epochs = '200'"}),
            "the page shell (/)": "/",
            "floor: a static file (/static/style.css)": "/static/style.css",
        }
        first = fetch(base + "/api/runs")
        print(f"{'first runs page after start':48} {first * 1000:7.1f} ms")
        for label, path in queries.items():
            samples = [fetch(base + path) for _ in range(args.repeat)]
            print(f"{label:48} {median_ms(samples)}")
        bash = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            subprocess.run(["bash", "-c", "true"], check=True)
            bash.append(time.perf_counter() - start)
        print(f"{'floor: bash -c true':48} {median_ms(bash)}")
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
