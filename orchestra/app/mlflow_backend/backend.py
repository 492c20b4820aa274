"""The ``orchestra`` project backend MLflow loads (entry point group ``mlflow.project_backend``).

``mlflow run URI -b orchestra`` calls :meth:`OrchestraBackend.run`, which starts the pipeline in a
child process (``child.py``) mirrored to MLflow's tracking server and returns, as soon as the
pipeline's parent run exists there, an :class:`OrchestraSubmittedRun` for it: the stages are its
nested children, exactly as with ``orchestra run --tracking-uri``. Only mlflow imports this module.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from typing import Any

from mlflow.entities import RunStatus
from mlflow.exceptions import ExecutionException
from mlflow.projects.backend.abstract_backend import AbstractBackend
from mlflow.projects.submitted_run import SubmittedRun
from mlflow.tracking import MlflowClient

from orchestra.app.mlflow_backend.config import TOKEN_TAG, BackendRequest, check_config
from orchestra.core.errors import EXIT_INTERRUPTED, OrchestraError

POLL_S = 0.2


class OrchestraBackend(AbstractBackend):
    """Runs an MLproject's entry points as orchestra stages (see the module docstring)."""

    def run(self, project_uri: str, entry_point: str, params: dict[str, Any], version: str | None,
            backend_config: dict[str, Any], tracking_uri: str, experiment_id: str) -> OrchestraSubmittedRun:
        if not str(tracking_uri).startswith(("http://", "https://")):
            raise ExecutionException(
                f"orchestra backend: tracking URI {tracking_uri!r} is not an MLflow server; orchestra mirrors "
                "runs over REST (set MLFLOW_TRACKING_URI=http://host:port)")
        try:
            config = check_config({k: v for k, v in (backend_config or {}).items() if v is not None})
        except OrchestraError as exc:
            raise ExecutionException(f"orchestra: error: {exc}") from None
        client = MlflowClient(tracking_uri)
        experiment = client.get_experiment(experiment_id).name if experiment_id else "Default"
        request = BackendRequest(uri=project_uri, entry_point=entry_point or "main",
                                 params={k: str(v) for k, v in (params or {}).items()}, version=version,
                                 config=config, tracking_uri=tracking_uri, experiment=experiment,
                                 experiment_id=experiment_id, token=uuid.uuid4().hex)
        with tempfile.TemporaryDirectory(prefix="orchestra-backend-") as scratch:
            error_file = os.path.join(scratch, "error")
            request = replace(request, error_file=error_file)
            python = os.environ.get("ORCHESTRA_BACKEND_PYTHON") or sys.executable
            proc = subprocess.Popen([python, "-m", "orchestra.app.mlflow_backend.child", request.to_json()],
                                    start_new_session=True)
            run_id = _await_parent(client, experiment_id or "0", request.token, proc)
            if run_id is None:
                try:
                    message = open(error_file, encoding="utf-8").read().strip()
                except OSError:
                    message = ""
                raise ExecutionException(message or f"orchestra exited with code {proc.returncode}")
        return OrchestraSubmittedRun(run_id, proc)


def _await_parent(client: MlflowClient, experiment_id: str, token: str, proc: subprocess.Popen) -> str | None:
    """The MLflow run id of the pipeline's parent run, once the mirror has created it; None when
    the child ended without creating one (bad input: its stderr says why)."""
    query = f"tags.`{TOKEN_TAG}` = '{token}'"
    while True:
        found = client.search_runs([experiment_id], query, max_results=1)
        if found:
            return found[0].info.run_id
        if proc.poll() is not None:
            found = client.search_runs([experiment_id], query, max_results=1)
            return found[0].info.run_id if found else None
        time.sleep(POLL_S)


class OrchestraSubmittedRun(SubmittedRun):
    """The pipeline run: ``wait()`` is True when it FINISHED, ``cancel()`` is SIGTERM (stages KILLED)."""

    def __init__(self, run_id: str, proc: subprocess.Popen) -> None:
        super().__init__()
        self._run_id = run_id
        self.proc = proc

    @property
    def run_id(self) -> str:
        return self._run_id

    def wait(self) -> bool:
        return self.proc.wait() == 0

    def cancel(self) -> None:
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)  # orchestra kills its stages' groups and records KILLED
            except ProcessLookupError:
                pass
            self.proc.wait()

    def get_status(self) -> str:
        code = self.proc.poll()
        if code is None:
            return RunStatus.to_string(RunStatus.RUNNING)
        if code == 0:
            return RunStatus.to_string(RunStatus.FINISHED)
        if code in (EXIT_INTERRUPTED, -signal.SIGTERM, -signal.SIGKILL):
            return RunStatus.to_string(RunStatus.KILLED)
        return RunStatus.to_string(RunStatus.FAILED)
