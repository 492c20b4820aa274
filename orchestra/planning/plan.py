"""The planner: for each selected stage, RUN or LOAD (from which run), and why.

``plan()`` and ``decide()`` are pure: they read the store through a ``StoreView`` and never
run, fetch or write anything. The engine calls ``decide()`` again when a stage becomes ready,
because a stage below one that reruns only knows its key once the upstream outputs exist —
an upstream rerun that produced identical bytes still lets it load (early cutoff).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from orchestra.mlproject.graph import StageGraph
from orchestra.mlproject.params import StageParams
from orchestra.planning import fingerprint
from orchestra.store import runs
from orchestra.store.runs import Candidate

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Protocol

RUN = "RUN"
LOAD = "LOAD"
SKIP = "SKIP"


if TYPE_CHECKING:  # a protocol for type checkers only: `typing` stays off a run's path
    class StoreView(Protocol):
        """Read-only questions the planner asks the run store."""

        def find_by_key(self, cache_key: str) -> list[Candidate]:
            """Reusable stages with this key, best first (the planner uses the first only)."""

        def stage_of(self, run_id: str, name: str) -> Candidate | None: ...

        def latest_for_stage(self, name: str) -> Candidate | None: ...


@dataclass(frozen=True, slots=True)
class StageInputs:
    """What the planner needs to know about one stage besides its upstream outputs."""

    name: str
    command: str  # the template, not the rendered command
    params: StageParams
    env_key: str | None  # None: environment not resolved yet (dry run, cold env)
    code_digest: str
    path_inputs: Mapping[str, str]
    cache: bool = True


@dataclass(frozen=True, slots=True)
class PlanOptions:
    """What the planner is told besides the graph: caching, forced stages, where to load from."""

    no_cache: bool = False
    force: frozenset[str] = frozenset()
    load_from: str | None = None
    load_stages: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class StagePlan:
    """The decision for one stage.

    Attributes:
        action: RUN, LOAD or SKIP.
        key: the cache key, or None while an upstream stage has still to run.
        components: the key's readable components (None with ``key``).
        reasons: why (for RUN: what changed, or why caching is off; for LOAD: where from).
        source: the earlier stage to load from (LOAD only).
        trusted: loaded through ``--load-stages`` although the key differs.
        load_from_differences: when ``--load-from`` could not be used for this stage, why.
    """

    name: str
    action: str
    key: str | None = None
    components: Mapping[str, Any] | None = None
    reasons: tuple[str, ...] = ()
    source: Candidate | None = None
    trusted: bool = False
    load_from_differences: tuple[str, ...] = ()
    compared_with: str | None = None  # the earlier run whose key components ``reasons`` compare to

    @property
    def final(self) -> bool:
        """False when the decision waits for upstream outputs (the engine decides again)."""
        return self.key is not None or self.trusted


@dataclass(frozen=True, slots=True)
class Plan:
    """Decisions in topological order."""

    stages: tuple[StagePlan, ...]
    options: PlanOptions = field(default_factory=PlanOptions)

    def __getitem__(self, name: str) -> StagePlan:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)

    def to_json(self) -> list[dict[str, Any]]:
        return [{
            "stage": s.name, "action": s.action, "cache_key": s.key, "reasons": list(s.reasons),
            "load_from": {"run_id": s.source.run_id, "stage": s.source.stage} if s.source else None,
            "trusted": s.trusted, "components": s.components,
            "load_from_differences": list(s.load_from_differences),
            "compared_with": s.compared_with,
        } for s in self.stages]


def plan(graph: StageGraph, inputs: Mapping[str, StageInputs], options: PlanOptions, view: StoreView) -> Plan:
    """Decide every stage of ``graph`` (already restricted to the selected stages)."""
    manifests: dict[str, str | None] = {}
    decisions: list[StagePlan] = []
    parents, known = graph.parents, manifests.get
    for name in graph.order:
        upstream = {parent: known(parent) for parent in parents[name]}
        decision = decide(inputs[name], upstream, options, view)
        # A loaded stage's outputs are known now; a stage that runs makes its children wait.
        manifests[name] = decision.source.manifest_digest if decision.action == LOAD and decision.source else None
        decisions.append(decision)
    return Plan(stages=tuple(decisions), options=options)


def decide(stage: StageInputs, upstream: Mapping[str, str | None], options: PlanOptions, view: StoreView) -> StagePlan:
    """Decide one stage, given its upstream manifest digests (None = not produced yet)."""
    name = stage.name
    if name in options.load_stages and options.load_from:
        source = view.stage_of(options.load_from, name)
        if source is not None:
            return StagePlan(name, LOAD, key=source.cache_key, components=source.components, source=source,
                             trusted=True, reasons=(f"--load-stages: trusted outputs of run {options.load_from[:8]}",))
    pending = [parent for parent, digest in upstream.items() if digest is None]
    if len(pending) > 1:
        pending.sort()
    remote = sorted(uri for uri, digest in stage.path_inputs.items()
                    if digest == fingerprint.NOT_DOWNLOADED) if stage.path_inputs else ()
    if pending or stage.env_key is None or remote:
        why = (f"decided after {', '.join(pending)} (will run)" if pending
               else "environment not built yet" if stage.env_key is None
               else f"{', '.join(remote)} is downloaded when the run starts; the plan downloads nothing")
        return StagePlan(name, RUN, reasons=(why,))
    parts = fingerprint.components(
        entry_point=name, command=stage.command, params=stage.params.values, extras=dict(stage.params.extras),
        env_key=stage.env_key, code_digest=stage.code_digest, path_inputs=stage.path_inputs,
        upstream={k: v for k, v in upstream.items() if v is not None},
    )
    key = fingerprint.cache_key(parts)
    if options.no_cache:
        return StagePlan(name, RUN, key, parts, ("--no-cache",))
    if not stage.cache:
        return StagePlan(name, RUN, key, parts, ("cache: false",))
    if name in options.force:
        return StagePlan(name, RUN, key, parts, ("--force",))
    load_from_diff: tuple[str, ...] = ()
    if options.load_from:
        candidate = view.stage_of(options.load_from, name)
        if candidate is not None and candidate.cache_key == key:
            return StagePlan(name, LOAD, key, parts, (f"same key as run {options.load_from[:8]} (--load-from)",), candidate)
        load_from_diff = (tuple(fingerprint.differences(candidate.components, parts)) if candidate
                          else (f"run {options.load_from[:8]} has no finished '{name}' stage",))
    candidates = view.find_by_key(key)
    if candidates:
        best = candidates[0]
        return StagePlan(name, LOAD, key, parts, (f"unchanged since run {best.run_id[:8]}",), best,
                         load_from_differences=load_from_diff)
    previous = view.latest_for_stage(name)
    reasons = tuple(fingerprint.differences(previous.components, parts)) if previous else ("never ran",)
    return StagePlan(name, RUN, key, parts, reasons or ("no earlier run with this key",),
                     load_from_differences=load_from_diff, compared_with=previous.run_id if previous else None)


class LiveStoreView:
    """The StoreView backed by the SQLite run store; explanations compare within one project."""

    def __init__(self, project_uri: str | None = None) -> None:
        self.project_uri = project_uri

    # Where no store exists yet (a fresh ORCHESTRA_HOME), nothing has run: the answers are empty
    # and asking creates no store (``plan`` writes nothing; a run creates it when it records).

    def find_by_key(self, cache_key: str) -> list[Candidate]:
        # only the best is loaded: decode no other
        return runs.find_by_key(cache_key, limit=1) if runs.exists() else []

    def stage_of(self, run_id: str, name: str) -> Candidate | None:
        return runs.stage_of(run_id, name)

    def latest_for_stage(self, name: str) -> Candidate | None:
        return runs.latest_for_stage(name, self.project_uri) if runs.exists() else None


def describe(decision: StagePlan) -> str:
    """One line: ``train: RUN (param alpha 0.5 → 0.3)``."""
    if decision.action == LOAD and decision.source:
        return f"{decision.name}: LOAD from run {decision.source.run_id[:8]} ({'; '.join(decision.reasons)})"
    return f"{decision.name}: {decision.action} ({'; '.join(decision.reasons)})"


def summarize(stages: Sequence[StagePlan]) -> str:
    counts: dict[str, int] = {}
    for stage in stages:
        counts[stage.action] = counts.get(stage.action, 0) + 1
    return ", ".join(f"{n} {a.lower()}" for a, n in counts.items())
