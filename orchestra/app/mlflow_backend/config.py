"""``mlflow run -b orchestra``'s arguments as a :class:`BackendRequest`, and its ``RunOptions``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from orchestra.core import options as o
from orchestra.core.errors import BadInputError
from orchestra.core.layout import SCHEMAS_DIR

TOKEN_TAG = "orchestra.mlflow_backend.token"  # how the backend finds the parent run it started
_LISTS = ("force", "load_stages", "load_steps", "hooks")


@dataclass(frozen=True, slots=True)
class BackendRequest:
    """What MLflow hands the backend (JSON-serialisable: it travels to the child process)."""

    uri: str
    entry_point: str
    params: Mapping[str, str]
    version: str | None
    config: Mapping[str, Any]
    tracking_uri: str
    experiment: str
    experiment_id: str | None
    token: str
    targets: tuple[str, ...] = field(default=())
    error_file: str | None = None  # where the child writes its one-line error for the backend

    def to_json(self) -> str:
        return json.dumps({"uri": self.uri, "entry_point": self.entry_point, "params": dict(self.params),
                           "version": self.version, "config": dict(self.config), "tracking_uri": self.tracking_uri,
                           "experiment": self.experiment, "experiment_id": self.experiment_id, "token": self.token,
                           "targets": list(self.targets), "error_file": self.error_file})

    @classmethod
    def from_json(cls, text: str) -> BackendRequest:
        data = json.loads(text)
        return cls(**{**data, "targets": tuple(data.get("targets", ()))})


def check_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` validated against ``schemas/mlflow-backend-config.schema.json``: one-line errors
    naming the key."""
    schema = json.loads((SCHEMAS_DIR / "mlflow-backend-config.schema.json").read_text())
    known = schema["properties"]
    for key, value in config.items():
        if key not in known:
            raise BadInputError(f"--backend-config: unknown key '{key}'",
                                hint="keys: " + ", ".join(k for k in known if not k.isupper() and k != "build_image" and k != "docker_auth"))
        expected = known[key]["type"]
        types = expected if isinstance(expected, list) else [expected]
        if not any(_is(value, t) for t in types):
            raise BadInputError(f"--backend-config: '{key}' must be {' or '.join(types)}, not {json.dumps(value)}")
        if key in _LISTS and not all(isinstance(item, str) for item in value):
            raise BadInputError(f"--backend-config: '{key}' must be a list of strings")
        if key == "jobs" and value < 1:
            raise BadInputError(f"--backend-config: 'jobs' must be at least 1, not {value}")
    return dict(config)


def _is(value: Any, kind: str) -> bool:
    return {"integer": isinstance(value, int) and not isinstance(value, bool), "boolean": isinstance(value, bool),
            "string": isinstance(value, str), "array": isinstance(value, list), "object": isinstance(value, dict),
            "null": value is None}[kind]


def run_options(request: BackendRequest) -> o.RunOptions:
    """The ``RunOptions`` of ``orchestra run`` with the same meaning (validated: exit-2 errors)."""
    cfg = check_config(request.config)
    docker = tuple((str(k), None if v is None else str(v)) for k, v in (cfg.get("DOCKER_ARGS") or {}).items())
    return o.RunOptions(
        selection=o.Selection(version=request.version, entry_points=request.targets,
                              params=tuple(f"{k}={v}" for k, v in request.params.items()),
                              storage_dir=cfg.get("STORAGE_DIR")),
        cache=o.CacheOptions(no_cache=bool(cfg.get("no_cache")), force=tuple(cfg.get("force", ())),
                             load_from=cfg.get("load_from"), load_stages=tuple(cfg.get("load_stages", ())),
                             load_steps=tuple(cfg.get("load_steps", ()))),
        execution=o.ExecutionOptions(jobs=cfg.get("jobs"), keep_going=bool(cfg.get("keep_going")),
                                     env_manager=cfg.get("ENV_MANAGER") or None, executor=cfg.get("executor", "local"),
                                     docker_args=docker, build_image=bool(cfg.get("build_image"))),
        recording=o.RecordingOptions(experiment=request.experiment, experiment_id=request.experiment_id,
                                     tracking_uri=request.tracking_uri, mlflow_artifacts=bool(cfg.get("mlflow_artifacts")),
                                     tags={TOKEN_TAG: request.token}),
        notification=o.NotificationOptions(hooks_uris=tuple(cfg.get("hooks", ()))),
        quiet=False,
    )
