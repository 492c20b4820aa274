"""What one attempt reports: AttemptStatus members from real processes, Metric records read
from the tracking file stage code writes, and an outcome that survives pickling (Dask)."""

from __future__ import annotations

import json
import pickle

from orchestra.core.records import Metric
from orchestra.core.status import AttemptStatus
from orchestra.execution import process
from orchestra.execution.executors.base import TaskOutcome, latest_metrics, read_tracking_file


def run(tmp_path, command: str, timeout: float | None = None) -> process.ProcessResult:
    return process.run(command, cwd=tmp_path, env={"PATH": "/usr/bin:/bin"}, stdout_path=tmp_path / "out.log",
                       stderr_path=tmp_path / "err.log", timeout=timeout, registry=process.ProcessRegistry())


def test_process_statuses_are_attempt_statuses(tmp_path):
    ok, failed, late = run(tmp_path, "true"), run(tmp_path, "echo oops >&2; exit 3"), run(tmp_path, "sleep 30", 0.2)
    assert (ok.status, ok.exit_code) == (AttemptStatus.OK, 0)
    assert (failed.status, failed.exit_code, failed.last_stderr) == (AttemptStatus.FAILED, 3, ("oops",))
    assert late.status == AttemptStatus.TIMEOUT
    assert all(isinstance(r.status, AttemptStatus) for r in (ok, failed, late))
    assert (ok.status, failed.status, late.status) == ("ok", "failed", "timeout")  # the same text as before


def test_a_cancelled_registry_reports_killed(tmp_path):
    registry = process.ProcessRegistry()
    registry.cancelled.set()
    result = process.run("true", cwd=tmp_path, env={}, stdout_path=tmp_path / "o", stderr_path=tmp_path / "e",
                         timeout=None, registry=registry)
    assert result.status == AttemptStatus.KILLED and result.exit_code is None


def test_the_tracking_file_gives_metric_records(tmp_path):
    path = tmp_path / "tracking.jsonl"
    lines = [
        {"type": "metric", "key": "loss", "value": 0.5, "step": 0, "timestamp": 10.0},
        {"key": "loss", "value": "0.25", "step": 1, "timestamp": 11.0},  # type defaults to metric
        {"type": "param", "key": "alpha", "value": 0.1},
        {"type": "tag", "key": "phase", "value": "fit"},
        {"type": "metric", "key": "acc"},  # no value: skipped
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\nnot json\n")
    metrics, params, tags = read_tracking_file(path)
    assert metrics == (Metric("loss", 0.5, 0, 10.0), Metric("loss", 0.25, 1, 11.0))
    assert params == {"alpha": "0.1"} and tags == {"phase": "fit"}
    assert read_tracking_file(tmp_path / "absent") == ((), {}, {})


def test_latest_metrics_takes_the_highest_step_then_the_latest_time():
    metrics = [Metric("loss", 0.9, 2, 5.0), Metric("loss", 0.1, 1, 9.0),  # a later time, an earlier step
               Metric("acc", 0.5, 0, 3.0), Metric("acc", 0.6, 0, 4.0),
               Metric("f1", 0.7, 0, 1.0), Metric("f1", 0.8, 0, 1.0)]  # full tie: the later logged
    assert latest_metrics(metrics) == {"loss": 0.9, "acc": 0.6, "f1": 0.8}
    assert latest_metrics(()) == {}


def test_an_outcome_survives_pickling():
    outcome = TaskOutcome(stage="s", attempt=2, status=AttemptStatus.FAILED, exit_code=1, start_time=1.0,
                          end_time=2.0, metrics=(Metric("loss", 0.5, 1, 3.0),))
    back = pickle.loads(pickle.dumps(outcome))
    assert back == outcome and back.status is AttemptStatus.FAILED and isinstance(back.metrics[0], Metric)
