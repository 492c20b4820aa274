"""EventDriver: the engine's :class:`orchestra.execution.engine.Driver` for one run.

It decides, builds each stage task and loads outputs; every other engine callback (a stage
started, is retried, ended) becomes one event on the run's bus, carrying what the listeners
need: the stage's record change for the recorder, the attempt's outcome for the console.
"""

from __future__ import annotations

import time
import dataclasses
import shutil
from collections.abc import Mapping, Sequence

from orchestra.app.identity import RunIdentity
from orchestra.core import events
from orchestra.core.records import LoadedFrom, StageUpdate
from orchestra.core.report import STDERR
from orchestra.core.status import EventStatus, StageStatus, stage_event
from orchestra.execution.executors.base import StageTask, TaskOutcome, latest_metrics
from orchestra.execution.task import TaskContext, build_task, upstream_inputs, write_inputs_file
from orchestra.planning import fingerprint
from orchestra.planning import plan as planmod
from orchestra.planning.prepared import Prepared
from orchestra.store import artifacts, loaded
from orchestra.store import runs as runstore
from orchestra.store.objects_lock import Hold

TYPE_CHECKING = False
if TYPE_CHECKING:  # a protocol for type checkers only: `typing` stays off a run's path
    from typing import Any, Protocol

    from orchestra.core.report import Reporter

    class StageEndpoint(Protocol):
        """The run's tracking endpoint as the driver uses it (:class:`orchestra.integrations.endpoint.Endpoint`)."""

        def open_stage(self, stage: str, *, staging: Any, outputs: Any) -> Mapping[str, str]: ...

        def close_stage(self, stage: str, *, published: bool) -> Any: ...


