"""Registering a model directory as a logged model of the stage's own MLflow run.

Under orchestra's tracking endpoint every stage has ``MLFLOW_TRACKING_URI`` (the endpoint),
``MLFLOW_TRACKING_TOKEN``, ``MLFLOW_RUN_ID`` and ``MLFLOW_EXPERIMENT_ID``. With them, the calls
the mlflow client makes for ``mlflow.<flavor>.log_model`` (MLflow 3) are made here with urllib:
create the logged model (``POST logged-models``, source run = the stage's run), upload each file
under the model's ``mlflow-artifacts:`` location, then finalize it (``PATCH logged-models/<id>``,
``LOGGED_MODEL_READY``). Without those variables nothing is sent. A failure never fails the
stage: one line on stderr, the model directory stays in the outputs.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

_API = "/api/2.0/mlflow/"
_ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts/"
TIMEOUT_S = 60.0


def register(folder: Path, name: str, flavor: str) -> str | None:
    """The logged model's id, or None (no endpoint, or it failed: then a warning on stderr)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or ""
    token = os.environ.get("MLFLOW_TRACKING_TOKEN") or ""
    run_id = os.environ.get("MLFLOW_RUN_ID") or ""
    if not (uri.startswith(("http://", "https://")) and token and run_id):
        return None
    try:
        return _register(uri.rstrip("/"), token, run_id, folder, name, flavor)
    except Exception as exc:  # noqa: BLE001 - registering is extra: the stage's work must not fail on it
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        print(f"orchestra.stage.log_model: {name!r} is in the outputs but was not registered as a logged "
              f"model of run {run_id} ({reason})", file=sys.stderr)
        return None


def _register(uri: str, token: str, run_id: str, folder: Path, name: str, flavor: str) -> str:
    body: dict[str, Any] = {"name": name, "source_run_id": run_id,
                            "tags": [{"key": "orchestra.flavor", "value": flavor}]}
    experiment = os.environ.get("MLFLOW_EXPERIMENT_ID")
    if experiment:
        body["experiment_id"] = experiment
    info = _json(uri + _API + "logged-models", "POST", token, body)["model"]["info"]
    model_id, location = str(info["model_id"]), str(info.get("artifact_uri") or "")
    if not location.startswith("mlflow-artifacts:"):
        raise ValueError(f"the model's artifact location {location!r} is not an mlflow-artifacts: URI")
    base = uri + _ARTIFACTS + location.removeprefix("mlflow-artifacts:").strip("/") + "/"
    from urllib.parse import quote

    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        with open(path, "rb") as handle:
            _send(base + quote(rel), "PUT", token, handle, path.stat().st_size, "application/octet-stream")
    _json(uri + _API + f"logged-models/{quote(model_id)}", "PATCH", token,
          {"model_id": model_id, "status": "LOGGED_MODEL_READY"})
    return model_id


def _json(url: str, method: str, token: str, body: dict[str, Any]) -> dict[str, Any]:
    data = json.dumps(body).encode()
    return json.loads(_send(url, method, token, data, len(data), "application/json") or b"{}")


def _send(url: str, method: str, token: str, data: Any, length: int, content_type: str) -> bytes:
    import urllib.request

    request = urllib.request.Request(url, data=data, method=method, headers={
        "Authorization": f"Bearer {token}", "Content-Type": content_type, "Content-Length": str(length)})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # the token goes to the endpoint only
    with opener.open(request, timeout=TIMEOUT_S) as answer:
        return answer.read()
