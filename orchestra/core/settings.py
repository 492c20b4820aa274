"""orchestra's configuration from the environment, read in this one place.

Every variable orchestra itself honours is listed in :data:`VARIABLES` and read by
:func:`current` into one frozen :class:`Settings`; no other module reads ``os.environ`` for its
configuration. (Variables that belong to the tools orchestra drives — ``PATH``, ``HOME``,
``SHELL``, ``UV_*``, ``GIT_SSH_COMMAND``, ``RATTLER_CACHE_DIR`` — are passed through to them and
read where those tools are called; stage code reads the ``ORCHESTRA_*`` variables orchestra sets
for it through :mod:`orchestra.stage`.)

``current()`` compares the variables with the last snapshot, so a test or a long-lived process
that changes ``ORCHESTRA_HOME`` gets new settings, and an unchanged environment costs a dozen
dictionary lookups. Credentials (``MLFLOW_TRACKING_PASSWORD``, ``_TOKEN``) are kept out of
``repr`` so they never reach a log.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from orchestra.core.errors import BadInputError

VARIABLES = {
    "ORCHESTRA_HOME": "where runs, objects, environments and queues live (default ~/.orchestra)",
    "ORCHESTRA_DEBUG": "1: show tracebacks (as --debug)",
    "ORCHESTRA_ARTIFACTS": "shared artifact store for remote executors (file:// or s3://)",
    "ORCHESTRA_HOOKS_URI": "an extra webhook configuration source",
    "MLFLOW_HOOKS_URI": "the same, under MLflow's prefix",
    "MLFLOW_TRACKING_URI": "the MLflow tracking server runs are mirrored to",
    "MLFLOW_TRACKING_USERNAME": "basic-auth user for the tracking server",
    "MLFLOW_TRACKING_PASSWORD": "basic-auth password for the tracking server",
    "MLFLOW_TRACKING_TOKEN": "bearer token for the tracking server",
    "ORCHESTRA_MLFLOW_TIMEOUT": "seconds for the synchronous MLflow calls (default 3)",
    "ORCHESTRA_DASK_CONNECT_TIMEOUT": "seconds to reach a Dask scheduler (default 5)",
    "ORCHESTRA_WORKER_DIR": "a Dask worker's cache of projects and inputs",
    "ORCHESTRA_CONDA_EXE": "install conda envs with this executable instead of py-rattler",
    "ORCHESTRA_ENV_LOCK_TIMEOUT": "seconds to wait for another process building the same env",
    "ORCHESTRA_MAX_DOWNLOAD_BYTES": "largest download (a .zip project, a remote path parameter; default 2 GiB)",
    "MLFLOW_TMP_DIR": "default of --storage-dir (as mlflow run)",
    "ORCHESTRA_MAX_UNZIP_BYTES": "largest total unpacked size of a .zip project (default 4 GiB)",
    "ORCHESTRA_MAX_YAML_BYTES": "largest YAML file read: an MLproject, a sweep file, a configuration (default 16 MiB)",
}
_NAMES = tuple(VARIABLES)


def _text(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def _bytes(name: str, value: str | None, default: int) -> int:
    """A positive byte count (a plain integer), or ``default`` when unset; a bad value is an error
    (a typo in a limit must not silently become the default)."""
    value = (value or "").strip()
    if not value:
        return default
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count <= 0:
        raise BadInputError(f"{name}={value!r} is not a byte count", where="environment",
                            hint=f"set a positive whole number of bytes, or unset it for the default, {default}")
    return count


def _seconds(value: str | None) -> float | None:
    """A positive number of seconds, or None (a bad value falls back to the default)."""
    try:
        seconds = float(value) if value else None
    except ValueError:
        return None
    return seconds if seconds is not None and seconds > 0 else None


@dataclass(frozen=True, slots=True)
class Settings:
    """The environment's configuration of orchestra (see :data:`VARIABLES`)."""

    home: Path
    debug: bool = False
    artifacts_url: str | None = None
    hooks_uris: tuple[str, ...] = ()
    tracking_uri: str | None = None
    tracking_username: str | None = None
    tracking_password: str | None = field(default=None, repr=False)
    tracking_token: str | None = field(default=None, repr=False)
    mlflow_timeout_s: float | None = None
    dask_connect_timeout: str | None = None  # as given: a bad value is an error where it is used
    worker_dir: str | None = None
    conda_exe: str | None = None
    env_lock_timeout_s: float | None = None
    max_download_bytes: int = 2 << 30
    max_unzip_bytes: int = 4 << 30
    max_yaml_bytes: int = 16 << 20
    storage_dir: str | None = None

    @classmethod
    def from_env(cls, environ: dict[str, str] | os._Environ[str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        get = env.get
        return cls(
            home=Path(get("ORCHESTRA_HOME") or Path.home() / ".orchestra").expanduser(),  # as home()
            debug=get("ORCHESTRA_DEBUG") == "1",
            artifacts_url=_text(get("ORCHESTRA_ARTIFACTS")),
            hooks_uris=tuple(u for u in (_text(get("ORCHESTRA_HOOKS_URI")), _text(get("MLFLOW_HOOKS_URI"))) if u),
            tracking_uri=_text(get("MLFLOW_TRACKING_URI")),
            tracking_username=get("MLFLOW_TRACKING_USERNAME") or None,
            tracking_password=get("MLFLOW_TRACKING_PASSWORD") or None,
            tracking_token=get("MLFLOW_TRACKING_TOKEN") or None,
            mlflow_timeout_s=_seconds(get("ORCHESTRA_MLFLOW_TIMEOUT")),
            dask_connect_timeout=_text(get("ORCHESTRA_DASK_CONNECT_TIMEOUT")),
            worker_dir=_text(get("ORCHESTRA_WORKER_DIR")),
            conda_exe=_text(get("ORCHESTRA_CONDA_EXE")),
            env_lock_timeout_s=_seconds(get("ORCHESTRA_ENV_LOCK_TIMEOUT")),
            max_download_bytes=_bytes("ORCHESTRA_MAX_DOWNLOAD_BYTES", get("ORCHESTRA_MAX_DOWNLOAD_BYTES"), 2 << 30),
            max_unzip_bytes=_bytes("ORCHESTRA_MAX_UNZIP_BYTES", get("ORCHESTRA_MAX_UNZIP_BYTES"), 4 << 30),
            max_yaml_bytes=_bytes("ORCHESTRA_MAX_YAML_BYTES", get("ORCHESTRA_MAX_YAML_BYTES"), 16 << 20),
            storage_dir=_text(get("MLFLOW_TMP_DIR")),
        )


_snapshot: tuple[tuple[str | None, ...], Settings] | None = None
_home: tuple[str | None, Path] | None = None


def home() -> Path:
    """``ORCHESTRA_HOME`` alone (expanded, not resolved): the one variable hot paths read — every
    store connection and run path asks for it, so it costs one lookup, not a full snapshot."""
    global _home
    value = os.environ.get("ORCHESTRA_HOME")
    cached = _home
    if cached is not None and cached[0] == value:
        return cached[1]
    path = Path(value or Path.home() / ".orchestra").expanduser()
    _home = (value, path)
    return path


def current() -> Settings:
    """The settings of the environment as it is now (recomputed only when a variable changed)."""
    global _snapshot
    environ = os.environ
    key = tuple(environ.get(name) for name in _NAMES)
    snapshot = _snapshot
    if snapshot is not None and snapshot[0] == key:
        return snapshot[1]
    settings = Settings.from_env(environ)
    _snapshot = (key, settings)
    return settings
