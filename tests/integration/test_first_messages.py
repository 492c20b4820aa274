"""Messages a newcomer meets first: each says what to do next (real CLI subprocesses)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import jsonschema
import pytest

from orchestra import __version__
from tests.conftest import REPO_ROOT
from tests.hooks_receiver import Receiver, Reply
from tests.integration.test_terminal import _run_in_pty
from tests.mlflow_server import mlflow_server  # noqa: F401 - the session's real server (a fixture)

EVENT_SCHEMA = json.loads((REPO_ROOT / "schemas" / "webhook-event.schema.json").read_text())

pytestmark = pytest.mark.integration

TRAIN_ONLY = """
name: p
entry_points:
  train:
    command: "echo trained"
"""


def test_missing_main_names_the_entry_point_to_pass(cli, make_project):
    root = make_project(TRAIN_ONLY)
    result = cli("run", str(root))
    assert result.code == 2
    assert "unknown entry point 'main'" in result.err and "-e train" in result.err
    assert len(result.err.strip().splitlines()) == 1 and "Traceback" not in result.err


def test_the_mlproject_file_as_uri_runs_its_directory(cli, make_project):
    root = make_project(TRAIN_ONLY)
    result = cli("run", str(root / "MLproject"), "-e", "train", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["project_uri"] == str(root.resolve())


def test_misspelt_key_warns_with_a_suggestion(cli, make_project):
    root = make_project("""
    entry_points:
      main:
        paramters:
          a: {type: float, default: 1}
        command: "echo hi"
    entry_point: {}
    """)
    result = cli("validate", str(root))
    assert result.code == 0, result.err
    assert "unknown key 'paramters' ignored (did you mean 'parameters'?)" in result.err
    assert "unknown key 'entry_point' ignored (did you mean 'entry_points'?)" in result.err


def test_bad_load_from_says_short_prefixes_work(cli, make_project):
    root = make_project(TRAIN_ONLY)
    result = cli("run", str(root), "-e", "train", "--load-from", "nope")
    assert result.code == 2
    assert "invalid run id 'nope'" in result.err and "prefix" in result.err and "8" in result.err


@pytest.mark.parametrize("argv, usage", [
    (("runs", "show", "a" * 8, "--bogus"), "(usage: orchestra runs show [-h] "),
    (("logs", "abcdef12", "--bogus"), "(usage: orchestra logs [-h] "),
    (("run", ".", "--frob"), "(see 'orchestra run --help')"),  # a long usage is left to --help
])
def test_a_wrong_flag_shows_the_subcommands_usage(cli, argv, usage):
    result = cli(*argv)
    assert result.code == 2
    assert result.err.startswith("orchestra: error: unrecognized arguments: "), result.err
    assert usage in result.err and len(result.err.strip().splitlines()) == 1


@pytest.mark.parametrize("flag", ["-V", "--version"])
def test_version_flags(cli, flag):
    result = cli(flag)
    assert result.code == 0 and result.out.strip() == f"orchestra {__version__}"


def test_load_from_tags_every_run_it_loaded_from(cli, make_project):
    root = make_project("""
    entry_points:
      a: {command: "echo a"}
      b: {command: "echo b", depends_on: [a]}
    """)
    only_a = json.loads(cli("run", str(root), "-e", "a", "--json").out)
    full = json.loads(cli("run", str(root), "-e", "b", "--json").out)
    stages = {s["name"]: s for s in full["stages"]}
    assert stages["a"]["status"] == "LOADED" and stages["b"]["status"] == "FINISHED"
    # only_a has no b: b falls back to the run that has it.
    result = cli("run", str(root), "-e", "b", "--load-from", only_a["run_id"][:8], "--json")
    assert result.code == 0, result.err
    record = json.loads(result.out)
    loaded = {s["name"]: s["loaded_from"]["run_id"] for s in record["stages"]}
    assert loaded == {"a": only_a["run_id"], "b": full["run_id"]}
    assert record["tags"]["orchestra.loaded_from"] == f"{only_a['run_id']},{full['run_id']}"
    shown = json.loads(cli("runs", "show", record["run_id"], "--json").out)
    assert shown["tags"]["orchestra.loaded_from"] == f"{only_a['run_id']},{full['run_id']}"


def test_closing_line_says_how_long_it_waited_for_webhooks(cli, make_project):
    """A receiver that answers run_ended after a second: the run's own time stays short, the wait is said."""
    root = make_project(TRAIN_ONLY)
    slow_end = lambda request, index: Reply(delay_s=1.0 if request.json["event"] == "run_ended" else 0.0)  # noqa: E731
    with Receiver(slow_end) as receiver:
        result = cli("run", str(root), "-e", "train", "--hooks", receiver.url)
    assert result.code == 0, result.err
    line = result.err.strip().splitlines()[-1]
    match = re.search(r"FINISHED in ([\d.]+)s \(\+([\d.]+)s waiting for webhook deliveries\) \(1 ran, 0 loaded\)", line)
    assert match, line
    assert float(match.group(2)) >= 0.9


