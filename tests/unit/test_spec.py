"""MLproject loading: MLflow's rules, orchestra's fields, and one-line errors with key paths."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from orchestra.core.errors import ParamError, SpecError
from orchestra.mlproject.graph import build, render, select
from orchestra.mlproject import params as P
from orchestra.mlproject.load import implicit_stage, load


def write(root: Path, text: str, name: str = "MLproject", **files: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(text)
    for rel, body in files.items():
        (root / rel).write_text(body)
    return root


@pytest.mark.parametrize("name", ["MLproject", "mlproject", "MLPROJECT"])
def test_file_is_found_case_insensitively(tmp_path, name):
    spec = load(write(tmp_path, "entry_points:\n  main: {command: 'true'}\n", name))
    assert list(spec.entry_points) == ["main"]


def test_mlproject_yaml_is_not_an_mlproject(tmp_path):
    spec = load(write(tmp_path, "entry_points:\n  main: {command: 'true'}\n", "MLproject.yaml"))
    assert spec.spec_file is None and spec.entry_points == {}


def test_parameter_forms_types_and_orchestra_fields(tmp_path):
    spec = load(write(tmp_path, """
name: demo
entry_points:
  prep:
    parameters:
      a: float
      b: {type: int, default: 3}
      c: {type: str, default: x}
      d: {default: hello}
      e: {type: bool, default: false}
    command: "prep {a} {b} {c} {d} {e} {outputs}"
    outputs: [data.csv]
    cache: false
    retries: 2
    timeout: 5
    env: local
  train:
    depends_on: prep
    command: "train {inputs.prep}"
""", "MLproject"))
    prep = spec.entry_points["prep"]
    assert [(p.name, p.type, p.default) for p in prep.parameters] == [
        ("a", "float", None), ("b", "int", 3), ("c", "string", "x"), ("d", "string", "hello"), ("e", "bool", False)]
    assert prep.param("a").required and not prep.param("b").required
    assert (prep.outputs, prep.cache, prep.retries, prep.timeout, prep.env.kind) == (("data.csv",), False, 2, 5, "local")
    assert spec.entry_points["train"].depends_on == ("prep",) and spec.is_pipeline


def test_environment_precedence(tmp_path):
    root = write(tmp_path / "a", "entry_points:\n  main: {command: 'true'}\n", **{"python_env.yaml": "python: '3.11'\n",
                                                                                "conda.yaml": "name: x\n"})
    assert load(root).env.kind == "python"
    root = write(tmp_path / "b", "entry_points:\n  main: {command: 'true'}\n", **{"conda.yaml": "name: x\n"})
    assert load(root).env.kind == "conda"
    root = write(tmp_path / "c", "conda_env: env.yaml\nentry_points:\n  main: {command: 'true', python_env: p.yaml}\n",
                 **{"env.yaml": "name: x\n", "p.yaml": "python: '3.11'\n"})
    spec = load(root)
    assert spec.env.kind == "conda" and spec.env_for(spec.entry_points["main"]).kind == "python"
    root = write(tmp_path / "d", "docker_env: {image: python:3.11}\nentry_points:\n  main: {command: 'true'}\n")
    assert load(root).env.kind == "docker"


BAD = {
    "entry point not a mapping": ("entry_points:\n  main: run it\n", "entry_points.main"),
    "parameter a number": ("entry_points:\n  main:\n    parameters: {x: 5}\n    command: x\n",
                           "entry_points.main.parameters.x"),
    "malformed": ("entry_points:\n  main: {command: 'x'\n", "malformed YAML at line"),
    "top list": ("- a\n- b\n", "expected a mapping at the top level"),
    "negative retries": ("entry_points:\n  main: {command: x, retries: -1}\n", "entry_points.main.retries"),
    "unknown dep": ("entry_points:\n  a: {command: x, depends_on: [zz]}\n", "unknown stage 'zz'"),
    "self dep": ("entry_points:\n  a: {command: x, depends_on: [a]}\n", "cannot depend on itself"),
    "two envs": ("conda_env: a.yaml\npython_env: b.yaml\nentry_points:\n  a: {command: x}\n", "only one of"),
    "missing env file": ("conda_env: nothere.yaml\nentry_points:\n  a: {command: x}\n", "conda_env: file not found"),
    "escaping output": ("entry_points:\n  a: {command: x, outputs: [../x]}\n", "must be relative"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_projects_are_one_line_errors_with_file_and_key(tmp_path, case):
    text, expected = BAD[case]
    with pytest.raises(SpecError) as info:
        spec = load(write(tmp_path, text))
        build(spec)
    message = str(info.value)
    assert "\n" not in message and expected in message and message.startswith("MLproject")


def test_cycle_is_spelled_out(tmp_path):
    spec = load(write(tmp_path, "entry_points:\n  a: {command: x, depends_on: [c]}\n  b: {command: x, depends_on: [a]}\n"
                                "  c: {command: x, depends_on: [b]}\n"))
    with pytest.raises(SpecError, match=r"dependency cycle: (\w) → \w → \w → \1"):
        build(spec)


def test_inputs_must_be_an_ancestor(tmp_path):
    spec = load(write(tmp_path, "entry_points:\n  a: {command: x}\n  b: {command: 'use {inputs.a}'}\n"))
    with pytest.raises(SpecError, match="not upstream of 'b'"):
        build(spec)


def test_unknown_keys_warn_but_load(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="orchestra"):
        spec = load(write(tmp_path, "colour: blue\nentry_points:\n  main: {command: x, speed: 3}\n"))
    assert "main" in spec.entry_points
    assert "unknown key 'colour'" in caplog.text and "unknown key 'speed'" in caplog.text


def test_implicit_entry_points(tmp_path):
    (tmp_path / "train.py").write_text("print(1)")
    (tmp_path / "go.sh").write_text("echo 1")
    assert implicit_stage(tmp_path, "train.py").command == "python train.py"
    assert implicit_stage(tmp_path, "go.sh").command.endswith(" go.sh")
    assert implicit_stage(tmp_path, "missing.py") is None
    assert implicit_stage(tmp_path, "../../etc/passwd.sh") is None


def test_graph_select_and_render(tmp_path):
    spec = load(write(tmp_path, "entry_points:\n  a: {command: x}\n  b: {command: x, depends_on: [a]}\n"
                                "  c: {command: x, depends_on: [a]}\n  d: {command: x, depends_on: [b, c]}\n"
                                "  e: {command: x}\n"))
    graph = build(spec)
    assert graph.order.index("a") < graph.order.index("b") < graph.order.index("d")
    assert select(graph, ["b"]) == ("a", "b")
    assert set(select(graph, ["d"])) == {"a", "b", "c", "d"}
    assert '"a" -> "b";' in render(graph, "dot")
    assert "flowchart LR" in render(graph, "mermaid")
    assert "d  ← b, c" in render(graph, "ascii")


def test_large_chain_builds_and_selects_linearly(tmp_path):
    lines = ["entry_points:"] + [f"  s{i}: {{command: x{', depends_on: [s' + str(i - 1) + ']' if i else ''}}}"
                                 for i in range(5000)]
    graph = build(load(write(tmp_path, "\n".join(lines) + "\n")))
    assert len(select(graph, graph.order)) == 5000


class TestParams:
    def stage(self, tmp_path):
        spec = load(write(tmp_path, """
