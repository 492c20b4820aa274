"""Runs through the real CLI: selection, parallelism, failure policy, retries, timeouts, I/O."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests import projects
from tests.conftest import EXAMPLES

pytestmark = pytest.mark.integration


def statuses(record) -> dict[str, str]:
    return {s["name"]: s["status"] for s in record["stages"]}


def test_quickstart_runs_and_records_everything(cli):
    result = cli("run", str(EXAMPLES / "quickstart"), "--json")
    assert result.code == 0, result.err
    record = json.loads(result.out)
    assert len(record["run_id"]) == 32 and int(record["run_id"], 16) >= 0
    assert record["status"] == "FINISHED"
    assert [s["name"] for s in record["stages"]] == ["prepare", "features", "train", "evaluate"]
    stage = record["stages"][3]
    for key in ("name", "status", "exit_code", "start_time", "end_time", "attempts", "metrics", "log_paths", "outputs_dir"):
        assert key in stage
    assert set(stage["metrics"]) == {"rmse", "mae"}
    assert "train_mse" in record["stages"][2]["metrics"]
    assert Path(stage["log_paths"]["stdout"]).read_text().startswith("rmse=")
    assert json.loads((Path(stage["outputs_dir"]) / "report.json").read_text())["rmse"] > 0
    assert record["params"]["alpha"] == "0.5"
    # Human output goes to stderr only.
    plain = cli("run", str(EXAMPLES / "quickstart"))
    assert plain.code == 0 and plain.out == "" and "[train] loaded" in plain.err


def test_targets_select_ancestors_only(cli):
    record = json.loads(cli("run", str(EXAMPLES / "quickstart"), "-e", "features", "--json").out)
    assert [s["name"] for s in record["stages"]] == ["prepare", "features"]


def test_mlflow_single_entry_point_semantics(cli, make_project):
    root = make_project("""
        entry_points:
          main:
            parameters: {alpha: {type: float, default: 0.1}}
            command: "python show.py {alpha}"
          other:
            command: "echo other"
    """, {"show.py": "import sys, os; open(os.environ['OUT'], 'w').write(repr(sys.argv[1:]))"})
    out = root / "argv.txt"
    result = cli("run", str(root), "-P", "alpha=0.2", "-P", "extra=x y", env={"OUT": str(out)})
    assert result.code == 0, result.err
    assert out.read_text() == "['0.2', '--extra', 'x y']"  # default target main; extras appended
    result = cli("run", str(root), "-e", "show.py", "-P", "a=1", env={"OUT": str(out)})
    assert result.code == 0, result.err
    assert out.read_text() == "['--a', '1']"  # implicit .py entry point


def test_stage_environment_and_placeholders(cli, make_project):
    root = make_project("""
        entry_points:
          my-prep:
            command: "echo data > {outputs}/d.txt"
          use:
            depends_on: [my-prep]
            command: "python use.py {inputs.my-prep} {outputs}"
    """, {"use.py": """
import os, sys, json, pathlib
inp, out = sys.argv[1:]
assert os.environ["ORCHESTRA_INPUT_MY_PREP"] == inp
assert os.environ["ORCHESTRA_OUTPUT_DIR"] == out
pathlib.Path(out, "env.json").write_text(json.dumps({k: os.environ[k] for k in ("ORCHESTRA_RUN_ID", "ORCHESTRA_STAGE")}))
assert pathlib.Path(inp, "d.txt").read_text() == "data\\n"
with open(os.environ["ORCHESTRA_METRICS_FILE"], "a") as f:
    f.write(json.dumps({"type": "metric", "key": "plain", "value": 2}) + "\\n")
"""})
    result = cli("run", str(root), "--json")
    assert result.code == 0, result.err
    record = json.loads(result.out)
    env = json.loads((Path(record["stages"][1]["outputs_dir"]) / "env.json").read_text())
    assert env == {"ORCHESTRA_RUN_ID": record["run_id"], "ORCHESTRA_STAGE": "use"}
    assert record["stages"][1]["metrics"] == {"plain": 2.0}


RENDEZVOUS = """
import os, sys, time, pathlib
me, other = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
me.touch()
deadline = time.monotonic() + float(sys.argv[3])
while not other.exists():
    if time.monotonic() > deadline:
        sys.exit("the other stage never ran at the same time")
    time.sleep(0.02)
