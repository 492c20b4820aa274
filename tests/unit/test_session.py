"""The run session end to end in this process: a real project, the local executor, the run store.

What the recorder wrote (read back from the store), what the console reporter printed (a Console
on a StringIO), and what an extra listener on the bus saw, in order.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from orchestra.app import session
from orchestra.app.console import Console
from orchestra.core import events
from orchestra.core.options import CacheOptions, ExecutionOptions, RunOptions, Selection
from orchestra.core.records import LoadedFrom, RunRecord, RunResult
from orchestra.core.status import RunStatus, StageStatus
from orchestra.store import runs as runstore
from tests.conftest import write_project

PIPELINE = """\
name: tiny
entry_points:
  a:
    parameters:
      n: {type: float, default: 1}
    command: "sh a.sh {n}"
  b:
    depends_on: [a]
    command: "cat {inputs.a}/a.txt > {outputs}/b.txt && echo b says hi"
  c:
    depends_on: [b]
    parameters:
      code: {type: float, default: 0}
    command: "sh c.sh {code}"
"""
FILES = {
    # Stage code reports metrics as ORCHESTRA_METRICS_FILE lines (what orchestra.stage writes).
    "a.sh": """\
        echo "a=$1" > "$ORCHESTRA_OUTPUT_DIR/a.txt"
        echo '{"key": "loss", "value": 0.5, "step": 0, "timestamp": 1.0}' >> "$ORCHESTRA_METRICS_FILE"
        echo '{"key": "loss", "value": 0.25, "step": 1, "timestamp": 2.0}' >> "$ORCHESTRA_METRICS_FILE"
        echo '{"type": "param", "key": "seen", "value": "yes"}' >> "$ORCHESTRA_METRICS_FILE"
    """,
    "c.sh": """\
        echo done > "$ORCHESTRA_OUTPUT_DIR/c.txt"
        if [ "$1" != "0" ]; then echo "c broke" >&2; exit 3; fi
    """,
}
# The keys of `orchestra runs show --json` as it printed them before records were typed.
RUN_KEYS = ["run_id", "experiment", "status", "start_time", "end_time", "project_uri", "targets", "params", "metrics",
            "tags", "message", "stages"]
STAGE_KEYS = ["name", "status", "exit_code", "start_time", "end_time", "attempts", "metrics", "params", "tags",
              "log_paths", "outputs_dir", "cache_key", "components", "env_key", "command", "manifest",
              "loaded_from", "message", "artifacts", "models"]


class Watcher:
    """A listener after the recorder: what it sees, and the stage's stored status at that moment."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None, str | None]] = []

    def handle(self, event: events.Event) -> None:
        stored = None
        if event.stage is not None:
            stored = str(runstore.get_run(event.run_id).stage(event.stage).status)
        self.seen.append((event.name, event.stage, stored))

    def close(self, drain_s: float) -> None:
        pass


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write_project(tmp_path / "tiny", PIPELINE, FILES)


def _run(project: Path, *params: str, force: tuple[str, ...] = ()) -> tuple[RunResult, Watcher, str]:
    stream = io.StringIO()
    watcher = Watcher()
    options = RunOptions(selection=Selection(params=params), cache=CacheOptions(force=force),
                         execution=ExecutionOptions(jobs=1))
    result = session.run(str(project), options, console=Console(stream), listeners=[watcher])
    return result, watcher, stream.getvalue()


