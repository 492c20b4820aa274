"""Remote ``path`` parameter values fetched into a local directory: ``http(s)://``, ``s3://`` and
``runs:/<orchestra run id>/<path>``.

Each fetcher puts the file (or directory) under ``dest_dir`` with the remote name's last part,
bounded by ``ORCHESTRA_MAX_DOWNLOAD_BYTES``, and returns its local path. ``runs:/`` ids that are
not orchestra runs are the tracking server's (``integrations.tracking``); s3fs is imported only
for ``s3://``.
"""

from __future__ import annotations

import importlib.util
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from orchestra.core.errors import RunNotFoundError, SourceError
from orchestra.source import download
from orchestra.source.project import strip_credentials
from orchestra.store import runs as runstore
from orchestra.store import loaded


@dataclass(frozen=True, slots=True)
class RunsURI:
    """``runs:/<run_id>/<path>``: a run's artifact (``path`` may be empty: all of them)."""

    run_id: str
    path: str


def parse_runs_uri(uri: str) -> RunsURI:
    """Split ``runs:/<run_id>/<path>``.

    Raises:
        SourceError: no run id, or a path with ``..``.
    """
    rest = uri[len("runs:"):].lstrip("/")
    run_id, _, path = rest.partition("/")
    path = path.strip("/")
    if not run_id or ".." in PurePosixPath(path).parts:
        raise SourceError(f"invalid runs URI {uri!r}", hint="runs:/RUN_ID/ARTIFACT_PATH, without '..'")
    return RunsURI(run_id, path)


def _name(path: str, fallback: str) -> str:
    name = PurePosixPath(unquote(path)).name
    return name if name not in ("", ".", "..") else fallback


def fetch_http(uri: str, dest_dir: Path) -> Path:
    """GET ``uri`` into ``dest_dir/<last path segment>``."""
    target = dest_dir / _name(urlsplit(uri).path, "download")
    return download.http_get(uri, target, what="download path parameter").path


def fetch_s3(uri: str, dest_dir: Path) -> Path:
    """Copy the object (or every object under the prefix) at ``uri`` into ``dest_dir``.

    Raises:
        SourceError: s3fs missing, no such object, access denied, or over the size cap.
    """
    shown = strip_credentials(uri)
    if importlib.util.find_spec("s3fs") is None:
        raise SourceError(f"{shown}: s3:// path parameters need s3fs", hint="pip install 'orchestra[s3]'")
    import fsspec

    fs, root = fsspec.core.url_to_fs(uri)
    target = dest_dir / _name(root, "download")
    limit = download.max_bytes()
    try:
        if fs.isdir(root):
            sizes = fs.du(root, total=False)
            if sum(sizes.values()) > limit:
                raise download.too_big(shown, limit)
            for key in sorted(sizes):
                relative = PurePosixPath(key).relative_to(PurePosixPath(root.rstrip("/")))
                if ".." in relative.parts:
                    continue
                with fs.open(key, "rb") as handle:
                    download.copy_limited(handle, target.joinpath(*relative.parts), shown=shown, limit=limit)
            return target
        with fs.open(root, "rb") as handle:
            return download.copy_limited(handle, target, shown=shown, limit=limit).path
    except SourceError:
        raise
    except FileNotFoundError:
        raise SourceError(f"cannot download path parameter {shown}: no such object", hint="check the bucket and key") from None
    except Exception as exc:  # botocore's errors: credentials, access, endpoint
        raise SourceError(f"cannot download path parameter {shown}: {type(exc).__name__}: {str(exc)[:160]}",
                          hint="check the URL, the credentials (AWS_*) and AWS_ENDPOINT_URL") from None


def fetch_orchestra_run(ref: RunsURI, dest_dir: Path) -> Path | None:
    """Copy a stage's output of the orchestra run ``ref.run_id``; None when no such orchestra run.

    The path's first part names the stage (``runs:/<id>/<stage>/<file>``); a run of one stage
    may leave it out. The file or directory is looked up in the stage's published outputs (where
    everything a stage logs as an artifact ends up).

    Raises:
        SourceError: the run has no such stage with outputs, or no such file in them.
    """
    try:
        run_id = runstore.resolve_run_id(ref.run_id)
    except RunNotFoundError:
        return None
    record = runstore.get_run(run_id)
    names = [s.name for s in record.stages if s.status.has_outputs]
    first, _, rest = ref.path.partition("/")
    if first in names:
        stage, inner = first, rest
    elif len(names) == 1:
        stage, inner = names[0], ref.path
    else:
        raise SourceError(f"runs:/{ref.run_id}/{ref.path}: name a stage of orchestra run {run_id[:8]} first",
                          hint="runs:/RUN_ID/STAGE/PATH; stages with outputs: " + (", ".join(names) or "none"))
    candidate = runstore.stage_of(run_id, stage)
    if candidate is None:
        raise SourceError(f"runs:/{ref.run_id}/{ref.path}: stage {stage!r} of run {run_id[:8]} has no outputs")
    loaded.ensure(candidate.manifest, candidate.outputs_dir)  # a loaded stage's tree is linked when first read
    outputs = Path(candidate.outputs_dir)
    found = _inside(outputs, inner)
    if found is None:
        known = ", ".join(sorted(candidate.manifest)[:8]) or "none"
        raise SourceError(f"runs:/{ref.run_id}/{ref.path}: no {inner or 'outputs'!r} in stage {stage!r} of run {run_id[:8]}",
                          hint=f"its outputs: {known}")
    target = dest_dir / (found.name if inner else stage)
    dest_dir.mkdir(parents=True, exist_ok=True)
    if found.is_dir():
        shutil.copytree(found, target)
    else:
        shutil.copyfile(found, target)
    return target


def _inside(root: Path, inner: str) -> Path | None:
    if not root.is_dir():
        return None
    candidate = (root / inner).resolve() if inner else root.resolve()
    if not candidate.is_relative_to(root.resolve()) or not candidate.exists():
        return None
    return candidate
