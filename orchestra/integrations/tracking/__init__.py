"""The MLflow bridge: mirror runs to a tracking server over its REST API, sync, reuse.

orchestra never imports the ``mlflow`` package: it speaks the server's REST API with requests
(:mod:`orchestra.integrations.tracking.rest`). Importing this package imports neither requests nor sqlite
helpers; the runner calls :func:`make_listener` and :func:`resolve_load_from`, the CLI calls
:func:`check_options` and :func:`sync_run`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestra.core.errors import RunNotFoundError, SourceError
from orchestra.core.layout import orchestra_home
from orchestra.core.report import STDERR
from orchestra.core.tracking_uri import (
    TrackingURI,
    TrackingURIError,
    configured,
    configured_store,
    parse,
    redact,
)
from orchestra.store import runs as runstore

if TYPE_CHECKING:
    from pathlib import Path

    from orchestra.core.events import Listener
    from orchestra.core.options import RunOptions
    from orchestra.core.report import Reporter
    from orchestra.integrations.tracking.deliverer import Policy
    from orchestra.integrations.tracking.sweep_run import SweepMirror
    from orchestra.integrations.tracking.sync import SyncReport
    from orchestra.planning.prepared import Prepared

__all__ = ["TrackingURI", "TrackingURIError", "check_options", "configured", "configured_store", "download_run_artifact",
           "close_sweep", "make_listener", "open_sweep", "parse", "redact", "resolve_load_from", "sync_run"]


def check_options(options: RunOptions) -> TrackingURI | None:
    """Validate the tracking flags of a run before anything happens.

    Raises:
        TrackingURIError: a malformed http(s) URI, or --mlflow-artifacts without any tracking URI
            (a store URI — sqlite:, file:, … — mirrors nothing and fails nothing).
    """
    uri = configured(options.recording.tracking_uri)
    if uri is None and options.recording.mlflow_artifacts and configured_store(options.recording.tracking_uri) is None:
        raise TrackingURIError("--mlflow-artifacts needs a tracking server",
                               hint="pass --tracking-uri http://host:port or set MLFLOW_TRACKING_URI")
    return uri


def make_listener(prepared: Prepared, options: RunOptions, *, policy: Policy | None = None,
                  reporter: Reporter = STDERR) -> Listener | None:
    """The mirror listener of one run, or None when no tracking server is configured.

    ``reporter`` gets its notices (the run's console, which respects ``-q``).
    """
    uri = check_options(options)
    if uri is None:
        return None
    from orchestra.integrations.tracking.deliverer import Policy
    from orchestra.integrations.tracking.mirror import MirrorListener

    return MirrorListener(uri, prepared, options, home=orchestra_home(), policy=policy or Policy.from_env(),
                          reporter=reporter)


def open_sweep(options: RunOptions, sweep_id: str, *, size: int, keys: list[str]) -> SweepMirror | None:
    """The sweep's own MLflow run (members nest under it), or None without a tracking server."""
    uri = check_options(options)
    if uri is None:
        return None
    from orchestra.integrations.tracking.sweep_run import open_sweep as open_run

    fixed = dict(text.partition("=")[::2] for text in options.selection.params)
    return open_run(uri, sweep_id, experiment=options.recording.experiment,
                    experiment_id=options.recording.experiment_id, size=size, keys=keys,
                    params={k.strip(): v for k, v in fixed.items()},
                    run_name=options.recording.tags.get("mlflow.runName"))


def close_sweep(mirror: SweepMirror, table: dict, status: str, *, reporter: Reporter = STDERR) -> None:  # type: ignore[type-arg]
    """The sweep run's end: the best member's metrics and a tag naming it (by ``--sort``), its status."""
    from orchestra.integrations.tracking.sweep_run import close_sweep as close_run

    close_run(mirror, table, status, reporter=reporter)


def resolve_load_from(ref: str, options: RunOptions, *, download: bool = True, reporter: Reporter = STDERR) -> str:
    """``--load-from``: a local run id (or prefix), else an MLflow run id on the tracking server.

    A run found on the server is imported first (outputs downloaded and verified against its
    manifest); the returned id is then a local run the planner can load from.

    With ``download=False`` (``orchestra plan``, ``--dry-run``: they write nothing) an MLflow run
    id that is not imported yet is an error saying how to import it. ``reporter`` gets the
    import's notes (the run's console).

    Raises:
        RunNotFoundError: neither a local run nor (with a tracking server) a mirrored MLflow run.
    """
    try:
        return runstore.resolve_run_id(ref)
    except RunNotFoundError:
        uri = configured(options.recording.tracking_uri)
        if uri is None or len(ref.strip()) != 32:
            raise
    if not download:
        raise RunNotFoundError(f"--load-from {ref.strip()}: not a run in this ORCHESTRA_HOME; if it is an MLflow run, "
                               "planning would have to download its outputs, and plans write nothing",
                               hint=f"`orchestra run … --load-from {ref.strip()} --tracking-uri {uri.display}` imports it")
    from orchestra.integrations.tracking.remote_load import import_run

    return import_run(ref.strip().lower(), uri, reporter=reporter)


def sync_run(run_id: str, uri: TrackingURI, *, upload_outputs: bool = False, timeout_s: float = 300.0,
             experiment: str | None = None) -> SyncReport:
    """Send what the mirror of ``run_id`` left behind, or replay the whole run if it was never mirrored."""
    from orchestra.integrations.tracking.sync import sync

    return sync(run_id, uri, upload_outputs=upload_outputs, timeout_s=timeout_s, experiment=experiment)


def download_run_artifact(run_id: str, path: str, dest_dir: Path, options: RunOptions) -> Path:
    """``runs:/<run_id>/<path>`` of an MLflow run, downloaded from the configured tracking server.

    Raises:
        SourceError: no tracking server configured, no such run or artifact, over the size cap.
    """
    uri = configured(options.recording.tracking_uri)
    if uri is None:
        raise SourceError(f"runs:/{run_id}/{path}: no orchestra run {run_id!r} in this ORCHESTRA_HOME and no tracking server",
                          hint="pass --tracking-uri http://host:port (or set MLFLOW_TRACKING_URI) for an MLflow run")
    from orchestra.integrations.tracking.artifact_get import download_run_artifact as download

    return download(uri, run_id, path, dest_dir)
