"""The worker side of a stage submitted ahead of its parent's end, without a cluster: what it
takes from its upstream outcomes (the inputs' manifests, its step base), that it never runs its
command after an upstream attempt that did not end OK, and that an attempt Dask runs a second
time (its worker was lost after it published) does not run its command again."""

from __future__ import annotations

from pathlib import Path

from orchestra.core.status import AttemptStatus
from orchestra.execution.executors.base import StageTask, TaskOutcome
from orchestra.execution.executors.worker import RemoteTask, after_upstream, execute_remote
from orchestra.execution.process import ProcessRegistry
from orchestra.planning import fingerprint


def task(tmp_path: Path, command: str = "true") -> StageTask:
    stage = tmp_path / "stages" / "b"
    return StageTask(run_id="r", stage="b", attempt=1, command=command, cwd=str(tmp_path), env={},
                     log_dir=str(stage / "logs"), staging_dir=str(stage / "staging"), outputs_dir=str(stage / "out"),
                     metrics_file=str(stage / "m.jsonl"), overlay_env={"ORCHESTRA_STAGE": "b"},
                     input_dirs={"a": str(tmp_path / "stages" / "a" / "out")}, input_manifests={"a": {}})


def outcome(status: AttemptStatus, manifest=None) -> TaskOutcome:
    return TaskOutcome(stage="a", attempt=1, status=status, exit_code=0, start_time=1.0, end_time=2.0,
                       manifest=manifest, manifest_digest="sha256:a-out" if manifest is not None else None)


def test_the_upstream_outcome_gives_the_inputs_manifest_and_the_step_base(tmp_path):
    parts = {"entry_point": "b", "code": "sha256:c", "env": "local", "upstream": {"a": None}}
    remote = RemoteTask(task=task(tmp_path), key="k", after=("a",), step_parts=parts)
    manifest = {"a.txt": {"sha256": "0" * 64, "size": 1, "mode": 0o644}}
    ready = after_upstream(remote, (outcome(AttemptStatus.OK, manifest),))
    assert isinstance(ready, RemoteTask) and ready.after == ()
    assert ready.task.input_manifests == {"a": manifest}
    expected = fingerprint.step_base({**parts, "upstream": {"a": "sha256:a-out"}})
    assert ready.task.overlay_env["ORCHESTRA_STEP_BASE"] == expected


def test_an_upstream_attempt_that_did_not_end_ok_means_the_command_never_runs(tmp_path):
    ran = tmp_path / "ran"
    remote = RemoteTask(task=task(tmp_path, f"touch {ran}"), key="k", after=("a",))
    for status in (AttemptStatus.FAILED, AttemptStatus.KILLED, AttemptStatus.TIMEOUT):
        result = after_upstream(remote, (outcome(status),))
        assert isinstance(result, TaskOutcome) and result.status == AttemptStatus.FAILED
        assert f"upstream a {status}" in (result.message or "")
    assert "left to the driver" in (after_upstream(remote, (outcome(AttemptStatus.OK),)).message or "")
    # OK without a manifest (outputs the driver would publish): never taken as inputs either.
    assert isinstance(after_upstream(remote, (outcome(AttemptStatus.OK),)), TaskOutcome)
    assert not ran.exists()


def test_an_attempt_that_published_already_does_not_run_again(tmp_path):
    ran = tmp_path / "ran"
    t = task(tmp_path, f"touch {ran}")
    Path(t.outputs_dir).mkdir(parents=True)
    from orchestra.core import settings

    result = execute_remote(RemoteTask(task=t, key="k", publish_here=True, home=str(settings.home())),
                            ProcessRegistry(None))
    assert result.status == AttemptStatus.FAILED and "ran already" in (result.message or "")
    assert not ran.exists()


def test_a_worker_with_another_home_leaves_publishing_to_the_driver(tmp_path):
    t = task(tmp_path, f"echo x > {tmp_path}/stages/b/staging/o.txt")
    result = execute_remote(RemoteTask(task=t, key="k", publish_here=True, home=str(tmp_path / "driver-home")),
                            ProcessRegistry(None))
    assert result.status == AttemptStatus.OK and result.manifest is None
    assert (Path(t.staging_dir) / "o.txt").read_text() == "x\n" and not Path(t.outputs_dir).exists()