def test_hooks_url_receives_every_event_and_run_ended_has_metrics_and_report(cli, make_project):
    root = make_project("""
    entry_points:
      prep: {command: "python prep.py"}
      train: {command: "python prep.py", depends_on: [prep]}
    """, files={"prep.py": """
        import json, os
        with open(os.environ["ORCHESTRA_METRICS_FILE"], "a") as f:
            f.write(json.dumps({"type": "metric", "key": "rows", "value": 7, "step": 0}) + "\\n")
    """})
    with Receiver() as receiver:
        result = cli("run", str(root), "-e", "train", "--hooks", receiver.url, "--json")
        assert result.code == 0, result.err
        bodies = [r.json for r in receiver.wait_for(6)]
    validator = jsonschema.Draft202012Validator(EVENT_SCHEMA)
    for body in bodies:
        validator.validate(body)
    assert [b["event"] for b in bodies] == ["run_started", "stage_started", "stage_ended", "stage_started",
                                            "stage_ended", "run_ended"]
    run_id = json.loads(result.out)["run_id"]
    payload = bodies[-1]["payload"]
    assert payload["metrics"] == {"prep.rows": 7.0, "train.rows": 7.0}
    assert payload["report"]["command"].startswith(f"orchestra report {run_id} -o ")
    written = cli("report", run_id, "-o", payload["report"]["path"])
    assert written.code == 0, written.err
    assert "<html" in Path(payload["report"]["path"]).read_text().lower()


def test_hooks_config_reads_a_configuration(cli, make_project, tmp_path):
    root = make_project(TRAIN_ONLY)
    with Receiver() as receiver:
        config = tmp_path / "hooks.json"
        config.write_text(json.dumps({"run_ended": [{"url": receiver.url}]}))
        for flag in ("--hooks", "--hooks-config"):  # a file is a configuration under either flag
            result = cli("run", str(root), "-e", "train", flag, str(config))
            assert result.code == 0, result.err
        assert [r.json["event"] for r in receiver.wait_for(2)] == ["run_ended", "run_ended"]
    missing = cli("run", str(root), "-e", "train", "--hooks-config", "http://127.0.0.1:9/none.json")
    assert missing.code == 2 and "--hooks-config" in missing.err


def test_hooks_url_over_plain_http_to_another_host_is_refused(cli, make_project):
    root = make_project(TRAIN_ONLY)
    result = cli("run", str(root), "-e", "train", "--hooks", "http://example.com/h")
    assert result.code == 2 and "--hooks http://example.com/h" in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_closing_line_says_it_waited_for_the_mlflow_mirror(cli, make_project, mlflow_server):
    root = make_project(TRAIN_ONLY)
    result = cli("run", str(root), "-e", "train", "--tracking-uri", mlflow_server.url,
                 env={"ORCHESTRA_MLFLOW_TIMEOUT": "60"})
    assert result.code == 0, result.err
    line = result.err.strip().splitlines()[-1]
    assert re.search(r"FINISHED in [\d.]+s \(\+[\d.]+s waiting for the MLflow mirror\) \(1 ran, 0 loaded\)", line), line


def test_the_first_run_on_a_terminal_says_where_runs_are_kept_once_per_home(cli, make_project, orchestra_home):
    root = make_project(TRAIN_ONLY)
    env = {**os.environ, "TERM": "xterm", "PYTHONPATH": str(REPO_ROOT)}
    piped = cli("run", str(root), "-e", "train")
    assert piped.code == 0 and "runs are kept in" not in piped.err  # scripts and CI logs: nothing
    quiet_code, quiet = _run_in_pty(["run", str(root), "-e", "train", "-q"], env)
    assert quiet_code == 0 and "runs are kept in" not in quiet
    code, first = _run_in_pty(["run", str(root), "-e", "train"], env)
    assert code == 0, first
    run_id = json.loads(cli("runs", "list", "--json").out)[0]["run_id"]
    note = [line.strip() for line in first.splitlines() if "runs are kept in" in line]
    assert note == [f"orchestra: runs are kept in {orchestra_home} (set ORCHESTRA_HOME to move them); to see this "
                    f"one: orchestra runs show {run_id[:8]}, all of them in a browser: orchestra ui"]
    assert cli("runs", "show", run_id[:8]).code == 0  # the command it gives works
    code, again = _run_in_pty(["run", str(root), "-e", "train"], env)
    assert code == 0 and "runs are kept in" not in again
    other_home = orchestra_home.parent / f"{orchestra_home.name}-other"
    code, elsewhere = _run_in_pty(["run", str(root), "-e", "train"], {**env, "ORCHESTRA_HOME": str(other_home)})
    assert f"runs are kept in {other_home}" in elsewhere