class EventDriver:
    """Decides, builds tasks, loads; reports the rest as events (see the module docstring).

    Args:
        prepared: the run's project and plan.
        context: what every task of the run shares (its layout among them).
        identity: the run, stamped on every event.
        bus: where the events go.
        env_providers: listeners that give each stage variables of their own.
        notes: where a failed load is reported (the console).
        endpoint: the run's MLflow tracking endpoint: each attempt's MLFLOW_* variables, and what
            its code logged there, recorded with the stage when it ends.
        hold: the objects' shared lock, taken by the first load and released by the recorder once
            the loaded stages are in the run store (``gc`` keeps what the store names).
    """

    def __init__(self, prepared: Prepared, context: TaskContext, identity: RunIdentity, bus: events.EventBus, *,
                 env_providers: Sequence[events.StageEnvProvider] = (), notes: Reporter = STDERR,
                 endpoint: StageEndpoint | None = None, hold: Hold | None = None) -> None:
        self.prepared = prepared
        self.context = context
        self.layout = context.layout
        self.identity = identity
        self.bus = bus
        self.env_providers = tuple(env_providers)
        self.notes = notes
        self.endpoint = endpoint
        self.view = planmod.LiveStoreView(prepared.project.uri)
        self.planned = {decision.name: decision for decision in prepared.plan.stages}
        # Computed once: a long chain asks for every ancestor's paths at every stage.
        self.out_strs = {name: self.layout.outputs_text(name) for name in prepared.graph.order}
        self.manifests: dict[str, Mapping[str, Any]] = {}  # finished/loaded stage → its manifest
        self.started_at: dict[str, float] = {}
        self._commands: dict[str, str] = {}
        self._inputs_path: str | None = None
        self.hold = hold if hold is not None else Hold()
        self.unlinked: dict[str, Mapping[str, Any]] = {}  # loaded stage → its manifest, tree not made yet
        self._known: dict[str, str] | None = None  # recorded stat tokens of the planned loads' objects
        self._listed: set[str] = set()  # the unlinked stages the inputs file lists

    def _inputs_file(self) -> str:
        """The run's inputs file, written the first time a stage has more ancestors than variables,
        and again when stages were loaded since without being linked: their entries carry their
        manifest, and ``orchestra.stage.input_path`` links one the first time it is read."""
        if self._inputs_path is None or not self._listed.issuperset(self.unlinked):
            graph = self.prepared.graph
            self._listed = set(self.unlinked)
            self._inputs_path = write_inputs_file(self.layout.run_dir / "inputs.json", self.out_strs, graph.parents,
                                                  unlinked=self.unlinked, objects=str(artifacts.objects_dir()))
        return self._inputs_path

    def decide(self, name: str, upstream: Mapping[str, str]) -> planmod.StagePlan:
        planned = self.planned[name]
        # The plan's decision stands when it was final and the upstream outputs are the ones it
        # assumed; otherwise (an upstream stage ran, or failed to load) decide again now.
        if planned.final and (planned.trusted or (planned.components or {}).get("upstream") == dict(upstream)):
            return planned
        return planmod.decide(self.prepared.inputs[name], upstream, self.prepared.options, self.view)

    def will_run(self, name: str, upstream: Mapping[str, str | None]) -> planmod.StagePlan | None:
        """A RUN decision that holds whatever the running upstream stages (digest None) produce,
        or None (the engine then decides the stage after they end, as usual)."""
        from orchestra.planning import ahead

        environment = self.prepared.environments[name]
        if environment is not None and environment.container is not None:
            return None  # its `docker run` mounts the inputs that exist when its task is built
        return ahead.sure_to_run(self.prepared.inputs[name], upstream, self.prepared.options)

    def task(self, name: str, attempt: int, decision: planmod.StagePlan) -> StageTask:
        prepared = self.prepared
        stage = prepared.graph.stages[name]
        inputs, more = upstream_inputs(prepared.graph, name, self.out_strs)
        if self.unlinked:  # the loaded stages it is given (the inputs file lists the others' manifests)
            self._link(name, inputs)
        provided: dict[str, str] = {}
        for provider in self.env_providers:
            provided.update(provider.stage_env(name, decision))
        if self.endpoint is not None:
            provided.update(self.endpoint.open_stage(name, staging=self.layout.staging_dir(name, attempt),
                                                     outputs=self.layout.outputs_dir(name)))
        task = build_task(self.context, stage, attempt, params=prepared.params[name],
                          environment=prepared.environments[name], env_spec=prepared.spec.env_for(stage),
                          inputs=inputs, input_manifests=self.manifests, provided_env=provided,
                          step_base=fingerprint.step_base(decision.components) if decision.key else None,
                          inputs_file=self._inputs_file() if more else None)
        self._commands[name] = task.command
        return task

    def load(self, decision: planmod.StagePlan) -> str | None:
        """Verify the objects of the outputs a stage reuses; its tree of links is made when a
        stage given it as input runs (:meth:`task`), or a reader asks (``store.loaded``)."""
        assert decision.source is not None
        self.hold.take()
        if self._known is None:  # one query for every load the plan decided
            self._known = runstore.object_stats(loaded.object_keys(
                d.source.manifest for d in self.prepared.plan.stages if d.action == planmod.LOAD and d.source))
        result = artifacts.verify(decision.source.manifest, self._known)
        if not result.ok:
            self.notes.line(f"[{decision.name}] cannot load outputs of run {decision.source.run_id[:8]}: "
                            f"{result.problem}; running it again")
            return result.problem
        self.unlinked[decision.name] = decision.source.manifest
        return None

    def _link(self, name: str, upstream: Any) -> None:
        """Make the trees of the loaded stages among ``upstream`` (before ``name`` runs)."""
        todo = [stage for stage in upstream if stage in self.unlinked]
        if not todo:
            return
        problems = loaded.link([(self.unlinked.pop(stage), self.layout.outputs_dir(stage)) for stage in todo],
                               self._known)
        for dest, problem in problems.items():
            self.notes.line(f"[{name}] cannot link the outputs of an upstream stage at {dest}: {problem}")

    def started(self, name: str, attempt: int, decision: planmod.StagePlan) -> None:
        now = time.time()
        self.started_at[name] = now
        change = StageUpdate(status=StageStatus.RUNNING, start_time=now, attempts=attempt, cache_key=decision.key,
                             components=decision.components, env_key=self._env_key(name),
                             log_dir=str(self.layout.log_dir(name)), command=self._commands.get(name))
        self.bus.publish(self.identity.event(events.STAGE_STARTED, stage=name, attempt=attempt, cache_key=decision.key,
                                             change=change, reasons=tuple(decision.reasons)))

    def retrying(self, name: str, outcome: TaskOutcome) -> None:
        self.bus.publish(self.identity.event(
            events.STAGE_RETRYING, stage=name, attempt=outcome.attempt, exit_code=outcome.exit_code,
            message=_last_line(outcome), status=EventStatus.FAILED, outcome=_report(outcome)))

    def ended(self, name: str, status: str, decision: planmod.StagePlan | None, outcome: TaskOutcome | None,
              message: str | None) -> None:
        now = time.time()
        stage_status = StageStatus(status)
        loaded = decision if decision is not None and stage_status == StageStatus.LOADED else None
        models = None
        if outcome is not None and self.endpoint is not None:
            outcome, models = self._with_endpoint(name, outcome, published=stage_status == StageStatus.FINISHED)
        source = loaded.source if loaded is not None else None
        if loaded is not None and source is not None:
            change = StageUpdate(
                status=stage_status, start_time=now, end_time=now, cache_key=loaded.key,
                # (the same key: the source's components, written back as stored)
                components=source.components if source.cache_key == loaded.key else loaded.components,
                env_key=self._env_key(name), manifest=source.manifest, manifest_digest=source.manifest_digest,
                outputs_dir=self.out_strs[name], loaded_from=LoadedFrom(source.run_id, source.stage),
                metrics=source.metrics)
            self.manifests[name] = source.manifest or {}
        elif outcome is not None:
            finished = stage_status == StageStatus.FINISHED
            change = StageUpdate(
                status=stage_status, end_time=now, message=message, exit_code=outcome.exit_code,
                metrics=latest_metrics(outcome.metrics), params=dict(outcome.params), tags=dict(outcome.tags),
                manifest=outcome.manifest if finished else None,
                manifest_digest=outcome.manifest_digest if finished else None,
                outputs_dir=self.out_strs[name] if finished else None, models=models)
            if finished:
                self.manifests[name] = outcome.manifest or {}
        else:
            change = StageUpdate(status=stage_status, end_time=now, message=message)
            if self.endpoint is not None and name in self._commands:  # submitted ahead, taken back
                self.endpoint.close_stage(name, published=False)
        # (from its submission; a stage submitted ahead may start, even end, before it is recorded as started)
        duration = (outcome.end_time - min(self.started_at.get(name, outcome.start_time), outcome.start_time)
                    if outcome else None)
        self.bus.publish(self.identity.event(
            events.STAGE_ENDED, stage=name, status=stage_event(stage_status),
            attempt=outcome.attempt if outcome else None, exit_code=outcome.exit_code if outcome else None,
            duration_s=duration, message=_last_line(outcome) if stage_status == StageStatus.FAILED and outcome else message,
            loaded_from={"run_id": source.run_id, "stage": source.stage} if source is not None else None,
            cache_key=decision.key if decision else None, change=change,
            outcome=_report(outcome) if outcome is not None else None,
            trusted=bool(source is not None and loaded is not None and loaded.trusted)))

    def _with_endpoint(self, name: str, outcome: TaskOutcome, *, published: bool
                       ) -> tuple[TaskOutcome, tuple[Mapping[str, Any], ...] | None]:
        """The outcome with what the stage logged through the endpoint added (``orchestra.stage``'s
        values win a tie), and its logged models (kept only with published outputs)."""
        data = self.endpoint.close_stage(name, published=published)  # type: ignore[union-attr]
        # Published or discarded by now; still here only when an attempt on a worker with its own
        # scratch directory (an artifact store) failed: the endpoint's files are discarded with it.
        shutil.rmtree(self.layout.staging_dir(name, outcome.attempt), ignore_errors=True)
        if not (data.metrics or data.params or data.tags or data.models):
            return outcome, None
        merged = dataclasses.replace(outcome, metrics=(*data.metrics, *outcome.metrics),
                                     params={**data.params, **outcome.params}, tags={**data.tags, **outcome.tags})
        return merged, tuple(data.models) or None

    def _env_key(self, name: str) -> str | None:
        environment = self.prepared.environments[name]
        return environment.key if environment else None


def _report(outcome: TaskOutcome) -> events.AttemptReport:
    return events.AttemptReport(status=outcome.status, message=outcome.message, last_stderr=tuple(outcome.last_stderr),
                                metrics=tuple(outcome.metrics))


def _last_line(outcome: TaskOutcome | None) -> str | None:
    if outcome is None:
        return None
    for line in reversed(outcome.last_stderr):
        if line.strip():
            return line.strip()[:500]
    return outcome.message
