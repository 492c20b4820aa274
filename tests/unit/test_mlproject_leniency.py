"""MLproject files that mlflow run accepts load here too: leniencies are warnings, not errors.

mlflow validates only what it executes (see mlflow/projects/_project_spec.py); these tests pin
the cases orchestra used to refuse whole. tests/compat/ runs the same files through mlflow.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestra.core.errors import ParamError, SpecError
from orchestra.mlproject import graph as G
from orchestra.mlproject import params as P
from orchestra.mlproject.load import load


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("ORCHESTRA_HOME", str(tmp_path / "home"))


def project(root: Path, text: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "MLproject").write_text(text)
    return root


def rendered(root: Path, stage: str = "main", *given: str, type_check: bool = True) -> str:
    spec = load(root)
    entry = spec.entry_points[stage]
    assignments = P.parse_assignments(given, [stage])
    values = P.resolve(entry, assignments, cwd=root, project_root=root, allow_extras=True, type_check=type_check)
    return P.render(entry, values, outputs="/o", inputs={})


def test_unknown_types_read_as_string_with_one_warning_each(tmp_path):
    spec = load(project(tmp_path, """
entry_points:
  main:
    parameters:
      epochs: {type: epochs, default: 3}
      n: {type: integer, default: 2}
      flag: {type: boolean, default: yes}
      f: {type: double, default: 1.50}
      s: {type: str, default: x}
      odd: {type: 5, default: z}
    command: "echo {epochs} {n} {flag} {f} {s} {odd}"
"""))
    types = {p.name: p.type for p in spec.entry_points["main"].parameters}
    assert types == {"epochs": "string", "n": "int", "flag": "bool", "f": "float", "s": "string", "odd": "string"}
    epochs = [w for w in spec.warnings if "parameters.epochs" in w]
    assert len(epochs) == 1 and "unknown type 'epochs'" in epochs[0] and "string, float, int, path, uri, bool" in epochs[0]
    assert any("type 'integer' read as 'int'" in w for w in spec.warnings)
    assert not any("parameters.s" in w for w in spec.warnings)  # mlflow's own docs write `type: str`
    assert len(spec.warnings) == 5


def test_defaults_render_as_mlflow_renders_them(tmp_path):
    root = project(tmp_path, """
entry_points:
  main:
    parameters:
      lst: {default: [1, 2]}
      dct: {default: {a: 1, 2: b}}
      day: {default: 2024-01-02}
      yes_: {default: yes}
      flag: {type: bool, default: on}
      f: {type: float, default: 0.50}
      e: {type: float, default: 1e-3}
      big: {type: int, default: 0x10}
    command: "echo {lst} {dct} {day} {yes_} {flag} {f} {e} {big}"
