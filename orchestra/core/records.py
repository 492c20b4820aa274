"""Typed records that cross layers: what a run returns and what the stores hold."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from orchestra.core.status import RunStatus, StageStatus

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# Where a stage's MLflow artifacts (logged through the run's tracking endpoint) and the files of
# its logged models are kept among its outputs (published with them, part of their manifest).
MLFLOW_ARTIFACTS_PREFIX = "mlflow-artifacts/"
MLFLOW_MODELS_PREFIX = "mlflow-models/"


@dataclass(frozen=True, slots=True)
class GitState:
    """A directory inside a git work tree: HEAD, branch, origin, uncommitted changes, code digest."""

    commit: str
    branch: str | None
    repo_url: str | None
    dirty: bool
    code_digest: str


@dataclass(frozen=True, slots=True)
class Metric:
    """One logged value of a metric: ``key`` at ``step``, logged at ``timestamp`` (epoch seconds)."""

    key: str
    value: float
    step: int = 0
    timestamp: float = 0.0


@dataclass(frozen=True, slots=True)
class LoadedFrom:
    """The earlier stage whose outputs a LOADED stage links."""

    run_id: str
    stage: str


@dataclass(frozen=True, slots=True)
class StageRecord:
    """One stage of a stored run, as ``orchestra runs show`` reads it."""

    name: str
    status: StageStatus
    exit_code: int | None = None
    start_time: float | None = None
    end_time: float | None = None
    attempts: int = 0
    metrics: Mapping[str, float] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    log_dir: str | None = None
    outputs_dir: str | None = None
    cache_key: str | None = None
    components: Mapping[str, Any] = field(default_factory=dict)
    env_key: str | None = None
    command: str | None = None
    manifest: Mapping[str, Mapping[str, Any]] | None = None
    loaded_from: LoadedFrom | None = None
    message: str | None = None
    models: tuple[Mapping[str, Any], ...] = ()

    @property
    def log_paths(self) -> dict[str, str]:
        if not self.log_dir:
            return {}
        return {"stdout": f"{self.log_dir}/stdout.log", "stderr": f"{self.log_dir}/stderr.log"}

    def to_json(self) -> dict[str, Any]:
        """The stage's part of ``orchestra runs show --json`` (the stored JSON shape)."""
        return {
            "name": self.name, "status": str(self.status), "exit_code": self.exit_code,
            "start_time": self.start_time, "end_time": self.end_time, "attempts": self.attempts,
            "metrics": dict(self.metrics), "params": dict(self.params), "tags": dict(self.tags),
            "log_paths": self.log_paths, "outputs_dir": self.outputs_dir, "cache_key": self.cache_key,
            "components": dict(self.components), "env_key": self.env_key, "command": self.command,
            "manifest": dict(self.manifest) if self.manifest is not None else None,
            "loaded_from": {"run_id": self.loaded_from.run_id, "stage": self.loaded_from.stage}
            if self.loaded_from else None,
            "message": self.message,
            "artifacts": self.artifacts, "models": [dict(m) for m in self.models],
        }

    @property
    def artifacts(self) -> list[str]:
        """The MLflow artifacts the stage's code logged (paths under ``mlflow-artifacts/`` of its outputs)."""
        prefix = MLFLOW_ARTIFACTS_PREFIX
        return sorted(rel[len(prefix):] for rel in (self.manifest or {}) if rel.startswith(prefix))


@dataclass(frozen=True, slots=True)
class RunRecord:
    """A stored run with its stages."""

    run_id: str
    experiment: str
    status: RunStatus
    start_time: float
    end_time: float | None = None
    project_uri: str | None = None
    targets: tuple[str, ...] = ()
    params: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    message: str | None = None
    stages: tuple[StageRecord, ...] = ()

    def stage(self, name: str) -> StageRecord | None:
        return next((s for s in self.stages if s.name == name), None)

    @property
    def metrics(self) -> dict[str, float]:
        """Pipeline-level metrics: each stage's last value of each metric as ``<stage>.<metric>``
        (loaded stages included: they carry the metrics of the stage they were loaded from)."""
        return pipeline_metrics((s.name, s.metrics) for s in self.stages)

    def to_json(self) -> dict[str, Any]:
        """``orchestra runs show --json``: the run's fields, its pipeline metrics and a ``stages`` list."""
        return {
            "run_id": self.run_id, "experiment": self.experiment, "status": str(self.status),
            "start_time": self.start_time, "end_time": self.end_time, "project_uri": self.project_uri,
            "targets": list(self.targets), "params": dict(self.params), "metrics": self.metrics, "tags": dict(self.tags),
            "message": self.message, "stages": [s.to_json() for s in self.stages],
        }


@dataclass(frozen=True, slots=True)
class RunResult:
    """The outcome of ``run()``: the run's id, final status, exit code and stored record.

    A ``--dry-run`` stores nothing: ``run_id`` and ``record`` are None, ``status`` is PLANNED and
    ``plan`` holds the plan's JSON (``orchestra plan --json``'s list).
    """

    run_id: str | None
    status: RunStatus
    exit_code: int
    record: RunRecord | None = None
    plan: Sequence[Mapping[str, Any]] | None = None

    def to_json(self) -> dict[str, Any]:
        """``orchestra run --json``: the run's record, or ``{"plan": [...]}`` for a dry run."""
        if self.record is not None:
            return self.record.to_json()
        return {"plan": list(self.plan or ())}


@dataclass(frozen=True, slots=True)
class StageUpdate:
    """A change to one stage row: every field left None stays as stored.

    ``loaded_from`` is stored as the row's ``loaded_from_run`` / ``loaded_from_stage``.
    """

    status: StageStatus | None = None
    start_time: float | None = None
    end_time: float | None = None
    attempts: int | None = None
    exit_code: int | None = None
    cache_key: str | None = None
    components: Mapping[str, Any] | None = None
    env_key: str | None = None
    command: str | None = None
    log_dir: str | None = None
    outputs_dir: str | None = None
    manifest: Mapping[str, Mapping[str, Any]] | None = None
    manifest_digest: str | None = None
    loaded_from: LoadedFrom | None = None
    metrics: Mapping[str, float] | None = None
    params: Mapping[str, str] | None = None
    tags: Mapping[str, str] | None = None
    message: str | None = None
    models: tuple[Mapping[str, Any], ...] | None = None  # logged models: rows of the models table


def pipeline_metrics(stages: Iterable[tuple[str, Mapping[str, float]]]) -> dict[str, float]:
    """``<stage>.<metric>`` of each stage's last value of each metric (:attr:`RunRecord.metrics`)."""
    return {f"{name}.{key}": value for name, metrics in stages for key, value in sorted(metrics.items())}
