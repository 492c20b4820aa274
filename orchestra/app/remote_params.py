"""Remote ``path`` parameters (``runs:/``, ``http(s)://``, ``s3://``), downloaded before any stage
starts, as ``mlflow run`` does.

Each distinct URI is downloaded once into the run's storage directory — ``<run dir>/.downloads``,
or a new directory under ``--storage-dir`` — and the stage's command gets the local path. The
parameter's value (what the cache key and the logged params hold) stays the URI, and the
sha256 of what was downloaded joins the cache key as a path input: unchanged remote bytes let
the stage load, changed bytes rerun it. A plan downloads nothing: it marks the input
``fingerprint.NOT_DOWNLOADED`` and says so.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from orchestra.core import settings
from orchestra.core.layout import home_path, safe_name
from orchestra.core.options import RunOptions
from orchestra.core.report import NullReporter
from orchestra.mlproject.params import StageParams
from orchestra.mlproject.params import without_credentials as redact
from orchestra.planning import fingerprint
from orchestra.source import remote_path
from orchestra.store import runs as runstore

if TYPE_CHECKING:
    from orchestra.core.report import Reporter


@dataclass(frozen=True, slots=True)
class RemoteInputs:
    """The parameters with local paths substituted, and each stage's remote input digests."""

    params: Mapping[str, StageParams]
    digests: Mapping[str, Mapping[str, str]]  # stage → {URI: digest}


def resolve(params: Mapping[str, StageParams], options: RunOptions, *, download: bool,
            reporter: Reporter | None = None) -> tuple[str | None, RemoteInputs]:
    """(the run id the downloads were made for, the inputs); a plan (``download=False``) fetches
    nothing and has no run id."""
    if not download:
        return None, undownloaded(params)
    run_id = runstore.new_run_id()  # the downloads go into this run's directory
    return run_id, download_all(params, options, storage_root(options, run_id), reporter)


def undownloaded(params: Mapping[str, StageParams]) -> RemoteInputs:
    """For a plan: every remote input marked as not downloaded, nothing fetched."""
    return RemoteInputs(params, {name: {redact(uri): fingerprint.NOT_DOWNLOADED for _, uri in p.remote_paths}
                                 for name, p in params.items()})


def storage_root(options: RunOptions, run_id: str) -> Path:
    """Where this run's downloads go (``--storage-dir``, else ``MLFLOW_TMP_DIR``, as in mlflow: a new
    directory inside it; else the run's directory)."""
    chosen = options.selection.storage_dir or settings.current().storage_dir
    if chosen:
        parent = Path(chosen).expanduser()
        parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix="orchestra-", dir=parent))
    return home_path("runs", run_id) / ".downloads"


def download_all(params: Mapping[str, StageParams], options: RunOptions, root: Path,
                 reporter: Reporter | None = None) -> RemoteInputs:
    """Download every remote input once into ``root``; on failure nothing is left in ``root``.

    Raises:
        SourceError: a URI that cannot be downloaded (one line, exit 2).
        TrackingError: the tracking server of a ``runs:/`` id cannot be reached.
    """
    reporter = reporter or NullReporter()
    fetched: dict[str, tuple[Path, str]] = {}
    new_params: dict[str, StageParams] = {}
    digests: dict[str, dict[str, str]] = {}
    try:
        for stage, stage_params in params.items():
            local_paths: dict[str, str] = {}
            digests[stage] = {}
            for name, uri in stage_params.remote_paths:
                if uri not in fetched:
                    local = _fetch(uri, root / safe_name(f"{stage}.{name}"), options)
                    fetched[uri] = (local, fingerprint.path_digest(str(local)))
                    reporter.line(f"orchestra: downloaded {redact(uri)} → {local}")
                local, digest = fetched[uri]
                local_paths[name] = str(local)
                digests[stage][redact(uri)] = digest
            new_params[stage] = replace(stage_params, downloaded=local_paths) if local_paths else stage_params
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        if root.name == ".downloads":  # the run directory made for them holds nothing else yet
            with contextlib.suppress(OSError):
                root.parent.rmdir()
        raise
    return RemoteInputs(new_params, digests)


def _fetch(uri: str, dest_dir: Path, options: RunOptions) -> Path:
    dest_dir.mkdir(parents=True, exist_ok=True)
    scheme = uri.split(":", 1)[0].lower()
    if scheme in ("http", "https"):
        return remote_path.fetch_http(uri, dest_dir)
    if scheme == "s3":
        return remote_path.fetch_s3(uri, dest_dir)
    ref = remote_path.parse_runs_uri(uri)
    local = remote_path.fetch_orchestra_run(ref, dest_dir)
    if local is not None:
        return local
    from orchestra.integrations import tracking  # only for ids that are not orchestra runs

    return tracking.download_run_artifact(ref.run_id, ref.path, dest_dir, options)
