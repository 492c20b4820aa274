"""Paths cannot escape: ``#subdir`` and ``path`` defaults of fetched projects stay in the checkout.

Real git repositories fetched over file://."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.integration.gitservers import git

pytestmark = pytest.mark.integration


def _repo(tmp_path: Path, files: dict[str, str], links: dict[str, str]) -> str:
    work = tmp_path / "work"
    work.mkdir()
    git("init", "-q", "-b", "main", cwd=work)
    for name, text in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text)
    for name, target in links.items():
        os.symlink(target, work / name)
    git("add", "-A", cwd=work)
    git("commit", "-qm", "one", cwd=work)
    git("clone", "-q", "--bare", str(work), str(tmp_path / "repo.git"))
    return f"file://{tmp_path / 'repo.git'}"


@pytest.fixture
def outside(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "MLproject").write_text("entry_points:\n  main: {command: 'echo escaped > {outputs}/x'}\n")
    (elsewhere / "secret").write_text("not yours\n")
    return elsewhere


def test_a_subdir_symlink_out_of_the_repository_is_exit_2(cli, tmp_path, outside):
    url = _repo(tmp_path, {"MLproject": "entry_points:\n  main: {command: 'true'}\n"}, {"escape": str(outside)})
    result = cli("run", url + "#escape")
    assert result.code == 2, result.err
    assert "leads outside the repository" in result.err and len(result.err.strip().splitlines()) == 1


def test_a_subdir_symlink_out_of_a_local_project_is_exit_2(cli, make_project, outside):
    root = make_project("entry_points:\n  main: {command: 'true'}\n")
    os.symlink(outside, root / "escape")
    result = cli("run", f"{root}#escape")
    assert result.code == 2, result.err
    assert "leads outside" in result.err


@pytest.mark.parametrize("default", ["link/secret", "{outside}/secret"])
def test_a_path_default_of_a_fetched_project_stays_inside_it(cli, tmp_path, outside, default):
    mlproject = ("entry_points:\n  main:\n    parameters: {data: {type: path, default: '%s'}}\n"
                 "    command: 'cat {data} > {outputs}/copy'\n") % default.format(outside=outside)
    url = _repo(tmp_path, {"MLproject": mlproject}, {"link": str(outside)})
    result = cli("run", url)
    assert result.code == 2, result.err
    assert "leads outside the fetched project" in result.err


def test_a_path_default_inside_a_fetched_project_still_works(cli, tmp_path):
    mlproject = ("entry_points:\n  main:\n    parameters: {data: {type: path, default: data/in.txt}}\n"
                 "    command: 'cat {data} > {outputs}/copy'\n")
    result = cli("run", _repo(tmp_path, {"MLproject": mlproject, "data/in.txt": "x\n"}, {}))
    assert result.code == 0, result.err
