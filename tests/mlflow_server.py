"""A real ``mlflow server`` (SQLite backend, artifact proxy, 127.0.0.1, free port) for the tests.

mlflow lives in its own virtualenv so it never touches orchestra's environment: the first test
that needs it builds it (``.ci/.venvs/mlflow``, once, then reused; ``.ci/run`` does the same and
exports ``ORCHESTRA_TEST_MLFLOW_VENV``). Nothing skips for want of it.
The tests read everything back through the server's REST API with requests.
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import requests

REPO_ROOT = Path(__file__).resolve().parents[1]
VENV_VAR = "ORCHESTRA_TEST_MLFLOW_VENV"
START_TIMEOUT_S = 180.0


MLFLOW_PACKAGES = ("mlflow", "scikit-learn", "pandas")
BUILD_TIMEOUT_S = 1800.0


def mlflow_venv() -> Path:
    """The mlflow virtualenv: ``$ORCHESTRA_TEST_MLFLOW_VENV`` when set, else built on first use
    under ``.ci/.venvs/mlflow`` (or the user's cache dir when the repository is read-only) and
    reused; a file lock lets parallel test processes wait for one build instead of racing."""
    configured = os.environ.get(VENV_VAR)
    if configured:  # CI said where it is: a broken venv is a failure, not a skip
        venv = Path(configured)
        if not (venv / "bin" / "mlflow").exists():
            pytest.fail(f"{VENV_VAR}={configured} has no bin/mlflow")
        return venv
    venv = _default_venv()
    if not (venv / ".complete").exists():
        _build(venv)
    return venv


def _default_venv() -> Path:
    venvs = REPO_ROOT / ".ci" / ".venvs"
    try:
        venvs.mkdir(parents=True, exist_ok=True)
        if os.access(venvs, os.W_OK):
            return venvs / "mlflow"
    except OSError:
        pass
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "orchestra-tests"
    cache.mkdir(parents=True, exist_ok=True)
    return cache / "mlflow"


def _build(venv: Path) -> None:
    import fcntl
    import shutil
    import sys

    with open(venv.parent / f"{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building it: wait, then reuse
        if (venv / ".complete").exists():
            return
        shutil.rmtree(venv, ignore_errors=True)  # a build cut short is started again
        log = venv.parent / f"{venv.name}.build.log"
        with open(log, "wb") as out:
            steps = [[sys.executable, "-m", "venv", *([] if MLFLOW_PACKAGES else ["--without-pip"]), str(venv)]]
            if MLFLOW_PACKAGES:
                steps.append([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
                              *MLFLOW_PACKAGES])
            for step in steps:
                if subprocess.run(step, stdout=out, stderr=subprocess.STDOUT, timeout=BUILD_TIMEOUT_S).returncode:
                    pytest.fail(f"building the mlflow venv failed ({' '.join(step[:3])}…): see {log}")
        (venv / ".complete").write_text("mlflow venv built by tests/mlflow_server.py\n")


def require_venv() -> Path:
    return mlflow_venv()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MlflowServer:
    """``mlflow server`` in its own process group; ``stop`` and ``start`` again keep the data."""

    def __init__(self, venv: Path, root: Path, port: int | None = None) -> None:
        self.venv = venv
        self.root = root
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        root.mkdir(parents=True, exist_ok=True)
        self.artifacts = root / "artifacts"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MlflowServer:
        log = open(self.root / "server.log", "ab")
        self.proc = subprocess.Popen(
            [str(self.venv / "bin" / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}",
             "--artifacts-destination", str(self.artifacts), "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", "1"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.root,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited {self.proc.returncode}: {self.log_tail()}")
            try:
                if requests.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"mlflow server did not answer /health in {START_TIMEOUT_S:.0f}s: {self.log_tail()}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(15)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 15  # uvicorn workers leave with the group; the port frees after
        while time.monotonic() < deadline:
            try:
                requests.get(f"{self.url}/health", timeout=0.5)
            except requests.RequestException:
                return
            time.sleep(0.1)

    def log_tail(self) -> str:
        try:
            return (self.root / "server.log").read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    # -- REST reads ----------------------------------------------------------------------------
    def api(self, endpoint: str, body: dict[str, Any] | None = None, **params: Any) -> dict[str, Any]:
        if body is None:
            response = requests.get(f"{self.url}/api/2.0/mlflow/{endpoint}", params=params, timeout=10)
        else:
            response = requests.post(f"{self.url}/api/2.0/mlflow/{endpoint}", json=body, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    def experiment_id(self, name: str) -> str:
        return self.api("experiments/get-by-name", experiment_name=name)["experiment"]["experiment_id"]

    def runs_of(self, orchestra_run_id: str, experiment: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        """(parent run, {stage: child run}) of an orchestra run, found by its ``orchestra.run_id`` tag."""
        runs = self.api("runs/search", {"experiment_ids": [self.experiment_id(experiment)],
                                        "filter": f"tags.`orchestra.run_id` = '{orchestra_run_id}'",
                                        "max_results": 1000}).get("runs", [])
        parents = [r for r in runs if "orchestra.stage" not in tags(r)]
        assert len(parents) == 1, [tags(r) for r in runs]
        children = {tags(r)["orchestra.stage"]: r for r in runs if "orchestra.stage" in tags(r)}
        return parents[0], children

    def artifact(self, run: dict[str, Any], path: str) -> requests.Response:
        root = run["info"]["artifact_uri"].removeprefix("mlflow-artifacts:/").strip("/")
        return requests.get(f"{self.url}/api/2.0/mlflow-artifacts/artifacts/{root}/{path}", timeout=10)

    def metric_history(self, run: dict[str, Any], key: str) -> list[dict[str, Any]]:
        return self.api("metrics/get-history", run_id=run["info"]["run_id"], metric_key=key).get("metrics", [])


def tags(run: dict[str, Any]) -> dict[str, str]:
    return {t["key"]: t["value"] for t in run.get("data", {}).get("tags", [])}


def params(run: dict[str, Any]) -> dict[str, str]:
    return {p["key"]: p["value"] for p in run.get("data", {}).get("params", [])}


def metrics(run: dict[str, Any]) -> dict[str, float]:
    return {m["key"]: m["value"] for m in run.get("data", {}).get("metrics", [])}


_shared: MlflowServer | None = None


def shared_server(root: Path) -> MlflowServer:
    """One server per test session (started on first use, stopped at exit)."""
    global _shared
    if _shared is None:
        _shared = MlflowServer(require_venv(), root).start()
        atexit.register(_shared.stop)
    return _shared


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> MlflowServer:
    """The session's real mlflow server."""
    return shared_server(tmp_path_factory.mktemp("mlflow-server"))


@pytest.fixture
def mlflow_env() -> dict[str, str]:
    """Environment for orchestra runs whose stages use the mlflow client: its venv's bin first on PATH."""
    venv = require_venv()
    return {"PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": str(REPO_ROOT)}
