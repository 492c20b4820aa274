"""``runs:/<MLflow run id>/<path>`` path parameters: download a run's artifact from the tracking
server (``runs/get`` for its artifact root, then the server's artifact proxy), a file or a whole
directory, bounded by ``ORCHESTRA_MAX_DOWNLOAD_BYTES`` in total.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from orchestra.core import settings
from orchestra.core.errors import SourceError
from orchestra.core.tracking_uri import TrackingURI
from orchestra.integrations.tracking.rest import Rejected, RestClient, TrackingError, Unavailable


def download_run_artifact(uri: TrackingURI, run_id: str, path: str, dest_dir: Path) -> Path:
    """Download ``path`` of MLflow run ``run_id`` into ``dest_dir``; return the local path.

    Raises:
        SourceError: no such run or artifact, artifacts not proxied, or over the size cap.
        TrackingError: the server cannot be reached.
    """
    shown = f"runs:/{run_id}/{path}"
    client = RestClient(uri)
    try:
        try:
            run = client.get_run(run_id)
        except Rejected as exc:
            raise SourceError(f"{shown}: no orchestra run {run_id!r} and the tracking server {uri.display} "
                              f"has none either ({exc.status})", hint="check the run id") from None
        artifact_uri = run["info"]["artifact_uri"]
        files = _files(client, artifact_uri, path)
        budget = [settings.current().max_download_bytes]  # what the remaining files may still take
        dest_dir.mkdir(parents=True, exist_ok=True)
        target = dest_dir / (PurePosixPath(path).name or "artifacts")
        if not files:  # a single file
            _get(client, artifact_uri, path, target, budget, shown)
            return target
        for rel in files:
            inner = PurePosixPath(rel).relative_to(path) if path else PurePosixPath(rel)
            if ".." in inner.parts:
                continue
            _get(client, artifact_uri, rel, target.joinpath(*inner.parts), budget, shown)
        return target
    except Unavailable as exc:
        raise TrackingError(f"{shown}: cannot reach the tracking server ({exc})",
                            hint="start it, or pass a local path") from None
    finally:
        client.close()


def _files(client: RestClient, artifact_uri: str, path: str) -> list[str]:
    """Every file under the directory ``path`` (empty when ``path`` is a file or missing)."""
    try:
        entries = client.list_artifacts(artifact_uri, path)
    except Rejected as exc:
        if exc.code == "ARTIFACTS_NOT_PROXIED":
            raise SourceError(f"runs:/…/{path}: {exc}") from None
        return []
    found: list[str] = []
    for entry in entries:
        if entry.get("is_dir"):
            found.extend(_files(client, artifact_uri, entry["path"]))
        else:
            found.append(entry["path"])
    return found


def _get(client: RestClient, artifact_uri: str, path: str, target: Path, budget: list[int], shown: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.part-{os.getpid()}")
    try:
        _, size = client.download(artifact_uri, path, partial, max_bytes=budget[0])
    except Rejected as exc:
        partial.unlink(missing_ok=True)
        if exc.status == 413:
            raise SourceError(f"download of {shown} is larger than {settings.current().max_download_bytes} bytes",
                              hint="raise ORCHESTRA_MAX_DOWNLOAD_BYTES if it is expected") from None
        raise SourceError(f"{shown}: no artifact {path!r} in that run (HTTP {exc.status})",
                          hint="check the artifact path in the MLflow UI") from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    budget[0] -= size
    os.replace(partial, target)
