"""The engine's view of one run: decisions, stage tasks, loading, and recording every change."""

from __future__ import annotations

import getpass
import os
import time
from pathlib import Path
from typing import Any, Mapping

from orchestra.core import events
from orchestra.planning import plan as planmod
from orchestra.core.options import RunOptions
from orchestra.app.console import Console
from orchestra.execution.engine import FAILED, FINISHED, KILLED, LOADED, SKIPPED
from orchestra.execution.executors.base import StageTask, TaskOutcome, latest_metrics
from orchestra.execution.task import TaskContext, build_task
from orchestra.core.layout import RunLayout, home_path
from orchestra.planning.prepared import Prepared
from orchestra.store import runs as runstore

_EVENT_STATUS = {FINISHED: events.SUCCESS, FAILED: events.FAILED, SKIPPED: events.SKIPPED, LOADED: events.LOADED,
                 KILLED: events.KILLED}


class RunDriver:
    """The engine's view of one run: decisions, tasks, loading, and recording every change."""

    def __init__(self, run_id: str, prepared: Prepared, options: RunOptions, console: Console,
                 bus: events.EventBus) -> None:
        self.run_id = run_id
        self.prepared = prepared
        self.options = options
        self.console = console
        self.bus = bus
        self.run_dir = home_path("runs", run_id)
        self.layout = RunLayout(self.run_dir)
        self.view = planmod.LiveStoreView(prepared.project.uri)
        self.planned = {decision.name: decision for decision in prepared.plan.stages}
        self._deferred: list[tuple[str, dict[str, Any]]] = []
        self._commands: dict[str, str] = {}
        # Computed once: a long chain asks for every ancestor's paths at every stage.
        self.out_strs = {name: str(self.layout.outputs_dir(name)) for name in prepared.graph.order}
        self.counts = {"PENDING": len(prepared.graph.order)}
        self.console.total = len(prepared.graph.order)
        self.started_at: dict[str, float] = {}
        self.manifests: dict[str, Mapping[str, Any]] = {}  # finished/loaded stage → its manifest
        self.loaded = 0
        self.ran = 0
        project = prepared.project
        self.project_info = {"uri": project.uri, "commit": project.commit, "entry_point": ",".join(prepared.targets)}
        self.run_params = run_params(prepared)
        self.tags = run_tags(prepared, options)
        self.context = TaskContext(
            run_id=run_id, layout=self.layout, project_dir=prepared.project.path,
            base_env={**os.environ, **options.execution.extra_env, "ORCHESTRA_RUN_ID": run_id, "PYTHONUNBUFFERED": "1"},
            extra_env=options.execution.extra_env, env_manager=options.execution.env_manager)
        # Listeners that give each stage variables (the MLflow mirror: MLFLOW_RUN_ID of its child run).
        self.env_providers = [listener for listener in bus.listeners if isinstance(listener, events.StageEnvProvider)]

    def stage_dir(self, name: str) -> Path:
        return self.layout.stage_dir(name)

    def outputs_dir(self, name: str) -> Path:
        return self.layout.outputs_dir(name)

    def _count(self, old: str | None, new: str) -> None:
        if old:
            self.counts[old] = max(0, self.counts.get(old, 0) - 1)
        self.counts[new] = self.counts.get(new, 0) + 1
        self.console.set_counts(self.counts)

    def _event(self, name: str, **fields: Any) -> None:
        fields.setdefault("params", self.run_params)
        fields.setdefault("tags", self.tags)
        self.bus.publish(events.Event(name=name, run_id=self.run_id, experiment=self.options.recording.experiment,
                                      project=self.project_info, **fields))

    # -- Driver protocol ---------------------------------------------------------------
    def decide(self, name: str, upstream: Mapping[str, str]) -> planmod.StagePlan:
        planned = self.planned[name]
        # The plan's decision stands when it was final and the upstream outputs are the ones it
        # assumed; otherwise (an upstream stage ran, or failed to load) decide again now.
        if planned.final and (planned.trusted or (planned.components or {}).get("upstream") == dict(upstream)):
            return planned
        return planmod.decide(self.prepared.inputs[name], upstream, self.prepared.options, self.view)

    def task(self, name: str, attempt: int, decision: planmod.StagePlan) -> StageTask:
        stage = self.prepared.graph.stages[name]
        inputs = {parent: self.out_strs[parent] for parent in self.prepared.graph.ancestors(name)}
        provided: dict[str, str] = {}
        for provider in self.env_providers:  # MLFLOW_RUN_ID & co. of the stage's mirrored run
            provided.update(provider.stage_env(name, decision))
        task = build_task(self.context, stage, attempt, params=self.prepared.params[name],
                          environment=self.prepared.environments[name], env_spec=self.prepared.spec.env_for(stage),
                          inputs=inputs, input_manifests=self.manifests, provided_env=provided)
        self._commands[name] = task.command
        return task

    def load(self, decision: planmod.StagePlan) -> str | None:
        from orchestra.store import artifacts

        assert decision.source is not None
        result = artifacts.load(decision.source.manifest, self.outputs_dir(decision.name))
        if not result.ok:
            self.console.stage_line(decision.name, f"cannot load outputs of run {decision.source.run_id[:8]}: "
                                                   f"{result.problem}; running it again")
        return result.problem

    def flush(self) -> None:
        """Write deferred LOADED records (batched: one transaction for a run of loads)."""
        if self._deferred:
            runstore.update_stages(self.run_id, self._deferred)
            self._deferred = []

    def started(self, name: str, attempt: int, decision: planmod.StagePlan) -> None:
        self.flush()
        now = time.time()
        self.started_at[name] = now
        environment = self.prepared.environments[name]
        runstore.update_stage(self.run_id, name, status="RUNNING", start_time=now, attempts=attempt,
                              cache_key=decision.key, components=decision.components,
                              env_key=environment.key if environment else None,
                              log_dir=str(self.stage_dir(name) / "logs"), command=self._commands.get(name))
        self.console.stage_running(name)
        if attempt == 1:
            self._count("PENDING", "RUNNING")
            why = "; ".join(decision.reasons)
            self.console.stage_line(name, self.console.color("started", "RUN") + (f" ({why})" if why else ""))
        else:
            self.console.stage_line(name, f"attempt {attempt} started")
        self._event(events.STAGE_STARTED, stage=name, attempt=attempt, cache_key=decision.key)

    def retrying(self, name: str, outcome: TaskOutcome) -> None:
        self.console.stage_line(name, f"attempt {outcome.attempt} {outcome.status}"
                                      f" ({outcome.message or ''}); retrying")
        self._event(events.STAGE_RETRYING, stage=name, attempt=outcome.attempt, exit_code=outcome.exit_code,
                    message=_last_line(outcome), status=events.FAILED)

    def ended(self, name: str, status: str, decision: planmod.StagePlan | None, outcome: TaskOutcome | None,
              message: str | None) -> None:
        now = time.time()
        self.console.stage_done(name)
        fields: dict[str, Any] = {"status": status, "end_time": now, "message": message}
        old = "RUNNING" if outcome is not None or name in self.started_at else "PENDING"
        if status == LOADED and decision and decision.source:
            src = decision.source
            self.loaded += 1
            fields.update(cache_key=decision.key, components=decision.components, manifest=src.manifest,
                          manifest_digest=src.manifest_digest, outputs_dir=str(self.outputs_dir(name)),
                          loaded_from_run=src.run_id, loaded_from_stage=src.stage, metrics=src.metrics,
                          start_time=now, env_key=(self.prepared.environments[name].key
                                                   if self.prepared.environments[name] else None))
            self.manifests[name] = src.manifest or {}
            trust = " (trusted by --load-stages)" if decision.trusted else ""
            self.console.stage_line(name, self.console.color("loaded", LOADED) + f" from run {src.run_id[:8]}{trust}")
        elif outcome is not None:
            self.ran += 1
            metrics = latest_metrics(outcome.metrics)
            fields.update(exit_code=outcome.exit_code, metrics=metrics, params=dict(outcome.params),
                          tags=dict(outcome.tags))
            if status == FINISHED:
                self.manifests[name] = outcome.manifest or {}
                fields.update(manifest=outcome.manifest, manifest_digest=outcome.manifest_digest,
                              outputs_dir=str(self.outputs_dir(name)))
            runstore.log_metrics(self.run_id, name, outcome.metrics)
            took = outcome.end_time - self.started_at.get(name, outcome.start_time)
            if status == FINISHED:
                self.console.stage_line(name, self.console.color("finished", FINISHED) + f" in {took:.2f}s")
            else:
                self._report_failure(name, status, outcome, took)
        else:
            self.console.stage_line(name, self.console.color(status.lower(), status) + (f" ({message})" if message else ""))
        if status == LOADED:
            self._deferred.append((name, fields))
        else:
            self.flush()
            runstore.update_stage(self.run_id, name, **fields)
        self._count(old, status)
        duration = (outcome.end_time - self.started_at.get(name, outcome.start_time)) if outcome else None
        self._event(events.STAGE_ENDED, stage=name, status=_EVENT_STATUS[status],
                    attempt=outcome.attempt if outcome else None, exit_code=outcome.exit_code if outcome else None,
                    duration_s=duration, message=_last_line(outcome) if status == FAILED and outcome else message,
                    loaded_from={"run_id": decision.source.run_id, "stage": decision.source.stage}
                    if status == LOADED and decision and decision.source else None,
                    cache_key=decision.key if decision else None)

    def _report_failure(self, name: str, status: str, outcome: TaskOutcome, took: float) -> None:
        self.console.stage_line(name, self.console.color(status, status) + f" after {took:.2f}s"
                                      + (f": {outcome.message}" if outcome.message else ""))
        if status == FAILED:
            for line in outcome.last_stderr[-10:]:
                self.console.line(f"[{name}] | {line}")
            self.console.line(f"[{name}] full log: {self.stage_dir(name) / 'logs' / 'stderr.log'}")


