"""Defaults render exactly as mlflow renders them: mlflow's own code (``_project_spec``'s
``EntryPoint.compute_parameters``, run in the mlflow virtualenv) against orchestra's resolve, over
the YAML literals that PyYAML types differently (booleans, octal, sexagesimal, dates, collections)."""

from __future__ import annotations

import json
import shlex
import subprocess

import pytest

from orchestra.mlproject import params as P
from orchestra.mlproject.load import load
from tests.mlflow_server import require_venv

pytestmark = pytest.mark.integration

LITERALS = [
    "yes", "no", "on", "off", "true", "True", "FALSE", "y", "1", "0", "-7", "0x1F", "0o17", "017", "1_000",
    "1.0", "1.50", ".5", "1e3", "1.0e3", "6.02e+23", "-0.0", ".inf", "-.Inf", ".nan", "12:30", "1:20:30.5",
    "2024-01-02", "2024-01-02 10:00:00", "2024-01-02T10:00:00Z", "'quoted'", '"0.50"', "[1, 2]", "{a: 1, b: [x]}",
    "[]", "{}", "a b", "it's", "'x: y'", "~/data", "$HOME", "'*.txt'", "'{braces}'",
]
TYPED = {"f": ("float", "1.50"), "i": ("int", "0x10"), "b": ("bool", "on"), "s": ("str", "012")}

MLFLOW_SIDE = """
import json, sys
from mlflow.projects._project_spec import load_project
params, _ = load_project(sys.argv[1]).get_entry_point("main").compute_parameters({}, None)
print(json.dumps(params))
"""


def test_defaults_render_as_mlflows_own_code_renders_them(tmp_path, monkeypatch):
    monkeypatch.setenv("ORCHESTRA_HOME", str(tmp_path / "home"))
    lines = ["entry_points:", "  main:", "    parameters:"]
    for i, literal in enumerate(LITERALS):
        lines.append(f"      p{i}: {{default: {literal}}}")
    for name, (kind, literal) in TYPED.items():
        lines.append(f"      {name}: {{type: {kind}, default: {literal}}}")
    lines.append("    command: 'true'")
    (tmp_path / "MLproject").write_text("\n".join(lines) + "\n")

    venv = require_venv()
    out = subprocess.run([str(venv / "bin" / "python"), "-c", MLFLOW_SIDE, str(tmp_path)], capture_output=True,
                         text=True, timeout=300, check=True).stdout
    theirs = json.loads(out.strip().splitlines()[-1])

    stage = load(tmp_path).entry_points["main"]
    resolved = P.resolve(stage, (), cwd=tmp_path, project_root=tmp_path, allow_extras=False)
    mine = {name: shlex.quote(text) for name, text in resolved.text.items()}
    assert mine == theirs
    assert theirs["p0"] == "True" and theirs["p25"] == "750" and theirs["f"] == "1.5"  # yes, 12:30, 1.50
