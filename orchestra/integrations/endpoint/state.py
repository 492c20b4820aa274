"""What the run's tracking endpoint holds: experiments, MLflow runs and logged models, per stage.

Every MLflow run and logged model the endpoint creates belongs to one stage (the stage whose
token made the request). The stage's own run is created by orchestra before the stage starts;
runs its code starts itself (nested runs) are kept too and answered, but only the stage's own
run is recorded in the run store. The registry is shared by the server's threads: one lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from orchestra.core.randomid import hex_id, url_token
from orchestra.core.records import MLFLOW_ARTIFACTS_PREFIX, MLFLOW_MODELS_PREFIX, Metric

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(slots=True)
class Experiment:
    """An experiment the endpoint created or was asked about."""

    experiment_id: str
    name: str
    tags: dict[str, str] = field(default_factory=dict)
    created_ms: int = field(default_factory=now_ms)


@dataclass(slots=True)
class LocalRun:
    """One MLflow run served by the endpoint (mutable state, under the registry's lock)."""

    run_id: str
    experiment_id: str
    stage: str
    name: str
    start_ms: int
    own: bool  # the stage's own run (MLFLOW_RUN_ID), recorded in the run store
    status: str = "RUNNING"
    end_ms: int | None = None
    user: str = ""
    metrics: list[tuple[str, float, int, int, str | None]] = field(default_factory=list)  # key, value, ms, step, model
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    inputs: list[dict[str, Any]] = field(default_factory=list)
    model_inputs: list[dict[str, Any]] = field(default_factory=list)
    model_outputs: list[dict[str, Any]] = field(default_factory=list)
    deleted: bool = False

    @property
    def artifact_uri(self) -> str:
        return f"mlflow-artifacts:/{self.experiment_id}/{self.run_id}/artifacts"

    @property
    def prefix(self) -> str:
        """Where its artifacts are kept among the stage's outputs."""
        return MLFLOW_ARTIFACTS_PREFIX if self.own else f"{MLFLOW_ARTIFACTS_PREFIX}runs/{self.run_id}/"


@dataclass(slots=True)
class LocalModel:
    """One MLflow logged model served by the endpoint."""

    model_id: str
    experiment_id: str
    stage: str
    name: str
    created_ms: int
    source_run_id: str | None = None
    model_type: str | None = None
    status: str = "LOGGED_MODEL_PENDING"
    updated_ms: int = 0
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    deleted: bool = False

    @property
    def artifact_uri(self) -> str:
        return f"mlflow-artifacts:/{self.experiment_id}/models/{self.model_id}/artifacts"

    @property
    def prefix(self) -> str:
        return f"{MLFLOW_MODELS_PREFIX}{self.model_id}/"

    def record(self) -> dict[str, Any]:
        """Its row in the run store's models table."""
        return {"model_id": self.model_id, "name": self.name, "model_type": self.model_type, "status": self.status,
                "source_run_id": self.source_run_id, "params": dict(self.params), "tags": dict(self.tags),
                "created_ms": self.created_ms, "files": self.prefix}


@dataclass(frozen=True, slots=True)
class StageData:
    """What one stage attempt logged through the endpoint (its own run), handed to the run's record."""

    metrics: tuple[Metric, ...] = ()
    params: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    models: tuple[Mapping[str, Any], ...] = ()


@dataclass(slots=True)
class StageSlot:
    """A stage the endpoint serves: its token, its own run, where its files go now."""

    name: str
    token: str
    run_id: str
    staging: Path | None = None  # the attempt's {outputs} (files are published with the stage)
    outputs: Path | None = None  # the stage's published outputs (reads after it ended)


# Tags the endpoint keeps to itself: orchestra sets the run's name and parentage.
_PRIVATE_TAGS = frozenset({"mlflow.parentRunId"})


class Registry:
    """Experiments, runs and models of one orchestra run, under one lock."""

    def __init__(self, experiment: str) -> None:
        self.lock = threading.RLock()
        self.experiments: dict[str, Experiment] = {}
        self.runs: dict[str, LocalRun] = {}
        self.models: dict[str, LocalModel] = {}
        self.slots: dict[str, StageSlot] = {}  # stage name → slot
        self.by_token: dict[str, StageSlot] = {}
        self.experiment_id = self.add_experiment(experiment).experiment_id

    def add_experiment(self, name: str, tags: Mapping[str, str] | None = None) -> Experiment:
        with self.lock:
            for experiment in self.experiments.values():
                if experiment.name == name:
                    return experiment
            experiment = Experiment(str(len(self.experiments) + (0 if name == "Default" else 1)), name, dict(tags or {}))
            while experiment.experiment_id in self.experiments:
                experiment.experiment_id = str(int(experiment.experiment_id) + 1)
            self.experiments[experiment.experiment_id] = experiment
            return experiment

    def experiment_by_name(self, name: str) -> Experiment | None:
        with self.lock:
            return next((e for e in self.experiments.values() if e.name == name), None)

    def open_stage(self, name: str, staging: Path, outputs: Path) -> StageSlot:
        """The stage's slot for a new attempt: same token and run, fresh data (a retry starts over)."""
        with self.lock:
            slot = self.slots.get(name)
            if slot is None:  # a first attempt: nothing of this stage to forget (no scan of every run)
                run_id = hex_id(16)
                slot = StageSlot(name, url_token(24), run_id)
                self.slots[name] = slot
                self.by_token[slot.token] = slot
            else:  # a retry starts over: what the failed attempt logged is dropped
                for model_id in [m.model_id for m in self.models.values() if m.stage == name]:
                    del self.models[model_id]
                for run_id in [r.run_id for r in self.runs.values() if r.stage == name]:
                    del self.runs[run_id]
            self.runs[slot.run_id] = LocalRun(slot.run_id, self.experiment_id, name, name, now_ms(), own=True,
                                              tags={"mlflow.runName": name})
            slot.staging, slot.outputs = staging, outputs
            return slot

    def close_stage(self, name: str, *, published: bool) -> StageData:
        """What the stage's attempt logged; later reads of its files go to its published outputs."""
        with self.lock:
            slot = self.slots.get(name)
            if slot is None:
                return StageData()
            slot.staging = None
            if not published:
                slot.outputs = None
            run = self.runs.get(slot.run_id)
            if run is None:
                return StageData()
            metrics = tuple(Metric(k, v, step, ms / 1000.0) for k, v, ms, step, _ in run.metrics)
            tags = {k: v for k, v in run.tags.items() if k not in _PRIVATE_TAGS}
            models = tuple(m.record() for m in self.models.values()
                           if m.stage == name and not m.deleted and published)
            return StageData(metrics, dict(run.params), tags, models)

    def new_run(self, slot: StageSlot, experiment_id: str, name: str | None, start_ms: int | None,
                tags: Mapping[str, str], user: str) -> LocalRun:
        with self.lock:
            if experiment_id not in self.experiments:
                self.experiments[experiment_id] = Experiment(experiment_id, f"experiment {experiment_id}")
            run_id = hex_id(16)
            run = LocalRun(run_id, experiment_id, slot.name, name or f"{slot.name}-{run_id[:6]}",
                           start_ms or now_ms(), own=False, user=user, tags=dict(tags))
            run.tags.setdefault("mlflow.runName", run.name)
            self.runs[run_id] = run
            return run

    def new_model(self, slot: StageSlot, experiment_id: str, name: str | None, body: Mapping[str, Any]) -> LocalModel:
        with self.lock:
            model_id = f"m-{hex_id(16)}"
            created = now_ms()
            model = LocalModel(model_id, experiment_id or self.experiment_id, slot.name, name or model_id, created,
                               source_run_id=body.get("source_run_id") or None, model_type=body.get("model_type"),
                               updated_ms=created)
            model.params.update(pairs(body.get("params")))
            model.tags.update(pairs(body.get("tags")))
            self.models[model_id] = model
            return model


def pairs(items: Any) -> dict[str, str]:
    """MLflow's ``[{"key": k, "value": v}, ...]`` as a dict."""
    return {str(item["key"]): str(item.get("value", "")) for item in items or () if "key" in item}