def _last_line(outcome: TaskOutcome | None) -> str | None:
    if outcome is None:
        return None
    for line in reversed(outcome.last_stderr):
        if line.strip():
            return line.strip()[:500]
    return outcome.message


def run_tags(prepared: Prepared, options: RunOptions) -> dict[str, str]:
    project = prepared.project
    tags = {
        "mlflow.user": _user(), "mlflow.source.name": project.uri, "mlflow.source.type": "PROJECT",
        "mlflow.project.entryPoint": ",".join(prepared.targets),
        "mlflow.project.backend": "local" if options.execution.executor in ("", "local") else options.execution.executor.split(":", 1)[0],
        "mlflow.project.env": ",".join(sorted({e.kind for e in prepared.environments.values() if e})) or "local",
    }
    if project.commit:
        tags["mlflow.source.git.commit"] = project.commit
    if project.repo_url:
        tags["mlflow.source.git.repoURL"] = project.repo_url
    if project.branch:
        tags["mlflow.source.git.branch"] = project.branch
    if project.dirty is not None:
        tags["orchestra.source.git.dirty"] = str(project.dirty).lower()
    if prepared.options.load_from:
        tags["orchestra.loaded_from"] = prepared.options.load_from
    if prepared.options.load_stages:
        tags["orchestra.trusted_stages"] = ",".join(sorted(prepared.options.load_stages))
    tags.update(options.recording.tags)
    return tags


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def run_params(prepared: Prepared) -> dict[str, str]:
    """Run-level params: ``name`` when every stage agrees on its value, else ``stage.name``."""
    seen: dict[str, set[str]] = {}
    for p in prepared.params.values():
        for key, value in p.text.items():
            seen.setdefault(key, set()).add(value)
    result: dict[str, str] = {}
    for stage, p in prepared.params.items():
        for key, value in p.text.items():
            result[key if len(seen[key]) == 1 else f"{stage}.{key}"] = value
        for key, value in p.extras:
            result[key] = value
    return result
