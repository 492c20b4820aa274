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
    assert shell("runs", "") == ["list", "show", "diff", "sync"]
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


def test_zsh_and_fish_scripts_name_the_same_verbs(cli):
    zsh = cli("completion", "zsh").out
    assert zsh.startswith("#compdef orchestra\n") and "bashcompinit" in zsh and "complete -F _orchestra orchestra" in zsh
    fish = cli("completion", "fish").out
    assert "complete -c orchestra -n __fish_use_subcommand -a 'run plan runs" in fish
    assert "-l load-from -r -a '(orchestra __complete runs)'" in fish
    for shell_name in ("zsh", "fish"):
        if shutil.which(shell_name):  # syntax-checked when the shell is here
            checked = subprocess.run([shell_name, "-n"], input=cli("completion", shell_name).out, text=True,
                                     capture_output=True, timeout=60)
            assert checked.returncode == 0, checked.stderr


def test_complete_helper_is_quiet_on_a_broken_project_and_an_empty_home(cli, make_project):
    root = make_project("entry_points: [not, a, mapping]\n")
    result = cli("__complete", "entry-points", str(root))
    assert result.code == 0 and result.out == "" and result.err == ""
    result = cli("__complete", "runs")
    assert result.code == 0 and result.out == "" and result.err == ""
    assert cli("completion", "tcsh").code == 2
