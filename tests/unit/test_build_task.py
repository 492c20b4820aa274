"""``execution.task.build_task``: what a stage process sees, built from a real MLproject.

The project is written to tmp_path and loaded with ``orchestra.mlproject.load``; parameters are
resolved by ``orchestra.mlproject.params`` — the StageSpec/StageParams a run would use.
"""

from __future__ import annotations

import shlex
import textwrap
from pathlib import Path

import pytest

from orchestra.core.layout import RunLayout, safe_name
from orchestra.envs import Environment
from orchestra.execution.task import TaskContext, build_task
from orchestra.mlproject import params as paramsmod
from orchestra.mlproject.load import load
from orchestra.mlproject.model import ProjectSpec

UPSTREAM = "prep-data.v2"  # needs sanitising in a variable name
STAGE = "train model"  # needs sanitising in a directory name

MLPROJECT = f"""\
name: build-task
python_env: python_env.yaml
entry_points:
  {UPSTREAM}:
    parameters:
      rows: {{type: int, default: 10}}
    command: "python prep.py --rows {{rows}} --out {{outputs}}"
  other:
    command: "true"
  {STAGE}:
    depends_on: [{UPSTREAM}, other]
    parameters:
      alpha: {{type: float, default: 0.5}}
      data: {{type: path, default: data.txt}}
    command: "python train.py --data {{inputs.{UPSTREAM}}} --alpha {{alpha}} --file {{data}} --out {{outputs}}"
    outputs: [model.json]
    timeout: 30
    resources: {{cpus: 2}}
"""


@pytest.fixture
def project(tmp_path: Path) -> ProjectSpec:
    root = tmp_path / "project"
    root.mkdir()
    (root / "MLproject").write_text(textwrap.dedent(MLPROJECT))
    (root / "data.txt").write_text("rows\n")
    (root / "python_env.yaml").write_text("python: '3.11'\ndependencies: []\n")
    return load(root)


@pytest.fixture
def layout(tmp_path: Path) -> RunLayout:
    return RunLayout(tmp_path / "home" / "runs" / "run123")


def context(project: ProjectSpec, layout: RunLayout, **kwargs) -> TaskContext:
    kwargs.setdefault("base_env", {"PATH": "/usr/bin", "HOME": "/home/someone", "MLFLOW_RUN_ID": "outer"})
    return TaskContext(run_id="run123", layout=layout, project_dir=project.root, **kwargs)


def resolved(project: ProjectSpec, name: str, *given: str) -> paramsmod.StageParams:
    assignments = paramsmod.parse_assignments(given, project.entry_points)
    return paramsmod.resolve(project.entry_points[name], assignments, cwd=project.root, project_root=project.root,
                             allow_extras=False)


def inputs_of(layout: RunLayout) -> dict[str, str]:
    return {UPSTREAM: str(layout.outputs_dir(UPSTREAM)), "other": str(layout.outputs_dir("other"))}


def test_command_is_rendered_with_the_staging_dir_and_published_inputs(project, layout):
    stage = project.entry_points[STAGE]
    inputs = inputs_of(layout)
    task = build_task(context(project, layout), stage, 1, params=resolved(project, STAGE, "alpha=0.25"), inputs=inputs)
    staging = layout.staging_dir(STAGE, 1)
    assert task.command == (f"python train.py --data {shlex.quote(inputs[UPSTREAM])} --alpha 0.25 "
                            f"--file {shlex.quote(str(project.root / 'data.txt'))} --out {shlex.quote(str(staging))}")
    assert task.staging_dir == str(staging)


def test_paths_follow_the_run_layout(project, layout):
    stage = project.entry_points[STAGE]
    task = build_task(context(project, layout), stage, 1, params=resolved(project, STAGE), inputs=inputs_of(layout))
    stage_dir = layout.run_dir / safe_name(STAGE)
    assert stage_dir.name != STAGE and stage_dir == layout.stage_dir(STAGE)
    assert task.staging_dir == str(stage_dir / ".staging-1")
    assert task.outputs_dir == str(stage_dir / "out")
    assert task.log_dir == str(stage_dir / "logs")
    assert task.metrics_file == str(stage_dir / "tracking.jsonl")
    assert task.cwd == str(project.root)
    assert (task.run_id, task.stage, task.attempt) == ("run123", STAGE, 1)
    assert task.declared_outputs == ("model.json",) and task.timeout == 30 and task.resources == {"cpus": 2}
    assert not layout.run_dir.exists()  # building a task creates nothing


def test_orchestra_variables_in_env_and_overlay(project, layout):
    stage = project.entry_points[STAGE]
    inputs = inputs_of(layout)
    task = build_task(context(project, layout), stage, 1, params=resolved(project, STAGE), inputs=inputs)
    expected = {
        "ORCHESTRA_RUN_ID": "run123", "ORCHESTRA_STAGE": STAGE, "ORCHESTRA_OUTPUT_DIR": task.staging_dir,
        "ORCHESTRA_ATTEMPT": "1", "ORCHESTRA_METRICS_FILE": task.metrics_file,
        "ORCHESTRA_INPUT_PREP_DATA_V2": inputs[UPSTREAM], "ORCHESTRA_INPUT_OTHER": inputs["other"],
    }
    for key, value in expected.items():
        assert task.env[key] == value, key
        assert task.overlay_env[key] == value, key
    assert task.overlay_env["PYTHONUNBUFFERED"] == "1"
    assert task.env["PATH"] == "/usr/bin" and task.env["HOME"] == "/home/someone"  # the base environment
    assert "HOME" not in task.overlay_env  # the overlay is what orchestra sets, not the caller's environment
    assert task.input_dirs == inputs


