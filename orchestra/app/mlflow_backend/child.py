"""The pipeline run behind ``mlflow run -b orchestra``: ``python -m orchestra.app.mlflow_backend.child
REQUEST_JSON``. A process of its own, so the backend cancels it with SIGTERM (stages KILLED,
nothing half-published) exactly as it would ``orchestra run``. Exit codes are ``orchestra run``'s."""

from __future__ import annotations

import sys
from dataclasses import replace

from orchestra.app import api
from orchestra.app.mlflow_backend.config import BackendRequest, run_options
from orchestra.core.errors import EXIT_INTERRUPTED, OrchestraError


def targets_of(request: BackendRequest) -> tuple[str, ...]:
    """``-e STAGE`` runs that stage and its ancestors; mlflow's default ``main`` runs ``main`` when
    the project has one, else the project's default targets (the whole DAG)."""
    if request.entry_point and request.entry_point != "main":
        return (request.entry_point,)
    spec, _ = api.validate(request.uri, request.version)
    return ("main",) if "main" in spec.entry_points else ()


def main(argv: list[str]) -> int:
    request = BackendRequest.from_json(argv[0])
    try:
        request = replace(request, targets=targets_of(request))
        return api.run(request.uri, run_options(request), record=False).exit_code
    except OrchestraError as exc:
        message = f"orchestra: error: {exc}"
        print(message, file=sys.stderr)
        if request.error_file:  # the backend raises it as MLflow's ExecutionException
            with open(request.error_file, "w", encoding="utf-8") as handle:
                handle.write(message)
        return exc.exit_code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
