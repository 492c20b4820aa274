"""Every case through the real ``mlflow run`` and through orchestra: the same command line,
working directory, ``$PWD``, MLflow variables, params logged and exit code (see harness.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.compat import cases as C
from tests.compat.harness import Case, World, quoted, seen

# Real mlflow and a real server: the first test also pays for the session's batch of every case
# (about a minute, several on a loaded machine).
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


@pytest.mark.parametrize("case", C.CASES, ids=[c.name for c in C.CASES])
def test_same_as_mlflow_run(case: Case, world: World, outcomes) -> None:
    theirs, mine = outcomes[case.name]
    assert (theirs.exit_code, mine.exit_code) == case.exit, (theirs.stderr[-1500:], mine.stderr[-1500:])
    if case.message:
        errors = [line for line in mine.stderr.splitlines() if line.startswith("orchestra: error:")]
        assert "Traceback" not in mine.stderr and len(errors) == 1 and case.message in errors[0], mine.stderr
    if case.exit[0] != case.exit[1] and 0 in case.exit:  # a difference kept on purpose: one of them ran
        ran, refused = (mine, theirs) if case.exit[1] == 0 else (theirs, mine)
        assert ran.records and not refused.records
        return
    if case.git_versions:  # orchestra runs in its own checkout: only the command line is the same
        assert [r["argv"] for r in mine.records] == [r["argv"] for r in theirs.records]
        return
    assert [seen(r) for r in mine.records] == [seen(r) for r in theirs.records]
    for their_record, my_record in zip(theirs.records, mine.records):
        their_params = world.server_params(their_record)
        my_params = quoted(world.server_params(my_record))
        for name in case.differences:
            their_params.pop(name, None), my_params.pop(name, None)
        assert my_params == their_params


@pytest.mark.parametrize("case", ["flag_experiment_id", "flag_experiment_id_from_environment",
                                  "flag_experiment_name_from_environment"])
def test_experiment_id_is_the_commands_experiment(world: World, outcomes, case: str) -> None:
    # The run on the server is in that experiment (an orchestra stage's own MLFLOW_EXPERIMENT_ID
    # names the experiment in the run's endpoint, which the mirror maps to the server's).
    for outcome in outcomes[case]:
        assert world.server_run(outcome.records[0])["info"]["experiment_id"] == world.values["experiment_id"]
    for outcome in outcomes["mlflow_main_entry_point"]:  # without the flag: experiment Default
        assert world.server_run(outcome.records[0])["info"]["experiment_id"] == "0"
        assert outcome.records[0]["env"]["MLFLOW_TRACKING_URI"].startswith("http://127.0.0.1:")


def test_run_id_becomes_the_parent_of_the_stage_runs(world: World, outcomes) -> None:
    theirs, mine = outcomes["flag_run_id"]
    given = world.values["run_id"]
    assert theirs.records[0]["env"]["MLFLOW_RUN_ID"] == given  # mlflow runs the command in that run
    child = world.server_run(mine.records[0])["info"]["run_id"]  # orchestra's stage run nests under it
    assert child != given and world.tags(child)["mlflow.parentRunId"] == given
    # mlflow gives the command the flags' experiment (0 here), not the run's; orchestra's stage
    # runs are created in the given run's experiment (README: Differences from mlflow run).
    assert theirs.records[0]["env"]["MLFLOW_EXPERIMENT_ID"] == "0"
    assert world.run_info(child)["info"]["experiment_id"] == world.values["experiment_id"]
    assert world.run_info(given)["info"]["status"] == "FINISHED"


def test_path_default_difference(world: World, outcomes) -> None:
    theirs, mine = outcomes["difference_path_default_resolves_against_project"]
    assert "no such file or directory" in theirs.stderr.lower() or "no such file" in theirs.stderr
    assert mine.records[0]["argv"] == [str(world.case_dir(C.BY_NAME["difference_path_default_resolves_against_project"])
                                           / "project" / "data.txt")]


def orchestra(*args: str, cwd=None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orchestra", *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def test_validate_accepts_every_mlproject_mlflow_ran(world: World, outcomes) -> None:
    ran = {}
    for case in C.CASES:
        if outcomes[case.name][0].exit_code == 0 and case.mlproject is not None:
            ran.setdefault(case.mlproject, world.case_dir(case) / "project")
    assert len(ran) >= 4
    for project in ran.values():
        result = orchestra("validate", str(project))
        assert result.returncode == 0, result.stderr
    strict = orchestra("validate", "--strict", str(world.case_dir(C.BY_NAME["lenient_mlproject_renders_like_mlflow"]) / "project"))
    assert strict.returncode == 2 and "--strict: 7 warning(s)" in strict.stderr


def test_backend_config_unknown_key_and_virtualenv_note(world: World, outcomes) -> None:
    project = str(world.case_dir(C.BY_NAME["mlflow_main_entry_point"]) / "project")
    bad = orchestra("run", project, "-c", '{"jbos": 2}')
    assert bad.returncode == 2 and "unknown key 'jbos'" in bad.stderr and "jobs" in bad.stderr
    note = orchestra("run", project, "--dry-run", "--env-manager", "virtualenv")
    assert note.returncode == 0 and "--env-manager virtualenv: python environments are built with uv" in note.stderr


def test_version_of_a_local_git_tree_never_touches_it_here(world: World, outcomes) -> None:
    theirs, mine = outcomes["difference_version_of_a_local_git_tree"]
    assert theirs.records[0]["argv"] == mine.records[0]["argv"] == ["old"]
    base = world.case_dir(C.BY_NAME["difference_version_of_a_local_git_tree"])

    def head(repo: str) -> str:
        return subprocess.run(["git", "rev-parse", "--abbrev-ref", "HEAD"], cwd=base / repo, capture_output=True,
                              text=True, check=True).stdout.strip()

    assert head("project") == "old"  # mlflow checked the version out in the user's own tree
    assert head("project-copy") == "main"  # orchestra used a separate checkout
    assert "new" in (base / "project-copy" / "MLproject").read_text()


def test_run_id_unknown_to_the_server_is_a_notice_here(outcomes) -> None:
    theirs, mine = outcomes["difference_run_id_unknown_to_the_server"]
    assert "--run-id 00000000000000000000000000000000: cannot read it from" in mine.stderr
    assert mine.records[0]["env"]["MLFLOW_RUN_ID"]  # the stage still has its run, under a new parent