"""


def test_independent_stages_run_in_parallel(cli, make_project, tmp_path):
    root = make_project(f"""
        entry_points:
          a: {{command: "python meet.py {tmp_path}/a {tmp_path}/b 20"}}
          b: {{command: "python meet.py {tmp_path}/b {tmp_path}/a 20"}}
          c: {{command: "echo c", depends_on: [a, b]}}
    """, {"meet.py": RENDEZVOUS})
    result = cli("run", str(root), "-j", "2", "--json")
    assert result.code == 0, result.err
    assert set(statuses(json.loads(result.out)).values()) == {"FINISHED"}
    # With one slot they cannot meet: the first to start gives up.
    (tmp_path / "a").unlink()
    (tmp_path / "b").unlink()
    root2 = make_project(f"""
        entry_points:
          a: {{command: "python meet.py {tmp_path}/a {tmp_path}/b 1"}}
          b: {{command: "python meet.py {tmp_path}/b {tmp_path}/a 1"}}
    """, {"meet.py": RENDEZVOUS})
    result = cli("run", str(root2), "-j", "1", "-e", "a", "-e", "b", "--json", "--keep-going")
    assert result.code == 1
    assert "FAILED" in statuses(json.loads(result.out)).values()


def test_failure_skips_descendants_and_stops_new_stages(cli, project):
    root = project(projects.FAILING)
    result = cli("run", str(root), "-j", "2", "--json")
    assert result.code == 1
    record = json.loads(result.out)
    states = statuses(record)
    assert record["status"] == "FAILED"
    assert states["bad"] == "FAILED" and states["below"] == "SKIPPED"
    assert states["slow_side"] == "FINISHED"  # running stages finish ...
    assert states["after_side"] == "SKIPPED"  # ... but no new stage starts
    bad = next(s for s in record["stages"] if s["name"] == "bad")
    assert bad["exit_code"] == 3
    assert "boom line" in result.err and bad["log_paths"]["stderr"] in result.err
    assert f"--load-from {record['run_id']}" in result.err


def test_keep_going_lets_independent_branches_finish(cli, project):
    result = cli("run", str(project(projects.FAILING)), "-j", "2", "--json", "--keep-going")
    states = statuses(json.loads(result.out))
    assert result.code == 1 and states["after_side"] == "FINISHED" and states["below"] == "SKIPPED"


def test_retries_and_timeout(cli, make_project, tmp_path):
    counter = tmp_path / "count"
    root = make_project(f"""
        entry_points:
          flaky:
            retries: 2
            command: "python -c \\"import pathlib,sys; p=pathlib.Path('{counter}'); n=int(p.read_text() if p.exists() else 0)+1; p.write_text(str(n)); sys.exit(0 if n >= 3 else 1)\\""
          hang:
            timeout: 1
            command: "sleep 30"
    """)
    result = cli("run", str(root), "-e", "flaky", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["stages"][0]["attempts"] == 3
    result = cli("run", str(root), "-e", "hang", "--json")
    assert result.code == 1 and "timed out after 1s" in result.err


@pytest.mark.parametrize("args, expected", [
    (("-P", "alpha=abc"), "stage 'train': parameter 'alpha': 'abc' is not a float"),
    (("-P", "nosuch=1"), "no selected stage declares this parameter"),
    (("-P", "train.nosuch=1"), "has no parameter 'nosuch'"),
    (("-e", "nope"), "unknown entry point 'nope'"),
    (("-j", "0"), "must be at least 1"),
    (("--load-stages", "train"), "--load-stages needs --load-from"),
    (("--env-manager", "pip"), "invalid choice"),
    (("-b", "databricks"), "-b/--backend databricks: not a backend orchestra runs"),
    (("-c", '{"jbos": 2}'), "-c/--backend-config: unknown key 'jbos'"),
    (("-c", "{jobs"), "-c/--backend-config: not JSON"),
])
def test_bad_input_is_one_line_exit_2_and_loses_nothing(cli, args, expected):
    first = cli("run", str(EXAMPLES / "quickstart"), "-q")
    assert first.code == 0
    result = cli("run", str(EXAMPLES / "quickstart"), *args)
    assert result.code == 2
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and "Traceback" not in result.err, result.err
    assert len(json.loads(cli("runs", "list", "--json").out)) == 1


def test_validate_and_dag(cli):
    result = cli("validate", str(EXAMPLES / "quickstart"))
    assert result.code == 0 and "valid pipeline with 4 entry point(s)" in result.out
    dot = cli("dag", str(EXAMPLES / "quickstart"), "--format", "dot")
    assert '"train" -> "evaluate";' in dot.out


def test_importing_the_cli_stays_light():
    code = ("import sys, orchestra.cli as c; c.build_parser(); "
            "heavy = [m for m in ('pandas', 'networkx', 'requests', 'rattler', 'jsonschema', 'git', 'yaml') if m in sys.modules]; "
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_live_status_line_on_a_terminal_only(project):
    """On a TTY the live area has a line per running stage with its duration above the summary
    line; piped output has no escape codes at all."""
    import os
    import pty
    import re

    root = project(projects.TWO_STAGES)
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "orchestra", "run", str(root)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=follower, env={**os.environ, "TERM": "xterm"})
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    assert proc.wait(60) == 0
    screen = b"".join(chunks).decode(errors="replace")
    assert re.search(r"  first +\d+\.\ds", screen) and re.search(r"  slow +\d+\.\ds", screen)
    assert "2/2 done" in screen and "\x1b[K" in screen
    piped = subprocess.run([sys.executable, "-m", "orchestra", "run", str(root), "--no-cache"],
                           capture_output=True, text=True, timeout=60)
    assert piped.returncode == 0 and "\x1b" not in piped.stderr and "running:" not in piped.stderr


def test_a_reader_that_goes_away_does_not_kill_the_run(project, cli):
    """``orchestra run … 2>&1 | head -1``: the console stops writing, the pipeline finishes."""
    import os

    root = project(projects.TWO_STAGES)
    read_end, write_end = os.pipe()
    proc = subprocess.Popen([sys.executable, "-m", "orchestra", "run", str(root)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=write_end)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        assert reader.readline().startswith(b"orchestra: run ")
    assert proc.wait(60) == 0
    record = json.loads(cli("runs", "list", "--json").out)[0]
    assert record["status"] == "FINISHED"


def test_run_name_is_recorded_as_mlflow_does(make_project, cli):
    project = make_project("""
        entry_points:
          main: {command: "python -c 'print(1)'"}
    """)
    record = json.loads(cli("run", str(project), "--run-name", "baseline v2", "--json").out)
    assert record["tags"]["mlflow.runName"] == "baseline v2"


def test_commands_run_through_bash_as_mlflow_runs_them(cli, make_project):
    """bash builtins and keywords work even as a whole command (tests/compat/ compares with mlflow)."""
    root = make_project("""
        entry_points:
          main:
            command: |
              shopt -s extglob
              pushd sub > /dev/null
              time echo !(skip*).txt "$PWD"
          alone:
            command: "pushd /tmp"
          sourced:
            command: "source env.sh && echo $GREETING"
    """, {"sub/a.txt": "", "sub/skip.txt": "", "env.sh": "export GREETING=hello\n"})
    main = cli("run", str(root), "--no-cache")
    assert main.code == 0 and f"[main] a.txt {root / 'sub'}" in main.err and "[main] real" in main.err
    assert cli("run", str(root), "-e", "alone").code == 0  # exec'd directly, a builtin would be exit 127
    sourced = cli("run", str(root), "-e", "sourced")
    assert sourced.code == 0 and "[sourced] hello" in sourced.err


def test_lenient_mlproject_runs_and_validate_reports_warnings(cli, make_project):
    root = make_project("""
        name: 2024
        entry_points:
          main:
            parameters:
              n: {type: integer, default: 2}
              flag: {default: yes}
              items: {default: [1, 2]}
            params: epochs
            command: "echo {n} {flag} {items}"
          draft:
            parameters: {a: epochs}
    """)
    ran = cli("run", str(root))
    assert ran.code == 0 and "[main] 2 True [1, 2]" in ran.err
    validated = cli("validate", str(root))
    assert validated.code == 0 and "(4 warning(s))" in validated.out
    assert "entry_points.draft.parameters.a: unknown type 'epochs'" in validated.err
    strict = cli("validate", "--strict", str(root))
    assert strict.code == 2 and strict.err.strip().splitlines()[-1].startswith("orchestra: error: --strict: 4 warning(s)")
    selected = cli("run", str(root), "-e", "draft", "-P", "a=1")
    assert selected.code == 2 and "MLproject: entry_points.draft: no command" in selected.err


def test_mlflow_run_flags_that_change_nothing_here_are_accepted(cli):
    """-b local, mlflow's local-backend keys in -c, --param-list, --experiment-id without a server."""
    result = cli("run", str(EXAMPLES / "quickstart"), "-b", "local", "-c", '{"SYNCHRONOUS": true, "jobs": 1}',
                 "--param-list", "alpha=0.3", "--experiment-id", "7", "-q", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["params"]["alpha"] == "0.3"
    note = cli("run", str(EXAMPLES / "quickstart"), "--dry-run", "--env-manager", "virtualenv")
    assert note.code == 0 and "--env-manager virtualenv: python environments are built with uv" in note.err
