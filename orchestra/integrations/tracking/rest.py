"""A small client for the MLflow tracking server's REST API (no dependency on the mlflow package).

Endpoints used (MLflow 2.x/3.x ``api/2.0``): experiments/get-by-name, experiments/create,
runs/create, runs/get, runs/search, runs/log-batch, runs/update, runs/set-tag, and the artifact
proxy that ``mlflow server`` serves by default, ``api/2.0/mlflow-artifacts/artifacts/<path>``
(PUT uploads, GET downloads). Errors are split into retryable (:class:`Unavailable`: no
connection, timeout, 429, 5xx) and permanent (:class:`Rejected`: any other 4xx).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterable, Mapping, Sequence

import requests

from orchestra.core.errors import OrchestraError
from orchestra.core.tracking_uri import TrackingURI
from orchestra.integrations.outbox.retry_policy import parse_retry_after

# log-batch limits of the server (mlflow/utils/validation.py).
MAX_METRICS, MAX_PARAMS, MAX_TAGS, MAX_ENTITIES = 1000, 100, 100, 1000
MAX_PARAM_VALUE, MAX_TAG_VALUE = 6000, 8000
_ARTIFACT_SCHEME = "mlflow-artifacts:"


class TrackingError(OrchestraError):
    """The tracking server could not be used for a request."""


class Unavailable(TrackingError):
    """Worth retrying later: connection refused or reset, timeout, HTTP 429 or 5xx.

    ``retry_after_s``: the server's ``Retry-After``, when it sent one.
    """

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Rejected(TrackingError):
    """The server refused the request for good (HTTP 4xx); ``code`` is MLflow's error_code."""

    def __init__(self, message: str, *, status: int, code: str | None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(frozen=True, slots=True)
class Timeouts:
    """(connect, read) seconds for quick calls and for artifact transfers."""

    quick: tuple[float, float] = (3.0, 10.0)
    transfer: tuple[float, float] = (3.0, 120.0)


def ms(ts: float | None) -> int | None:
    """Seconds since the epoch → MLflow's milliseconds."""
    return None if ts is None else int(ts * 1000)


class RestClient:
    """One thread's connection to a tracking server (a requests.Session is not shared across threads)."""

    def __init__(self, uri: TrackingURI, timeouts: Timeouts = Timeouts()) -> None:
        self.uri = uri
        self.timeouts = timeouts
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "orchestra-mlflow-mirror"
        if uri.token:
            self.session.headers["Authorization"] = f"Bearer {uri.token}"
        elif uri.username is not None:
            self.session.auth = (uri.username, uri.password or "")

    def close(self) -> None:
        self.session.close()

    # -- plumbing ----------------------------------------------------------------------
    def _request(self, method: str, path: str, *, timeout: tuple[float, float] | None = None,
                 **kwargs: Any) -> requests.Response:
        url = f"{self.uri.base}/{path}"
        try:
            response = self.session.request(method, url, timeout=timeout or self.timeouts.quick, **kwargs)
        except requests.RequestException as exc:
            # The exception text holds the URL; ours is shown without credentials already.
            raise Unavailable(f"{self.uri.display}: {type(exc).__name__}") from None
        if response.status_code == 429 or response.status_code >= 500:
            raise Unavailable(f"{self.uri.display}: HTTP {response.status_code} on {path}: {_error_text(response)}",
                              retry_after_s=parse_retry_after(response.headers.get("Retry-After")))
        if response.status_code >= 400:
            code = None
            try:
                code = response.json().get("error_code")
            except ValueError:
                pass
            raise Rejected(f"HTTP {response.status_code} on {path}: {_error_text(response)}",
                           status=response.status_code, code=code)
        return response

    def _call(self, method: str, endpoint: str, body: Mapping[str, Any] | None = None,
              params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        response = self._request(method, f"api/2.0/mlflow/{endpoint}", json=body, params=params)
        try:
            return response.json() if response.content else {}
        except ValueError:
            raise Unavailable(f"{self.uri.display}: {endpoint} answered non-JSON (is this an MLflow server?)") from None

    # -- experiments -------------------------------------------------------------------
    def experiment_id(self, name: str) -> str:
        """The id of experiment ``name``, created if missing (a concurrent creator is fine)."""
        try:
            found = self._call("GET", "experiments/get-by-name", params={"experiment_name": name})
            experiment = found["experiment"]
            if experiment.get("lifecycle_stage") == "deleted":
                raise Rejected(f"experiment {name!r} is deleted on the tracking server (restore it or pick "
                               "another --experiment)", status=400, code="INVALID_STATE")
            return str(experiment["experiment_id"])
        except Rejected as exc:
            if exc.code != "RESOURCE_DOES_NOT_EXIST":
                raise
        try:
            return str(self._call("POST", "experiments/create", {"name": name})["experiment_id"])
        except Rejected as exc:
            if exc.code != "RESOURCE_ALREADY_EXISTS":
                raise
        return str(self._call("GET", "experiments/get-by-name", params={"experiment_name": name})
                   ["experiment"]["experiment_id"])

    def experiment_name(self, experiment_id: str) -> str:
        return str(self._call("GET", "experiments/get", params={"experiment_id": experiment_id})["experiment"]["name"])

    # -- runs --------------------------------------------------------------------------
    def create_run(self, experiment_id: str, *, start_time: float, tags: Mapping[str, str],
                   run_name: str | None = None) -> dict[str, Any]:
        """Create a RUNNING run; returns its ``info`` (run_id, artifact_uri, ...)."""
        body: dict[str, Any] = {"experiment_id": experiment_id, "start_time": ms(start_time),
                                "tags": [{"key": k, "value": _clip(v, MAX_TAG_VALUE)} for k, v in tags.items()]}
        if run_name:
            body["run_name"] = run_name
        if tags.get("mlflow.user"):
            body["user_id"] = tags["mlflow.user"]
        return self._call("POST", "runs/create", body)["run"]["info"]

    def get_run(self, run_id: str) -> dict[str, Any]:
        """``{"info": ..., "data": {"params": [...], "metrics": [...], "tags": [...]}}``."""
        return self._call("GET", "runs/get", params={"run_id": run_id})["run"]

    def search_runs(self, experiment_ids: Sequence[str], filter_string: str, max_results: int = 1000) -> list[dict[str, Any]]:
        """Every run matching ``filter_string`` (pages followed)."""
        runs: list[dict[str, Any]] = []
        token = None
        while True:
            body: dict[str, Any] = {"experiment_ids": list(experiment_ids), "filter": filter_string,
                                    "max_results": max_results, "run_view_type": "ACTIVE_ONLY"}
            if token:
                body["page_token"] = token
            page = self._call("POST", "runs/search", body)
            runs.extend(page.get("runs", []))
            token = page.get("next_page_token")
            if not token:
                return runs

    def log_batch(self, run_id: str, *, metrics: Iterable[tuple[str, float, int, float]] = (),
                  params: Mapping[str, str] | None = None, tags: Mapping[str, str] | None = None) -> None:
        """Log metrics ``(key, value, step, timestamp_s)``, params and tags in as few requests as allowed."""
        metric_rows = [{"key": k, "value": v, "step": int(step), "timestamp": ms(ts)} for k, v, step, ts in metrics]
        param_rows = [{"key": k, "value": _clip(v, MAX_PARAM_VALUE)} for k, v in (params or {}).items()]
        tag_rows = [{"key": k, "value": _clip(v, MAX_TAG_VALUE)} for k, v in (tags or {}).items()]
        while metric_rows or param_rows or tag_rows:
            body = {"run_id": run_id, "metrics": metric_rows[:MAX_METRICS], "params": param_rows[:MAX_PARAMS],
                    "tags": tag_rows[:MAX_TAGS]}
            self._call("POST", "runs/log-batch", body)
            metric_rows, param_rows, tag_rows = metric_rows[MAX_METRICS:], param_rows[MAX_PARAMS:], tag_rows[MAX_TAGS:]

    def set_tag(self, run_id: str, key: str, value: str) -> None:
        self._call("POST", "runs/set-tag", {"run_id": run_id, "key": key, "value": _clip(value, MAX_TAG_VALUE)})

    def update_run(self, run_id: str, status: str, end_time: float | None) -> None:
        body: dict[str, Any] = {"run_id": run_id, "status": status}
        if end_time is not None:
            body["end_time"] = ms(end_time)
        self._call("POST", "runs/update", body)

    # -- artifacts (the server's proxy) -----------------------------------------------------
    def _artifact_path(self, artifact_uri: str, path: str) -> str:
        if not artifact_uri.startswith(_ARTIFACT_SCHEME):
            raise Rejected(f"run artifacts live at {artifact_uri.split('://')[0]}:..., not behind the server's "
                           "artifact proxy (start `mlflow server` with --serve-artifacts, the default)",
                           status=400, code="ARTIFACTS_NOT_PROXIED")
        rest = artifact_uri[len(_ARTIFACT_SCHEME):]
        if rest.startswith("//"):  # mlflow-artifacts://host:port/path: the path part only
            rest = rest[2:].split("/", 1)[1] if "/" in rest[2:] else ""
        rest = rest.strip("/")
        return f"api/2.0/mlflow-artifacts/artifacts/{rest.rstrip('/')}/{path.lstrip('/')}"

    def upload(self, artifact_uri: str, path: str, data: bytes | IO[bytes]) -> None:
        """PUT one file at ``path`` under the run's artifact root."""
        self._request("PUT", self._artifact_path(artifact_uri, path), data=data, timeout=self.timeouts.transfer)

    def download(self, artifact_uri: str, path: str, dest: Path, max_bytes: int | None = None) -> tuple[str, int]:
        """GET one artifact into ``dest`` (written as ``dest`` directly); returns (sha256, size).

        Over ``max_bytes`` the download stops and :class:`Rejected` (status 413) is raised.
        """
        response = self._request("GET", self._artifact_path(artifact_uri, path), stream=True,
                                 timeout=self.timeouts.transfer)
        digest = hashlib.sha256()
        size = 0
        try:
            with open(dest, "wb") as handle:
                for chunk in response.iter_content(1 << 20):
                    digest.update(chunk)
                    size += len(chunk)
                    if max_bytes is not None and size > max_bytes:
                        raise Rejected(f"artifact {path} is larger than {max_bytes} bytes", status=413, code=None)
                    handle.write(chunk)
        except requests.RequestException:
            raise Unavailable(f"{self.uri.display}: download of {path} interrupted") from None
        finally:
            response.close()
        return digest.hexdigest(), size

    def list_artifacts(self, artifact_uri: str, path: str) -> list[dict[str, Any]]:
        """The entries directly under ``path`` (``path`` relative to the run's artifact root,
        ``is_dir``, ``file_size``); empty for a file or a missing path."""
        full = self._artifact_path(artifact_uri, path).removeprefix("api/2.0/mlflow-artifacts/artifacts/")
        response = self._request("GET", "api/2.0/mlflow-artifacts/artifacts", params={"path": full.strip("/")})
        try:
            files = (response.json() if response.content else {}).get("files") or []
        except ValueError:
            raise Unavailable(f"{self.uri.display}: artifact listing answered non-JSON") from None
        prefix = path.strip("/")
        return [{**entry, "path": f"{prefix}/{entry['path']}".lstrip("/")} for entry in files if entry.get("path")]

    def read_artifact(self, artifact_uri: str, path: str) -> bytes:
        return self._request("GET", self._artifact_path(artifact_uri, path)).content

    def health(self, timeout: float = 1.0) -> bool:
        try:
            return self.session.get(f"{self.uri.base}/health", timeout=(timeout, timeout)).status_code == 200
        except requests.RequestException:
            return False


def tags_of(run: Mapping[str, Any]) -> dict[str, str]:
    return {t["key"]: t["value"] for t in run.get("data", {}).get("tags", [])}


def params_of(run: Mapping[str, Any]) -> dict[str, str]:
    return {p["key"]: p["value"] for p in run.get("data", {}).get("params", [])}


def metrics_of(run: Mapping[str, Any]) -> dict[str, float]:
    return {m["key"]: m["value"] for m in run.get("data", {}).get("metrics", [])}


def _clip(value: object, limit: int) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _error_text(response: requests.Response) -> str:
    try:
        body = response.json()
        return str(body.get("message") or body)[:300]
    except ValueError:
        return response.text[:200].strip() or response.reason or ""