""")
    expected = "echo '[1, 2]' '{'\"'\"'a'\"'\"': 1, 2: '\"'\"'b'\"'\"'}' 2024-01-02 True True 0.5 1e-3 16"
    assert rendered(root) == expected
    assert rendered(root) == expected  # the second load may come from the validation cache: same text


def test_given_values_pass_as_given_text(tmp_path):
    root = project(tmp_path, "entry_points:\n  main:\n    parameters: {f: float, b: {type: bool, default: true}}\n"
                             "    command: 'echo {f} {b}'\n")
    assert rendered(root, "main", "f=0.50", "b=yes") == "echo 0.50 yes"


def test_entry_point_without_command_loads_and_fails_only_when_selected(tmp_path):
    spec = load(project(tmp_path, "entry_points:\n  main: {command: 'true'}\n  draft:\n    parameters: {a: int}\n"
                                  "  typo: {command: 'echo {nope}'}\n"))
    assert any("entry_points.draft: no command" in w for w in spec.warnings)
    assert any("entry_points.typo.command: placeholder {nope}" in w for w in spec.warnings)
    graph = G.build(spec)
    G.check_runnable(graph.subgraph(G.select(graph, ["main"])))
    for target, expected in (("draft", "MLproject: entry_points.draft: no command"),
                             ("typo", "MLproject: entry_points.typo.command: placeholder {nope} is not a declared")):
        with pytest.raises(SpecError) as info:
            G.check_runnable(graph.subgraph(G.select(graph, [target])))
        assert str(info.value).startswith(expected) and info.value.exit_code == 2


def test_pipeline_stage_without_command_fails_when_a_target_needs_it(tmp_path):
    spec = load(project(tmp_path, "entry_points:\n  a: {}\n  b: {command: 'true', depends_on: [a]}\n"))
    graph = G.build(spec)
    with pytest.raises(SpecError, match="entry_points.a: no command"):
        G.check_runnable(graph.subgraph(G.select(graph, ["b"])))


def test_numeric_name_and_unknown_entry_keys(tmp_path):
    spec = load(project(tmp_path, "name: 2024\nentry_points:\n  main:\n    params: epochs\n    command: 'true'\n"))
    assert spec.name == "2024"
    assert spec.warnings == ("MLproject: entry_points.main: unknown key 'params' ignored (did you mean 'parameters'?)",)


@pytest.mark.parametrize("text, expected", [
    ("entry_points:\n  main:\n    parameters: epochs\n    command: x\n", "entry_points.main.parameters"),
    ("entry_points:\n  main: run it\n", "entry_points.main"),
    ("entry_points:\n  main:\n    parameters: {x: 5}\n    command: x\n", "entry_points.main.parameters.x"),
    ("conda_env: a.yaml\npython_env: b.yaml\nentry_points: {}\n", "only one of"),
])
def test_what_mlflow_also_refuses_stays_an_error(tmp_path, text, expected):
    """mlflow fails on these while loading the file (AttributeError on .items()/.get(), or its
    own 'multiple environment fields' check), whatever entry point runs."""
    with pytest.raises(SpecError, match=expected):
        load(project(tmp_path, text))


def test_bad_default_for_its_type_is_a_warning_then_a_run_error(tmp_path):
    root = project(tmp_path, "entry_points:\n  main:\n    parameters: {n: {type: int, default: 1.5}}\n"
                             "    command: 'echo {n}'\n")
    spec = load(root)
    assert any("parameters.n.default: '1.5' is not an int" in w for w in spec.warnings)
    with pytest.raises(ParamError, match="'1.5' is not an int"):
        rendered(root)
    assert rendered(root, type_check=False) == "echo 1.5"
    assert rendered(root, "main", "n=7") == "echo 7"


def test_no_type_check_passes_values_through_but_still_checks_uri_and_path(tmp_path):
    root = project(tmp_path, "entry_points:\n  main:\n    parameters: {i: int, u: {type: uri, default: 's3://b'}}\n"
                             "    command: 'echo {i} {u}'\n")
    with pytest.raises(ParamError):
        rendered(root, "main", "i=1.5")
    assert rendered(root, "main", "i=1.5", type_check=False) == "echo 1.5 s3://b"
    with pytest.raises(ParamError, match="not a URI"):
        rendered(root, "main", "i=1", "u=relative", type_check=False)


def test_empty_env_keys_are_ignored_as_mlflow_ignores_them(tmp_path):
    root = project(tmp_path, "conda_env:\npython_env: ''\nentry_points:\n  main: {command: 'true'}\n")
    (root / "conda.yaml").write_text("name: x\n")
    with pytest.raises(SpecError, match="only one of"):  # mlflow: "multiple environment fields" too
        load(root)
    (root / "MLproject").write_text("conda_env:\nentry_points:\n  main: {command: 'true'}\n")
    assert load(root).env.kind == "conda" and load(root).env.declared_at == "conda.yaml (implicit)"
    (root / "MLproject").write_text("docker_env:\nentry_points:\n  main: {command: 'true'}\n")
    assert load(root).env.kind == "conda"


def test_a_format_spec_that_cannot_apply_to_text_is_a_problem_of_its_stage(tmp_path):
    spec = load(project(tmp_path, "entry_points:\n  main:\n    parameters: {a: float}\n    command: 'echo {a:.2f}'\n"
                                  "  ok:\n    parameters: {a: string}\n    command: 'echo {a:>5}'\n"))
    assert "invalid format spec" in spec.entry_points["main"].problem.message
    assert spec.entry_points["ok"].problem is None


def test_implicit_r_entry_point_runs_as_mlflow_runs_it(tmp_path):
    from orchestra.mlproject.entry import implicit_stage

    (tmp_path / "fit.R").write_text("1\n")
    assert implicit_stage(tmp_path, "fit.R").command == "Rscript -e \"mlflow::mlflow_source('fit.R')\" --args"


def test_a_parameter_named_outputs_is_the_parameter_in_its_entry_point(tmp_path):
    root = project(tmp_path, "entry_points:\n  main:\n    parameters: {outputs: {default: out dir}}\n"
                             "    command: 'echo {outputs}'\n  other: {command: 'echo {outputs}'}\n")
    spec = load(root)
    assert any("parameter 'outputs' is used for {outputs}" in w for w in spec.warnings)
    assert rendered(root) == "echo 'out dir'"
    assert rendered(root, "other") == "echo /o"  # orchestra's own output directory elsewhere


def test_a_parameter_name_yaml_reads_as_a_number_is_its_text(tmp_path):
    """``1:`` under ``parameters`` is an int key to YAML; mlflow run accepts it, and so does the
    planner (it sorted the names with the others and failed with a TypeError)."""
    from orchestra.app import api
    from orchestra.core.options import RunOptions, Selection

    root = project(tmp_path / "p", """
entry_points:
  main:
    parameters:
      1: {type: float, default: 0.5}
      a: {type: float, default: 0.1}
    command: "echo {a}"
""")
    spec = load(root)
    assert [p.name for p in spec.entry_points["main"].parameters] == ["1", "a"]
    planned = api.plan(str(root), RunOptions(selection=Selection(params=("1=3",))))
    assert planned.stages[0].name == "main"