def test_each_attempt_has_its_own_staging_dir(project, layout):
    stage = project.entry_points[STAGE]
    ctx, params = context(project, layout), resolved(project, STAGE)
    first = build_task(ctx, stage, 1, params=params, inputs=inputs_of(layout))
    second = build_task(ctx, stage, 2, params=params, inputs=inputs_of(layout))
    assert second.staging_dir == str(layout.staging_dir(STAGE, 2)) != first.staging_dir
    assert second.env["ORCHESTRA_OUTPUT_DIR"] == second.overlay_env["ORCHESTRA_OUTPUT_DIR"] == second.staging_dir
    assert second.env["ORCHESTRA_ATTEMPT"] == "2" and second.attempt == 2
    assert second.command.endswith(f"--out {shlex.quote(second.staging_dir)}")
    assert second.metrics_file == first.metrics_file and second.outputs_dir == first.outputs_dir


def test_the_environment_is_applied_and_orchestra_variables_win(project, layout):
    stage = project.entry_points[UPSTREAM]
    environment = Environment(kind="python", key="python:abc", prefix=Path("/envs/abc"),
                              env_vars={"VIRTUAL_ENV": "/envs/abc", "ORCHESTRA_STAGE": "not-this"},
                              path_prepend=("/envs/abc/bin",), unset=("CONDA_PREFIX",))
    base = {"PATH": "/usr/bin", "CONDA_PREFIX": "/opt/conda", "KEEP": "1"}
    task = build_task(context(project, layout, base_env=base), stage, 1, params=resolved(project, UPSTREAM),
                      environment=environment)
    assert task.env["VIRTUAL_ENV"] == "/envs/abc"
    assert task.env["PATH"] == "/envs/abc/bin:/usr/bin"
    assert "CONDA_PREFIX" not in task.env and task.env["KEEP"] == "1"
    assert task.env["ORCHESTRA_STAGE"] == UPSTREAM
    assert task.command == f"python prep.py --rows 10 --out {shlex.quote(task.staging_dir)}"


def test_without_an_environment_the_base_environment_is_used(project, layout):
    stage = project.entry_points[UPSTREAM]
    task = build_task(context(project, layout, base_env={"PATH": "/bin", "CONDA_PREFIX": "/opt/conda"}), stage, 1,
                      params=resolved(project, UPSTREAM, "rows=3"))
    assert task.env["PATH"] == "/bin" and task.env["CONDA_PREFIX"] == "/opt/conda"
    assert "--rows 3 " in task.command


def test_provided_env_wins_and_extra_env_is_in_the_overlay(project, layout):
    stage = project.entry_points[STAGE]
    ctx = context(project, layout, extra_env={"ORCHESTRA_SCHEDULE": "nightly", "EXTRA": "x"})
    provided = {"MLFLOW_RUN_ID": "child-run", "ORCHESTRA_STAGE": "as-provided"}
    task = build_task(ctx, stage, 1, params=resolved(project, STAGE), inputs=inputs_of(layout),
                      provided_env=provided)
    assert task.env["MLFLOW_RUN_ID"] == task.overlay_env["MLFLOW_RUN_ID"] == "child-run"  # not the caller's "outer"
    assert task.env["ORCHESTRA_STAGE"] == task.overlay_env["ORCHESTRA_STAGE"] == "as-provided"
    assert task.env["ORCHESTRA_SCHEDULE"] == task.overlay_env["ORCHESTRA_SCHEDULE"] == "nightly"
    assert task.overlay_env["EXTRA"] == "x"


def test_extra_env_cannot_override_orchestra_variables(project, layout):
    stage = project.entry_points[UPSTREAM]
    ctx = context(project, layout, extra_env={"ORCHESTRA_RUN_ID": "forged", "ORCHESTRA_ATTEMPT": "9"})
    task = build_task(ctx, stage, 1, params=resolved(project, UPSTREAM))
    assert task.env["ORCHESTRA_RUN_ID"] == task.overlay_env["ORCHESTRA_RUN_ID"] == "run123"
    assert task.env["ORCHESTRA_ATTEMPT"] == task.overlay_env["ORCHESTRA_ATTEMPT"] == "1"


def test_input_manifests_only_for_inputs(project, layout):
    stage = project.entry_points[STAGE]
    manifest = {"rows.csv": {"sha256": "ab" * 32, "size": 5, "mode": 0o644}}
    known = {UPSTREAM: manifest, "unrelated": {"x": {"sha256": "cd" * 32, "size": 1, "mode": 0o644}}}
    task = build_task(context(project, layout), stage, 1, params=resolved(project, STAGE), inputs=inputs_of(layout),
                      input_manifests=known)
    assert task.input_manifests == {UPSTREAM: manifest, "other": {}}  # "other" not published yet: empty


def test_worker_side_fields_pass_through(project, layout):
    stage = project.entry_points[STAGE]
    env_spec = project.env_for(stage)
    assert env_spec is not None
    ctx = context(project, layout, env_manager="uv")
    task = build_task(ctx, stage, 1, params=resolved(project, STAGE), inputs=inputs_of(layout), env_spec=env_spec)
    assert task.env_spec == env_spec and task.env_manager == "uv"


def test_a_root_stage_has_no_inputs(project, layout):
    stage = project.entry_points[UPSTREAM]
    task = build_task(context(project, layout), stage, 1, params=resolved(project, UPSTREAM))
    assert task.input_dirs == {} and task.input_manifests == {}
    assert not any(key.startswith("ORCHESTRA_INPUT_") for key in task.env)
