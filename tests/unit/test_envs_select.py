"""Which environment a stage gets: MLflow's rules and the --env-manager override."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestra.envs import select
from orchestra.envs.specfiles import CondaSpec, conda_to_python_env
from orchestra.core.errors import EnvError, NotSupportedError
from orchestra.mlproject.load import load
from orchestra.mlproject.model import EnvSpec
from tests.conftest import write_project

CONDA = EnvSpec(kind="conda", file=Path("/p/conda.yaml"), declared_at="MLproject: conda_env")
LOCK = EnvSpec(kind="conda", file=Path("/p/conda-lock.yml"), declared_at="MLproject: conda_env")
PY = EnvSpec(kind="python", file=Path("/p/python_env.yaml"), declared_at="MLproject: python_env")


@pytest.mark.parametrize("spec, manager, kind", [
    (None, None, "local"), (None, "local", "local"), (None, "uv", "python-bare"), (None, "virtualenv", "python-bare"),
    (None, "conda", "local"),
    (CONDA, None, "conda"), (CONDA, "conda", "conda"), (CONDA, "uv", "python-from-conda"),
    (CONDA, "virtualenv", "python-from-conda"), (CONDA, "local", "local"),
    (LOCK, None, "conda-lock"), (LOCK, "conda", "conda-lock"),
    (PY, None, "python"), (PY, "uv", "python"), (PY, "virtualenv", "python"), (PY, "local", "local"),
    (EnvSpec(kind="local"), "uv", "local"),
])
def test_select(spec, manager, kind):
    assert select(spec, manager).kind == kind


def test_refusals_name_where_the_env_was_declared():
    with pytest.raises(EnvError, match="MLproject: python_env: a python_env project cannot be run with --env-manager conda"):
        select(PY, "conda")
    with pytest.raises(EnvError, match="cannot install a conda-lock file"):
        select(LOCK, "uv")
    with pytest.raises(NotSupportedError, match="docker_env"):
        select(EnvSpec(kind="docker", declared_at="MLproject: docker_env"), None)


def test_mlflow_rule_python_env_yaml_then_conda_yaml_then_local(tmp_path):
    root = write_project(tmp_path / "a", "name: a\nentry_points:\n  main:\n    command: 'true'\n",
                         {"conda.yaml": "channels: [x]\n", "python_env.yaml": "python: '3.11'\n"})
    assert load(root).env.file.name == "python_env.yaml"
    (root / "python_env.yaml").unlink()
    assert load(root).env.file.name == "conda.yaml"
    (root / "conda.yaml").unlink()
    assert load(root).env is None and select(load(root).env).kind == "local"
    # A stage's own env beats the project's.
    root = write_project(tmp_path / "b", "name: b\nconda_env: c.yaml\nentry_points:\n  main:\n    command: 'true'\n"
                                         "    python_env: p.yaml\n  other:\n    command: 'true'\n    env: local\n",
                         {"c.yaml": "channels: [x]\n", "p.yaml": "python: '3.11'\n"})
    spec = load(root)
    assert [select(spec.env_for(s)).kind for s in spec.entry_points.values()] == ["python", "local"]


def test_conda_yaml_for_uv_follows_mlflow():
    spec = CondaSpec(file=Path("/p/conda.yaml"), name="x", channels=("https://c",),
                     dependencies=("python=3.11.7", "pip=23.1", "numpy>=1.2", "setuptools", "r-base"),
                     pip=("tinypkg==1.0", "-r req.txt"))
    env, dropped, warning = conda_to_python_env(spec, Path("/p"))
    assert env.python == "3.11.7"
    assert env.build_dependencies == ("pip==23.1", "setuptools")
    assert env.dependencies == ("tinypkg==1.0", "-r req.txt")
    assert dropped == ("numpy>=1.2", "r-base")
    assert "conda packages not installed: numpy>=1.2, r-base" in warning


def test_conda_yaml_for_uv_without_python_uses_the_current_one_and_rejects_bad_pins():
    env, dropped, warning = conda_to_python_env(CondaSpec(Path("/p/c.yaml"), None, (), ("pip",)), Path("/p"))
    assert env.python.count(".") == 2 and "no python version" in warning and dropped == ()
    for bad in ("python", "python>3.8"):
        with pytest.raises(EnvError, match=r"c.yaml: dependencies\[0\]"):
            conda_to_python_env(CondaSpec(Path("/p/c.yaml"), None, (), (bad,)), Path("/p"))
