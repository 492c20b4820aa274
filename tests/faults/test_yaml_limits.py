"""YAML from a project or a configuration cannot exhaust memory or the stack: a size limit
(``ORCHESTRA_MAX_YAML_BYTES``, default 16 MiB), an alias (expansion) limit and a depth limit, each
exit 2 with one line, within seconds; a generated project under the size limit plans."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

# ~500 bytes that expand to 10^9 nodes.
BOMB = "a: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8))


def _one_line_exit_2(result, started: float, needle: str) -> None:
    assert result.code == 2, result.err
    assert needle in result.err and len(result.err.strip().splitlines()) == 1, result.err
    assert time.monotonic() - started < 30


@pytest.mark.parametrize("text,needle", [
    ("entry_points:\n  main: {command: 'true'}\n" + BOMB, "expand to more than"),
    ("entry_points:\n  main: {command: 'true'}\nx: " + "[" * 5000 + "]" * 5000 + "\n", "nests deeper than"),
    ("entry_points:\n  main: {command: 'true'}\n" + "# padding\n" * 120_000,
     "over the limit of 1000000 (set ORCHESTRA_MAX_YAML_BYTES"),
], ids=["alias-bomb", "deep", "over-the-size-limit"])
def test_an_mlproject_over_a_limit_is_exit_2(cli, make_project, text, needle):
    root = make_project(text)
    env = {"ORCHESTRA_MAX_YAML_BYTES": "1000000"}
    started = time.monotonic()
    _one_line_exit_2(cli("run", str(root), timeout=60, env=env), started, needle)
    started = time.monotonic()  # the schedules: section is read from the same file
    _one_line_exit_2(cli("schedule", "sync", str(root), timeout=60, env=env), started, needle)


def test_a_generated_10000_stage_mlproject_plans(cli, make_project):
    lines = ["entry_points:", "  s0:", "    command: \"echo 0 > {outputs}/x\""]
    for i in range(1, 10_000):
        lines += [f"  s{i}:", "    parameters: {p: {type: string, default: \"1\"}}",
                  f"    command: \"cat {{inputs.s{i - 1}}}/x > {{outputs}}/x && echo {{p}} >> {{outputs}}/x\"",
                  f"    depends_on: [s{i - 1}]"]
    text = "\n".join(lines) + "\n"
    assert len(text) > 1 << 20  # over the old 1 MiB limit, under the default 16 MiB
    result = cli("plan", str(make_project(text)), "-e", "s9999", timeout=120)
    assert result.code == 0, result.err
    assert "s9999" in result.out + result.err


def test_a_hooks_file_bomb_is_exit_2(cli, make_project, tmp_path):
    root = make_project("entry_points:\n  main: {command: 'true'}\n")
    hooks = tmp_path / "hooks.yaml"
    hooks.write_text(BOMB)
    started = time.monotonic()
    _one_line_exit_2(cli("run", str(root), "--hooks", str(hooks), timeout=60), started, "expand to more than")


def test_ordinary_anchors_still_load(cli, make_project):
    root = make_project("""
        common: &cmd "echo hi > {outputs}/x"
        entry_points:
          main: {command: *cmd}
    """)
    result = cli("run", str(root))
    assert result.code == 0, result.err


@pytest.mark.parametrize("value", ["10MB", "1.5", "0", "-5", "lots"])
def test_a_bad_size_limit_is_exit_2_not_the_default(cli, make_project, value):
    """A typo in a limit would otherwise quietly become the 16 MiB default."""
    root = make_project("entry_points:\n  main: {command: 'true'}\n")
    result = cli("run", str(root), timeout=60, env={"ORCHESTRA_MAX_YAML_BYTES": value})
    assert result.code == 2 and "Traceback" not in result.err, result.err
    assert len(result.err.strip().splitlines()) == 1, result.err
    assert f"ORCHESTRA_MAX_YAML_BYTES={value!r} is not a byte count" in result.err
    assert "positive whole number of bytes" in result.err
    assert not (Path(os.environ["ORCHESTRA_HOME"]) / "runs.sqlite").exists()  # stopped before the store
