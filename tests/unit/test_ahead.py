"""Whether a stage is sure to run whatever its running parent produces (then the Dask executor
may submit it ahead of that parent's end): asked of a real run store in a fresh home."""

from __future__ import annotations

from orchestra.core.records import StageUpdate
from orchestra.core.status import StageStatus
from orchestra.mlproject.params import StageParams
from orchestra.planning import fingerprint
from orchestra.planning.ahead import sure_to_run
from orchestra.planning.plan import RUN, PlanOptions, StageInputs
from orchestra.store import runs


def stage(code: str = "sha256:c", cache: bool = True) -> StageInputs:
    return StageInputs("train", "train {inputs.prep}", StageParams(values={"alpha": 0.5}), "local:py", code, {},
                       cache=cache)


def store_finished(inputs: StageInputs, upstream_digest: str, status: StageStatus = StageStatus.FINISHED) -> None:
    parts = fingerprint.components(entry_point=inputs.name, command=inputs.command, params=inputs.params.values,
                                   extras={}, env_key=inputs.env_key, code_digest=inputs.code_digest,
                                   path_inputs={}, upstream={"prep": upstream_digest})
    run_id = runs.new_run_id()
    runs.create_run(run_id, experiment="e", project_uri="/p", targets=[], params={}, tags={}, stages=["train"])
    runs.update_stage(run_id, "train", StageUpdate(status=status, cache_key=fingerprint.cache_key(parts),
                                                   components=parts, manifest={}, manifest_digest="sha256:m"))


def test_a_stage_never_stored_is_sure_to_run_and_its_running_parent_stays_unknown():
    decision = sure_to_run(stage(), {"prep": None}, PlanOptions())
    assert decision is not None and decision.action == RUN and decision.key is None
    assert decision.components["upstream"] == {"prep": None}
    assert decision.components["code"] == "sha256:c"


def test_the_same_stage_stored_with_other_upstream_outputs_might_load():
    store_finished(stage(), "sha256:earlier-prep")
    # prep may produce the same bytes again (early cutoff): decided after it ends.
    assert sure_to_run(stage(), {"prep": None}, PlanOptions()) is None


def test_other_code_a_failed_record_or_caching_off_is_sure_to_run():
    store_finished(stage(code="sha256:old"), "sha256:p")
    store_finished(stage(), "sha256:p", status=StageStatus.FAILED)
    assert sure_to_run(stage(), {"prep": None}, PlanOptions()) is not None
    store_finished(stage(), "sha256:p")
    assert sure_to_run(stage(), {"prep": None}, PlanOptions()) is None
    assert sure_to_run(stage(), {"prep": None}, PlanOptions(no_cache=True)).reasons == ("--no-cache",)
    assert sure_to_run(stage(), {"prep": None}, PlanOptions(force=frozenset({"train"}))).reasons == ("--force",)
    assert sure_to_run(stage(cache=False), {"prep": None}, PlanOptions()).reasons == ("cache: false",)


def test_load_from_or_an_environment_not_built_is_never_guessed():
    assert sure_to_run(stage(), {"prep": None}, PlanOptions(load_from="0" * 32)) is None
    unbuilt = StageInputs("train", "t", StageParams(values={}), None, "sha256:c", {})
    assert sure_to_run(unbuilt, {"prep": None}, PlanOptions()) is None


def test_many_records_of_other_code_do_not_hide_the_answer_but_many_alike_do():
    for _ in range(70):
        store_finished(stage(code="sha256:old"), "sha256:p")
    assert sure_to_run(stage(), {"prep": None}, PlanOptions()) is not None
    other_params = StageInputs("train", "train {inputs.prep}", StageParams(values={"alpha": 0.9}), "local:py",
                               "sha256:c", {})
    for _ in range(65):
        store_finished(other_params, "sha256:p")
    assert sure_to_run(stage(), {"prep": None}, PlanOptions()) is None  # too many to compare: decided later
