"""What stage code learns about its steps: the step base (``planning.fingerprint.step_base``) and
the ``ORCHESTRA_*`` variables ``build_task`` sets from ``StepSettings``."""

from __future__ import annotations

import textwrap
from pathlib import Path

from orchestra.core.layout import RunLayout
from orchestra.execution.task import StepSettings, TaskContext, build_task
from orchestra.mlproject import params as paramsmod
from orchestra.mlproject.load import load
from orchestra.planning import fingerprint
from orchestra.stage._steps import step_key


def parts(**changes):
    base = dict(entry_point="main", command="python s.py {alpha}", params={"alpha": 0.5}, extras={},
                env_key="env1", code_digest="code1", path_inputs={}, upstream={})
    return fingerprint.components(**{**base, **changes})


def test_step_base_ignores_params_command_and_path_inputs_but_not_code_env_or_upstream():
    base = fingerprint.step_base(parts())
    assert base == fingerprint.step_base(parts(params={"alpha": 2.0}, command="other", path_inputs={"f": "x"}))
    for changed in (parts(code_digest="code2"), parts(env_key="env2"), parts(upstream={"prep": "sha256:1"}),
                    parts(entry_point="other")):
        assert fingerprint.step_base(changed) != base
    assert fingerprint.step_base(None) is None


def test_step_key_holds_the_step_the_artifact_and_the_callers_key():
    key = step_key("sha256:b", "load_data", "data", "dir", {"rows": 10})
    assert key == step_key("sha256:b", "load_data", "data", "dir", {"rows": 10})
    assert len({key, step_key("sha256:c", "load_data", "data", "dir", {"rows": 10}),
                step_key("sha256:b", "other", "data", "dir", {"rows": 10}),
                step_key("sha256:b", "load_data", "data.csv", "dir", {"rows": 10}),
                step_key("sha256:b", "load_data", "data", "file", {"rows": 10}),
                step_key("sha256:b", "load_data", "data", "dir", {"rows": 11})}) == 6


def test_build_task_tells_the_stage_what_its_steps_may_load(tmp_path: Path):
    root = tmp_path / "p"
    root.mkdir()
    (root / "MLproject").write_text(textwrap.dedent("""\
        entry_points:
          main: {command: "python s.py"}
          other: {command: "python t.py"}
        """))
    spec = load(root)
    settings = StepSettings(loading=True, force=frozenset({"other"}), load_from="r1", load_steps=("a", "b"),
                            project_key="pk")
    context = TaskContext(run_id="run", layout=RunLayout(tmp_path / "runs" / "run"), project_dir=root,
                          base_env={"PATH": "/bin"}, steps=settings)

    def env(name: str, base: str | None) -> dict:
        stage = spec.entry_points[name]
        resolved = paramsmod.resolve(stage, [], cwd=root, project_root=root, allow_extras=False)
        return dict(build_task(context, stage, 1, params=resolved, step_base=base).env)

    main = env("main", "sha256:base")
    assert main["ORCHESTRA_STEP_BASE"] == "sha256:base" and "ORCHESTRA_STEP_LOADING" not in main
    assert main["ORCHESTRA_LOAD_FROM"] == "r1" and main["ORCHESTRA_LOAD_STEPS"] == "a,b"
    assert main["ORCHESTRA_PROJECT_KEY"] == "pk"
    forced = env("other", None)
    assert forced["ORCHESTRA_STEP_LOADING"] == "off" and "ORCHESTRA_STEP_BASE" not in forced
    off = StepSettings(loading=False).env("main", "sha256:base")
    assert off == {"ORCHESTRA_STEP_BASE": "sha256:base", "ORCHESTRA_STEP_LOADING": "off"}
