"""What a run is asked to do: ``orchestra run``'s options as frozen values, one per concern.

``RunOptions`` groups them: :class:`Selection` (which project version, stages and params),
:class:`CacheOptions` (what may be loaded), :class:`ExecutionOptions` (where and how stages
run), :class:`RecordingOptions` (how the run is named and mirrored to MLflow) and
:class:`NotificationOptions` (webhooks). Each validates itself in ``__post_init__``, so every
caller of the api — the CLI, the scheduler, a notebook — gets the same checks and the same
one-line, exit-2 errors before anything is fetched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from orchestra.core.errors import BadInputError, ParamError
from orchestra.core.tracking_uri import is_server, parse

ENV_MANAGERS = ("local", "uv", "virtualenv", "conda")
BACKENDS = ("local",)
# -c/--backend-config keys. mlflow's local backend reads these (mlflow run overwrites all but the
# run id with its own flags, so they change nothing there, nor here); the run id is --run-id.
MLFLOW_LOCAL_BACKEND_KEYS = ("ENV_MANAGER", "SYNCHRONOUS", "DOCKER_ARGS", "STORAGE_DIR", "build_image", "docker_auth")
MLFLOW_RUN_ID_KEY = "_mlflow_local_backend_run_id"
# orchestra's own: a flag given on the command line wins over the config.
BACKEND_CONFIG_KEYS = {"jobs": int, "keep_going": bool, "executor": str}
EXECUTOR_CHOICES = "local or dask://HOST:PORT"


def parse_executor(spec: str) -> tuple[str, str | None]:
    """``("local", None)`` or ``("dask", "tcp://HOST:PORT")``; BadInputError otherwise."""
    from urllib.parse import urlsplit

    if spec in ("", "local"):
        return "local", None
    if spec.startswith("dask://"):
        parts = urlsplit(spec)
        try:
            port = parts.port
        except ValueError:
            port = None
        if parts.hostname and port and not parts.path.strip("/") and not parts.query:
            host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
            return "dask", f"tcp://{host}:{port}"
        raise BadInputError(f"--executor {spec}: expected dask://HOST:PORT", hint="e.g. dask://127.0.0.1:8786")
    raise BadInputError(f"--executor {spec}: unknown executor", hint=EXECUTOR_CHOICES)


@dataclass(frozen=True, slots=True)
class Selection:
    """Which code runs: git ``version``, target stages (``-e``; empty = the default targets) and
    raw ``-P`` strings (``k=v`` or ``stage.k=v``)."""

    version: str | None = None
    entry_points: Sequence[str] = ()
    params: Sequence[str] = ()
    type_check: bool = True  # False: --no-type-check, values pass through as mlflow run passes them
    storage_dir: str | None = None  # --storage-dir: where remote ``path`` parameters are downloaded


@dataclass(frozen=True, slots=True)
class CacheOptions:
    """What may be loaded instead of run.

    Attributes:
        no_cache: run every stage.
        force: stages to rerun even if they could load.
        load_from: run id whose outputs are preferred.
        load_stages: stages loaded from ``load_from`` even when their keys differ.
    """

    no_cache: bool = False
    force: Sequence[str] = ()
    load_from: str | None = None
    load_stages: Sequence[str] = ()
    load_steps: Sequence[str] = ()

    def __post_init__(self) -> None:
        if self.load_stages and not self.load_from:
            raise ParamError("--load-stages needs --load-from RUN_ID")
        if self.load_steps and not self.load_from:
            raise ParamError("--load-steps needs --load-from RUN_ID")


@dataclass(frozen=True, slots=True)
class ExecutionOptions:
    """Where and how stages run.

    Attributes:
        jobs: stages in parallel (None = number of CPUs, or the cluster's threads).
        keep_going: after a failure, let independent branches finish.
        dry_run: plan only.
        env_manager: ``local|uv|virtualenv|conda`` override of every stage's environment.
        executor: ``local`` or ``dask://host:port``.
        extra_env: extra variables for every stage (the scheduler's ORCHESTRA_SCHEDULE, ...).
    """

    jobs: int | None = None
    keep_going: bool = False
    dry_run: bool = False
    env_manager: str | None = None
    executor: str = "local"
    extra_env: Mapping[str, str] = field(default_factory=dict)
    docker_args: Sequence[tuple[str, str | None]] = ()
    build_image: bool = False
    skip_image_build: bool = False
    backend: str = "local"
    backend_config: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.jobs is not None and self.jobs < 1:
            raise BadInputError(f"-j {self.jobs}: must be at least 1")
        if self.env_manager is not None and self.env_manager not in ENV_MANAGERS:
            raise ParamError(f"--env-manager {self.env_manager}: unknown", hint=f"one of {', '.join(ENV_MANAGERS)}")
        if self.backend not in BACKENDS:
            raise ParamError(f"-b/--backend {self.backend}: not a backend orchestra runs",
                             hint=f"backends: {', '.join(BACKENDS)}; mlflow's databricks and kubernetes backends are "
                                  "not supported: run stages on a cluster with --executor dask://HOST:PORT")
        if self.build_image and self.skip_image_build:
            raise ParamError("--build-image and --skip-image-build exclude each other")
        self._apply_backend_config()
        parse_executor(self.executor)

    def _apply_backend_config(self) -> None:
        """Check -c's keys; orchestra's own (jobs, keep_going, executor) apply unless the flag is given."""
        known = (*BACKEND_CONFIG_KEYS, *MLFLOW_LOCAL_BACKEND_KEYS, MLFLOW_RUN_ID_KEY)
        for key, value in self.backend_config.items():
            if key not in known:
                raise ParamError(f"-c/--backend-config: unknown key {key!r} for the local backend",
                                 hint=f"known: {', '.join(known)}")
            kind = BACKEND_CONFIG_KEYS.get(key)
            if kind is not None and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
                raise ParamError(f"-c/--backend-config: {key}: expected {'a number' if kind is int else kind.__name__}, "
                                 f"got {value!r}")
        config = self.backend_config
        if self.jobs is None and "jobs" in config:
            if config["jobs"] < 1:
                raise ParamError(f"-c/--backend-config: jobs: must be at least 1, got {config['jobs']}")
            object.__setattr__(self, "jobs", config["jobs"])
        if not self.keep_going and config.get("keep_going"):
            object.__setattr__(self, "keep_going", True)
        if self.executor in ("", "local") and "executor" in config:
            object.__setattr__(self, "executor", config["executor"])


@dataclass(frozen=True, slots=True)
class RecordingOptions:
    """How the run is recorded: its experiment, extra tags, and the MLflow server it is mirrored to.

    Attributes:
        experiment: experiment name.
        experiment_id: ``--experiment-id``; parent_run_id: ``--run-id`` (mlflow run's flags).
        tags: extra run tags (``mlflow.runName``; the scheduler adds its schedule name and slot).
        tracking_uri: MLflow tracking server (None: ``MLFLOW_TRACKING_URI`` if set); a non-http URI
            is a store: nothing is mirrored, the run says how to.
        mlflow_artifacts: also upload stage outputs (and the manifest) to the MLflow runs.
    """

    experiment: str = "Default"
    tags: Mapping[str, str] = field(default_factory=dict)
    tracking_uri: str | None = None
    mlflow_artifacts: bool = False
    experiment_id: str | None = None  # --experiment-id: an MLflow experiment id (wins over the name)
    parent_run_id: str | None = None  # --run-id: an existing MLflow run the pipeline attaches to as parent

    def __post_init__(self) -> None:
        if self.tracking_uri:
            if is_server(self.tracking_uri):  # a store (sqlite:, file:, …) is kept locally, never an error
                parse(self.tracking_uri)


@dataclass(frozen=True, slots=True)
class NotificationOptions:
    """Webhooks: extra config sources (``--hooks``), whether a remote project's own hooks are
    honoured, and how long the end of a run waits for deliveries."""

    hooks_uris: Sequence[str] = ()
    trust_project_hooks: bool = False
    hooks_drain: float = 10.0


@dataclass(frozen=True, slots=True)
class RunOptions:
    """Everything ``orchestra run`` accepts besides the URI, by concern; ``quiet``: no live
    output on stderr; ``color``: ``auto`` (a terminal without ``NO_COLOR``), ``always`` or ``never``."""

    selection: Selection = field(default_factory=Selection)
    cache: CacheOptions = field(default_factory=CacheOptions)
    execution: ExecutionOptions = field(default_factory=ExecutionOptions)
    recording: RecordingOptions = field(default_factory=RecordingOptions)
    notification: NotificationOptions = field(default_factory=NotificationOptions)
    quiet: bool = False
    color: str = "auto"

    def __post_init__(self) -> None:
        # -c '{"_mlflow_local_backend_run_id": ...}' is how mlflow's api passes --run-id to its local backend.
        run_id = self.execution.backend_config.get(MLFLOW_RUN_ID_KEY)
        if run_id and not self.recording.parent_run_id:
            object.__setattr__(self, "recording", replace(self.recording, parent_run_id=str(run_id)))
