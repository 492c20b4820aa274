"""A real Dask cluster and S3 server on 127.0.0.1, started once per test process.

``cluster()`` starts ``dask scheduler`` and two ``dask worker`` processes (each with a nanny,
dashboards on 127.0.0.1:0): ``gpu`` offers ``GPU=1``, ``cpu`` offers nothing. A moto S3 server
(in-process, threaded) serves ``s3://orchestra-test``; the workers get its endpoint through
``AWS_ENDPOINT_URL``, as a real deployment would. Everything stops at interpreter exit.
Tests skip when distributed (or moto/s3fs) is not installed.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import REPO_ROOT

BUCKET = "orchestra-test"


@dataclass
class Cluster:
    address: str  # tcp://127.0.0.1:PORT
    s3_endpoint: str
    tmp: Path
    procs: list[subprocess.Popen] = field(default_factory=list)

    @property
    def url(self) -> str:
        return "dask://" + self.address.removeprefix("tcp://")

    def s3_env(self, prefix: str) -> dict[str, str]:
        """Driver environment for an ``s3://`` artifact store under ``prefix``."""
        return {**_aws_env(self.s3_endpoint), "ORCHESTRA_ARTIFACTS": f"s3://{BUCKET}/{prefix}"}

    def worker_pids(self) -> dict[str, int]:
        """Worker name → pid of its worker process (the nanny's child), from the scheduler."""
        from distributed import Client

        with Client(self.address, timeout=10, set_as_default=False) as client:
            return {info["name"]: pid for info, pid in
                    ((w, client.run(os.getpid, workers=[addr])[addr]) for addr, w in
                     client.scheduler_info(n_workers=-1)["workers"].items())}

    def wait_ready(self, timeout: float = 60) -> None:
        """Both workers registered (a killed worker is restarted by its nanny)."""
        self.wait_ready_n(2, timeout)

    def wait_ready_n(self, n: int, timeout: float = 60) -> None:
        from distributed import Client

        with Client(self.address, timeout=10, set_as_default=False) as client:
            client.wait_for_workers(n, timeout=timeout)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _aws_env(endpoint: str) -> dict[str, str]:
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}


_cluster: Cluster | None = None
_s3: tuple[object, str] | None = None


def s3_endpoint() -> str:
    """A moto S3 server on 127.0.0.1 (process-wide) with the bucket ``orchestra-test``."""
    global _s3
    pytest.importorskip("s3fs")
    pytest.importorskip("moto.server")
    if _s3 is None:
        from moto.server import ThreadedMotoServer
        import boto3

        port = _free_port()
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        endpoint = f"http://127.0.0.1:{port}"
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                     aws_secret_access_key="testing").create_bucket(Bucket=BUCKET)
        _s3 = (server, endpoint)
        atexit.register(server.stop)
    return _s3[1]


def s3_env(prefix: str) -> dict[str, str]:
    return {**_aws_env(s3_endpoint()), "ORCHESTRA_ARTIFACTS": f"s3://{BUCKET}/{prefix}"}


def cluster() -> Cluster:
    """The process-wide cluster (started on first use)."""
    global _cluster
    pytest.importorskip("distributed")
    pytest.importorskip("s3fs")
    pytest.importorskip("moto.server")
    if _cluster is None:
        _cluster = _start()
        atexit.register(_stop, _cluster)
    _cluster.wait_ready()
    return _cluster


WORKERS = (("gpu", "GPU=1"), ("cpu", None))


@contextlib.contextmanager
def private_cluster(workers: tuple[tuple[str, str | None], ...] = (("solo", None),),
                    extra_pythonpath: str | None = None, home: Path | None = None) -> Iterator[Cluster]:
    """A cluster of its own, for tests that break the scheduler or change its workers; with
    ``home``, its workers use it as ORCHESTRA_HOME (a driver using it too shares their store)."""
    pytest.importorskip("distributed")
    c = _start(workers, extra_pythonpath, home)
    try:
        yield c
    finally:
        _stop(c)


def _start(workers: tuple[tuple[str, str | None], ...] = WORKERS, extra_pythonpath: str | None = None,
           home: Path | None = None) -> Cluster:
    tmp = Path(tempfile.mkdtemp(prefix="orchestra-dask-"))
    endpoint = s3_endpoint() if workers == WORKERS else ""
    env = {**os.environ, **(_aws_env(endpoint) if endpoint else {}), "PYTHONPATH": str(REPO_ROOT),
           # Lost workers are noticed by the driver; keep the logs of the cluster quiet.
           "DASK_LOGGING__DISTRIBUTED": "warning"}
    for var in ("ORCHESTRA_HOME", "ORCHESTRA_ARTIFACTS"):
        env.pop(var, None)
    scheduler_file = tmp / "scheduler.json"
    procs = []
    log = open(tmp / "scheduler.log", "wb")
    procs.append(subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
         "--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(scheduler_file)],
        env=env, stdout=log, stderr=log, start_new_session=True))
    deadline = time.monotonic() + 30
    while not scheduler_file.exists() or not scheduler_file.read_text().strip():
        if time.monotonic() > deadline or procs[0].poll() is not None:
            raise RuntimeError("dask scheduler did not start: " + (tmp / "scheduler.log").read_text())
        time.sleep(0.05)
    time.sleep(0.05)
    address = json.loads(scheduler_file.read_text())["address"]
    for name, resources in workers:
        wlog = open(tmp / f"worker-{name}.log", "wb")
        argv = [sys.executable, "-m", "distributed.cli.dask_worker", address, "--host", "127.0.0.1",
                "--nthreads", "2", "--name", name, "--dashboard-address", "127.0.0.1:0",
                "--local-directory", str(tmp / f"local-{name}")]
        if resources:
            argv += ["--resources", resources]
        wenv = {**env, "WORKER_LABEL": name, "ORCHESTRA_WORKER_DIR": str(tmp / f"scratch-{name}"),
                **({"ORCHESTRA_HOME": str(home)} if home else {})}
        if extra_pythonpath:
            wenv["PYTHONPATH"] = os.pathsep.join([extra_pythonpath, env["PYTHONPATH"]])
        procs.append(subprocess.Popen(argv, stdout=wlog, stderr=wlog, start_new_session=True, env=wenv))
    return Cluster(address=address, s3_endpoint=endpoint, tmp=tmp, procs=procs)


def _stop(c: Cluster) -> None:
    for proc in reversed(c.procs):
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for proc in c.procs:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