entry_points:
  main:
    parameters:
      alpha: float
      n: {type: int, default: 2}
      flag: {type: bool, default: true}
      data: {type: path, default: data.csv}
      where: {type: uri, default: "s3://b/k"}
    command: "run {alpha} {n} {flag} {data} {where}"
""", **{"data.csv": "1\n"}))
        return spec.entry_points["main"], tmp_path

    def test_typed_values_and_quoting(self, tmp_path):
        stage, root = self.stage(tmp_path)
        items = P.parse_assignments(["alpha=0.50", "extra=a b; rm -rf /"], ["main"])
        resolved = P.resolve(stage, items, cwd=root, project_root=root, allow_extras=True)
        assert resolved.values["alpha"] == 0.5 and resolved.values["n"] == 2 and resolved.values["flag"] is True
        assert resolved.values["data"] == str(root / "data.csv")
        command = P.render(stage, resolved, outputs="/o", inputs={})
        assert command.endswith("--extra 'a b; rm -rf /'")
        assert command.startswith(f"run 0.50 2 True {root / 'data.csv'} s3://b/k")  # str(True), as mlflow renders it

    @pytest.mark.parametrize("given, expected", [
        ("alpha=abc", "'abc' is not a float"), ("n=1.5", "'1.5' is not an int"), ("flag=maybe", "not a bool"),
        ("where=relative/path", "not a URI"), ("data=nothere.csv", "no such file or directory"),
    ])
    def test_wrong_values_name_stage_param_and_type(self, tmp_path, given, expected):
        stage, root = self.stage(tmp_path)
        items = P.parse_assignments(["alpha=1", given] if not given.startswith("alpha") else [given], ["main"])
        with pytest.raises(ParamError, match=expected) as info:
            P.resolve(stage, items, cwd=root, project_root=root, allow_extras=False)
        assert "stage 'main'" in str(info.value)

    def test_missing_required_and_bad_syntax(self, tmp_path):
        stage, root = self.stage(tmp_path)
        with pytest.raises(ParamError, match="required parameter"):
            P.resolve(stage, (), cwd=root, project_root=root, allow_extras=False)
        with pytest.raises(ParamError, match="expected KEY=VALUE"):
            P.parse_assignments(["novalue"], ["main"])
        with pytest.raises(ParamError, match="more than once"):
            P.parse_assignments(["a=1", "a=2"], ["main"])

    def test_scoping(self, tmp_path):
        items = P.parse_assignments(["train.alpha=1", "model.lr=2", "alpha=3"], ["train", "prep"])
        assert [(i.stage, i.key) for i in items] == [("train", "alpha"), (None, "model.lr"), (None, "alpha")]