def test_a_cold_run_is_recorded_reported_and_published_in_order(project: Path) -> None:
    result, watcher, console = _run(project)
    assert (result.status, result.exit_code) == (RunStatus.FINISHED, 0)
    record = runstore.get_run(result.run_id)
    assert result.record == record
    assert [(s.name, s.status) for s in record.stages] == [("a", "FINISHED"), ("b", "FINISHED"), ("c", "FINISHED")]
    a = record.stage("a")
    assert a.cache_key and a.cache_key.startswith("sha256:") and a.attempts == 1 and a.exit_code == 0
    assert a.metrics == {"loss": 0.25} and a.params == {"seen": "yes"}  # the latest value of each metric
    assert set(a.manifest) == {"a.txt"} and a.manifest["a.txt"]["size"] == len("a=1\n")
    assert (Path(a.outputs_dir) / "a.txt").read_text() == "a=1\n"
    assert a.command == "sh a.sh 1" and a.log_paths["stderr"].endswith("/a/logs/stderr.log")
    history = runstore.db().execute("SELECT key, value, step, timestamp FROM metrics WHERE run_id = ? AND stage = 'a'"
                                    " ORDER BY rowid", (result.run_id,)).fetchall()
    assert [tuple(row) for row in history] == [("loss", 0.5, 0, 1.0), ("loss", 0.25, 1, 2.0)]
    assert record.params == {"n": "1", "code": "0"} and record.tags["mlflow.project.entryPoint"] == "a,b,c"

    # The recorder is first on the bus: every listener after it finds the stage's row written.
    assert watcher.seen == [
        ("run_started", None, None),
        ("stage_started", "a", "RUNNING"), ("stage_ended", "a", "FINISHED"),
        ("stage_started", "b", "RUNNING"), ("stage_ended", "b", "FINISHED"),
        ("stage_started", "c", "RUNNING"), ("stage_ended", "c", "FINISHED"),
        ("run_ended", None, None),
    ]

    lines = console.splitlines()
    run_id = result.run_id
    assert lines[0] == f"orchestra: run {run_id} · 3 stage(s) (3 run) · {project}"
    assert lines[1] == "[a] started (never ran)"
    assert re.fullmatch(r"\[a\] finished in \d+\.\d\ds", lines[2])
    assert "[b] b says hi" in lines  # stage output, prefixed
    assert re.fullmatch(rf"orchestra: run {run_id} FINISHED in \d+\.\d\ds \(3 ran, 0 loaded\)", lines[-1])


def test_a_failed_stage_is_reported_with_its_stderr_log_and_the_resume_command(project: Path) -> None:
    result, watcher, console = _run(project, "c.code=3")
    assert (result.status, result.exit_code) == (RunStatus.FAILED, 1)
    c = result.record.stage("c")
    assert (c.status, c.exit_code, c.message) == (StageStatus.FAILED, 3, "exited with code 3")
    assert c.manifest is None and c.outputs_dir is None  # outputs of a failed stage are discarded
    assert watcher.seen[-2:] == [("stage_ended", "c", "FAILED"), ("run_ended", None, None)]
    table = [line.split()[:2] for line in console.splitlines() if line.startswith("  ")]
    assert table == [["stage", "status"], ["a", "ran"], ["b", "ran"], ["c", "failed"]]  # the summary table
    lines = [line for line in console.splitlines() if not line.startswith("  ")]
    log = result.record.stage("c").log_paths["stderr"]
    assert re.fullmatch(r"\[c\] FAILED after \d+\.\d\ds: exited with code 3", lines[-5])
    assert lines[-4:-2] == ["[c] | c broke", f"[c] full log: {log}"]
    assert re.fullmatch(rf"orchestra: run {result.run_id} FAILED in \d+\.\d\ds \(3 ran, 0 loaded\)", lines[-2])
    assert lines[-1] == f"orchestra: to resume: orchestra run {project} -P c.code=3 --load-from {result.run_id}"


def test_loaded_stages_are_written_in_one_batch_before_the_next_write(project: Path) -> None:
    first, _, _ = _run(project)
    conn = runstore.db()
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    try:
        second, watcher, console = _run(project, force=("c",))
    finally:
        conn.set_trace_callback(None)
    record = second.record
    assert [(s.name, s.status) for s in record.stages] == [("a", "LOADED"), ("b", "LOADED"), ("c", "FINISHED")]
    assert record.stage("a").loaded_from == LoadedFrom(first.run_id, "a")
    assert record.stage("a").metrics == {"loss": 0.25} and record.stage("a").manifest == first.record.stage("a").manifest
    # Deferred: a listener after the recorder still finds a and b PENDING when they end; the
    # batch is written before c's RUNNING row, in one transaction.
    assert watcher.seen[1:3] == [("stage_ended", "a", "PENDING"), ("stage_ended", "b", "PENDING")]
    assert watcher.seen[3] == ("stage_started", "c", "RUNNING")
    writes = [s for s in statements if s.startswith(("BEGIN", "COMMIT", "UPDATE stages"))]
    loads = [i for i, s in enumerate(writes) if s.startswith("UPDATE stages") and "loaded_from_run" in s]
    assert len(loads) == 2
    assert writes[loads[0] - 1] == "BEGIN IMMEDIATE" and writes[loads[1] + 1] == "COMMIT"
    assert loads[1] == loads[0] + 1
    assert re.search(r"\[a\] loaded from run [0-9a-f]{8}\n", console)
    assert re.search(r"\(1 ran, 2 loaded\)\n$", console)


