"""Shell completion driven for real: the generated bash function run by bash with COMP_WORDS set."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

PIPELINE = """
entry_points:
  prepare: {command: "echo p"}
  train: {command: "echo t", depends_on: [prepare]}
"""


@pytest.fixture
def shell(cli, tmp_path):
    """``complete(*words)``: what bash offers for the last word (words start after ``orchestra``)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    wrapper = bindir / "orchestra"  # the command the script calls back is the one the user typed
    wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} -m orchestra \"$@\"\n")
    wrapper.chmod(0o755)
    script = tmp_path / "orchestra.bash"
    generated = cli("completion", "bash")
    assert generated.code == 0, generated.err
    script.write_text(generated.out)
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}

    def complete(*words: str, cwd: Path | None = None) -> list[str]:
        line = " ".join(f"'{w}'" for w in ("orchestra", *words))
        program = (f"source {script}; complete -p orchestra; COMP_WORDS=({line}); "
                   f"COMP_CWORD={len(words)}; _orchestra; printf '%s\\n' \"${{COMPREPLY[@]}}\"")
        result = subprocess.run(["bash", "-c", program], capture_output=True, text=True, env=env, cwd=cwd, timeout=60)
        assert result.returncode == 0 and result.stderr == "", result.stderr
        first, *offered = result.stdout.splitlines()
        assert first == "complete -F _orchestra orchestra"
        return [o for o in offered if o]

    return complete


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_completes_verbs_flags_choices_entry_points_and_run_ids(shell, cli, make_project):
    assert shell("ru") == ["run", "runs"]
    assert shell("runs", "") == ["list", "show", "compare", "diff", "resume", "sync"]
    assert "--load-from" in shell("run", ".", "--lo") and "--load-stages" in shell("run", ".", "--lo")
    assert shell("run", ".", "--env-manager", "u") == ["uv"]
    root = make_project(PIPELINE)
    assert shell("run", str(root), "-e", "") == ["prepare", "train"]
    assert shell("run", str(root), "--load-stages", "prepare,t") == ["prepare,train"]
    assert shell("run", "-e", "tr", cwd=root) == ["train"]  # no URI yet: the project in the current directory
    first = json.loads(cli("run", str(root), "--json", "-e", "train").out)["run_id"]
    second = json.loads(cli("run", str(root), "--json", "-e", "prepare").out)["run_id"]
    assert set(shell("runs", "show", "")) == {first, second}
    assert shell("runs", "diff", first[:4]) == [first] or first[:4] == second[:4]
    assert set(shell("run", str(root), "--load-from", "")) == {first, second}
    assert set(shell("logs", "")) == {first, second}
    assert shell("run", str(root.parent / root.name[:-1])) != []  # a URI completes as a path


def _script(cli, tmp_path, shell_name: str) -> Path:
    script = tmp_path / f"orchestra.{shell_name}"
    generated = cli("completion", shell_name)
    assert generated.code == 0, generated.err
    script.write_text(generated.out)
    return script


def _run_shell(argv: list[str], tmp_path: Path, cwd: Path) -> list[str]:
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    wrapper = bindir / "orchestra"
    wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} -m orchestra \"$@\"\n")
    wrapper.chmod(0o755)
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=120)
    assert result.returncode == 0, result.stderr
    return [line.split("\t")[0] for line in result.stdout.splitlines() if line]


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed (.ci/run installs it)")
def test_zsh_runs_the_same_function_through_bashcompinit(cli, make_project, tmp_path):
    """Called directly (zsh's completion system filters by the typed prefix itself)."""
    root = make_project(PIPELINE)
    run_id = json.loads(cli("run", str(root), "--json", "-e", "prepare").out)["run_id"]
    script = _script(cli, tmp_path, "zsh")
    program = (f"autoload -U compinit && compinit -u; source {script}; setopt ksharrays; "
               "COMP_WORDS=(orchestra run . -e t); COMP_CWORD=4; _orchestra; print -l -- \"${COMPREPLY[@]}\"; "
               "print -- ---; COMP_WORDS=(orchestra runs show ''); COMP_CWORD=3; _orchestra; "
               "print -l -- \"${COMPREPLY[@]}\"")
    offered = _run_shell(["zsh", "-c", program], tmp_path, root)
    assert offered == ["prepare", "train", "---", run_id]


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish is not installed (.ci/run installs it)")
def test_fish_completes_verbs_flags_entry_points_and_run_ids(cli, make_project, tmp_path):
    root = make_project(PIPELINE)
    run_id = json.loads(cli("run", str(root), "--json", "-e", "prepare").out)["run_id"]
    script = _script(cli, tmp_path, "fish")
    assert subprocess.run(["fish", "-n", str(script)], capture_output=True, timeout=60).returncode == 0
    asks = ["orchestra ru", "orchestra runs ", "orchestra run . --load-f", "orchestra run . -e ",
            "orchestra run . --load-from ", "orchestra runs show ", "orchestra run . --env-manager u"]
    program = f"source {script}; " + "; ".join(f"complete -C {a!r}; echo ---" for a in asks)
    offered = _run_shell(["fish", "-c", program], tmp_path, root)
    answers, current = [], []
    for line in offered:
        if line == "---":
            answers.append(current)
            current = []
        else:
            current.append(line)
    assert answers == [["run", "runs"], ["compare", "diff", "list", "resume", "show", "sync"], ["--load-from"], ["prepare", "train"],
                       [run_id], [run_id], ["uv"]]


def test_complete_helper_is_quiet_on_a_broken_project_and_an_empty_home(cli, make_project):
    root = make_project("entry_points: [not, a, mapping]\n")
    result = cli("__complete", "entry-points", str(root))
    assert result.code == 0 and result.out == "" and result.err == ""
    result = cli("__complete", "runs")
    assert result.code == 0 and result.out == "" and result.err == ""
    assert cli("completion", "tcsh").code == 2
