"""The planner is pure: decisions and reasons from a store view, no processes, no disk."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from orchestra.planning import fingerprint
from orchestra.mlproject.graph import build
from orchestra.planning.plan import LOAD, RUN, PlanOptions, StageInputs, decide, plan
from orchestra.mlproject.model import ParamSpec, ProjectSpec, StageSpec
from orchestra.mlproject.params import StageParams
from orchestra.store.runs import Candidate


class MemoryView:
    """A StoreView over a list of candidates (the planner's only input from the store)."""

    def __init__(self, candidates=()):
        self.candidates = list(candidates)

    def find_by_key(self, key):
        return [c for c in self.candidates if c.cache_key == key]

    def stage_of(self, run_id, name):
        return next((c for c in self.candidates if c.run_id == run_id and c.stage == name), None)

    def latest_for_stage(self, name):
        matches = [c for c in self.candidates if c.stage == name]
        return matches[-1] if matches else None


def spec() -> ProjectSpec:
    stages = {
        "prep": StageSpec("prep", "prep {n}", (ParamSpec("n", "int", 1),)),
        "train": StageSpec("train", "train {alpha} {inputs.prep}", (ParamSpec("alpha", "float", 0.5),), ("prep",)),
    }
    return ProjectSpec(root=Path("/p"), spec_file=None, name="t", entry_points=stages)


def inputs(n=1, alpha=0.5, env="local:py", code="sha256:c"):
    return {
        "prep": StageInputs("prep", "prep {n}", StageParams(values={"n": n}), env, code, {}),
        "train": StageInputs("train", "train {alpha} {inputs.prep}", StageParams(values={"alpha": alpha}), env, code, {}),
    }


def candidate(run_id, stage, parts, digest="sha256:m-" + "x"):
    return Candidate(run_id=run_id, stage=stage, cache_key=fingerprint.cache_key(parts), components=parts,
                     manifest={}, manifest_digest=digest, outputs_dir="/o", metrics={}, end_time=1.0)


def parts_of(stage_inputs, upstream=None):
    p = stage_inputs.params
    return fingerprint.components(entry_point=stage_inputs.name, command=stage_inputs.command, params=p.values,
                                  extras={}, env_key=stage_inputs.env_key, code_digest=stage_inputs.code_digest,
                                  path_inputs={}, upstream=upstream or {})


def test_nothing_stored_runs_everything_and_children_wait_for_parents():
    result = plan(build(spec()), inputs(), PlanOptions(), MemoryView())
    assert [s.action for s in result.stages] == [RUN, RUN]
    assert result["prep"].reasons == ("never ran",)
    assert result["train"].key is None and "decided after prep" in result["train"].reasons[0]


def test_matching_keys_load_and_chain_through_manifests():
    ins = inputs()
    prep = candidate("r1", "prep", parts_of(ins["prep"]), digest="sha256:prep-out")
    train = candidate("r1", "train", parts_of(ins["train"], {"prep": "sha256:prep-out"}))
    result = plan(build(spec()), ins, PlanOptions(), MemoryView([prep, train]))
    assert [s.action for s in result.stages] == [LOAD, LOAD]
    assert result["train"].source.run_id == "r1"


def test_changed_param_explains_itself():
    old = inputs()
    prep = candidate("r1", "prep", parts_of(old["prep"]))
    new = inputs(n=2)
    decision = decide(new["prep"], {}, PlanOptions(), MemoryView([prep]))
    assert decision.action == RUN and decision.reasons == ("param n 1 → 2",)


def test_env_and_code_changes_are_named():
    prep = candidate("r1", "prep", parts_of(inputs()["prep"]))
    decision = decide(inputs(env="conda:abc", code="sha256:d")["prep"], {}, PlanOptions(), MemoryView([prep]))
    assert any(r.startswith("environment changed") for r in decision.reasons)
    assert "project code changed" in decision.reasons


def test_early_cutoff_same_upstream_bytes_load():
    ins = inputs()
    train = candidate("r1", "train", parts_of(ins["train"], {"prep": "sha256:same"}))
    decision = decide(ins["train"], {"prep": "sha256:same"}, PlanOptions(), MemoryView([train]))
    assert decision.action == LOAD
    decision = decide(ins["train"], {"prep": "sha256:other"}, PlanOptions(), MemoryView([train]))
    assert decision.action == RUN and decision.reasons == ("upstream prep outputs changed",)


def test_no_cache_force_and_cache_false_run_with_reason():
    ins = inputs()
    view = MemoryView([candidate("r1", "prep", parts_of(ins["prep"]))])
    assert decide(ins["prep"], {}, PlanOptions(no_cache=True), view).reasons == ("--no-cache",)
    assert decide(ins["prep"], {}, PlanOptions(force=frozenset({"prep"})), view).reasons == ("--force",)
    assert decide(replace(ins["prep"], cache=False), {}, PlanOptions(), view).reasons == ("cache: false",)


def test_load_from_prefers_that_run_and_reports_differences():
    ins = inputs()
    r1 = candidate("r1" * 16, "prep", parts_of(ins["prep"]))
    r2 = candidate("r2" * 16, "prep", parts_of(inputs(n=7)["prep"]))
    options = PlanOptions(load_from="r2" * 16)
    decision = decide(ins["prep"], {}, options, MemoryView([r1, r2]))
    # r2 cannot be used (n differs) but r1 matches: load it, and say why r2 was not used.
    assert decision.action == LOAD and decision.source.run_id == "r1" * 16
    assert decision.load_from_differences == ("param n 7 → 1",)


def test_load_stages_trusts_a_differing_run():
    ins = inputs()
    r2 = candidate("r2", "prep", parts_of(inputs(n=7)["prep"]))
    decision = decide(ins["prep"], {}, PlanOptions(load_from="r2", load_stages=frozenset({"prep"})), MemoryView([r2]))
    assert decision.action == LOAD and decision.trusted and decision.source is r2


def test_key_is_versioned_and_stable():
    parts = parts_of(inputs()["prep"])
    assert fingerprint.cache_key(parts) == fingerprint.cache_key(dict(reversed(list(parts.items()))))
    bumped = {**parts, "version": parts["version"] + 1}
    assert fingerprint.cache_key(bumped) != fingerprint.cache_key(parts)
    assert fingerprint.differences(parts, bumped)[0].startswith("cache key format changed")


def test_planning_is_pure(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    plan(build(spec()), inputs(), PlanOptions(), MemoryView())
    assert sorted(tmp_path.rglob("*")) == before