def test_record_to_json_keeps_the_runs_show_json_shape(project: Path, cli) -> None:
    first, _, _ = _run(project)
    second, _, _ = _run(project)
    record = runstore.get_run(second.run_id)
    assert isinstance(record, RunRecord)
    doc = record.to_json()
    assert list(doc) == RUN_KEYS
    assert all(list(stage) == STAGE_KEYS for stage in doc["stages"])
    assert doc["status"] == "FINISHED" and type(doc["status"]) is str
    assert doc["targets"] == ["a", "b", "c"] and doc["params"] == {"code": "0", "n": "1"}
    a = doc["stages"][0]
    assert a["status"] == "LOADED" and a["loaded_from"] == {"run_id": first.run_id, "stage": "a"}
    assert a["log_paths"] == {} and a["exit_code"] is None and a["attempts"] == 0
    assert a["metrics"] == {"loss": 0.25} and set(a["manifest"]["a.txt"]) >= {"sha256", "size", "mode"}
    assert doc["metrics"]["a.loss"] == 0.25  # pipeline metrics: loaded stages included
    ran = runstore.get_run(first.run_id).to_json()["stages"][0]
    assert set(ran["log_paths"]) == {"stdout", "stderr"} and ran["loaded_from"] is None
    # What the CLI prints is this document.
    shown = cli("runs", "show", second.run_id, "--json")
    assert shown.code == 0 and json.loads(shown.out) == json.loads(json.dumps(doc))
    listed = cli("runs", "list", "--json")
    assert [r["run_id"] for r in json.loads(listed.out)] == [second.run_id, first.run_id]


def test_the_bus_calls_essential_listeners_first_and_lets_their_errors_through() -> None:
    calls: list[str] = []

    class Named:
        def __init__(self, name: str, fail: bool = False) -> None:
            self.name, self.fail = name, fail

        def handle(self, event: events.Event) -> None:
            calls.append(self.name)
            if self.fail:
                raise RuntimeError(self.name)

        def close(self, drain_s: float) -> None:
            pass

    bus = events.EventBus([Named("hook", fail=True), Named("mirror")], essential=[Named("recorder"), Named("console")])
    bus.publish(events.Event(events.RUN_STARTED, "r", "e"))  # a failing ordinary listener is only logged
    assert calls == ["recorder", "console", "hook", "mirror"]
    calls.clear()
    bus = events.EventBus([Named("hook")], essential=[Named("recorder", fail=True), Named("console")])
    with pytest.raises(RuntimeError, match="recorder"):  # a run whose record cannot be written stops
        bus.publish(events.Event(events.RUN_STARTED, "r", "e"))
    assert calls == ["recorder"]


def test_runs_show_list_and_diff_render_the_typed_records(project: Path, cli) -> None:
    first, _, _ = _run(project)
    second, _, _ = _run(project)
    shown = cli("runs", "show", second.run_id[:8])
    assert shown.code == 0, shown.err
    assert shown.out.startswith(f"run {second.run_id}  FINISHED  experiment=Default\n")
    assert f"  stage a: LOADED from {first.run_id[:8]}/a  exit=None  attempts=0  took 0.0s\n" in shown.out
    assert "    metrics: loss=0.25\n" in shown.out and "  params: code=0, n=1\n" in shown.out
    diff = cli("runs", "diff", first.run_id, second.run_id)
    assert diff.code == 0, diff.err
    assert f"stage a:\n          {first.run_id[:8]}: FINISHED\n          {second.run_id[:8]}: LOADED  (loaded from run " \
        f"{first.run_id[:8]}, key same)\n" in diff.out and "metric a.loss" in diff.out
    listing = cli("runs", "list", "--status", "finished").out.splitlines()
    assert listing[0].split() == ["run_id", "name", "experiment", "status", "start", "duration", "stages", "loaded",
                                  "project"]
    assert listing[1].split()[:4] == [second.run_id[:12], "-", "Default", "FINISHED"]
    assert listing[1].split()[-2:] == ["3", str(project)]
