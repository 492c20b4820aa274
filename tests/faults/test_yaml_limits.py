"""YAML from a project or a configuration cannot exhaust memory or the stack: a 1 MiB size limit,
an alias (expansion) limit and a depth limit, each exit 2 with one line, within seconds."""

from __future__ import annotations

import time

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
    ("entry_points:\n  main: {command: 'true'}\n" + "# padding\n" * 120_000, "over the limit of"),
], ids=["alias-bomb", "deep", "over-1MiB"])
def test_an_mlproject_over_a_limit_is_exit_2(cli, make_project, text, needle):
    root = make_project(text)
    started = time.monotonic()
    _one_line_exit_2(cli("run", str(root), timeout=60), started, needle)
    started = time.monotonic()  # the schedules: section is read from the same file
    _one_line_exit_2(cli("schedule", "sync", str(root), timeout=60), started, needle)


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
