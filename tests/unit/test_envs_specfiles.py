"""conda.yaml / python_env.yaml parsing: values, channel URIs, and errors with key paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestra.envs.specfiles import channel_uri, parse_conda, parse_python_env
from orchestra.core.errors import EnvError


def test_channel_uris_are_absolute(tmp_path):
    assert channel_uri("./ch", tmp_path) == (tmp_path / "ch").as_uri()
    assert channel_uri("../ch", tmp_path / "a") == (tmp_path / "ch").as_uri()
    assert channel_uri("/srv/ch", tmp_path) == "file:///srv/ch"
    assert channel_uri("file:///srv/ch", tmp_path) == "file:///srv/ch"
    assert channel_uri("http://127.0.0.1:8000/ch", tmp_path) == "http://127.0.0.1:8000/ch"
    assert channel_uri("conda-forge", tmp_path) == "https://conda.anaconda.org/conda-forge"


def test_parse_conda_relative_to_the_spec_dir(tmp_path):
    spec_file = tmp_path / "envs" / "train.yaml"
    spec_file.parent.mkdir()
    spec_file.write_text("name: train\nchannels: [../channel, conda-forge]\n"
                         "dependencies:\n  - python=3.11\n  - numpy >=1.2\n  - 3\n  - pip:\n    - tinypkg==1.0\n")
    spec = parse_conda(spec_file, tmp_path)
    assert spec.name == "train"
    assert spec.channels == ((tmp_path / "channel").as_uri(), "https://conda.anaconda.org/conda-forge")
    assert spec.dependencies == ("python=3.11", "numpy >=1.2", "3")
    assert spec.pip == ("tinypkg==1.0",)


@pytest.mark.parametrize("text, where", [
    ("- a\n", "envs/e.yaml"),
    ("channels: [x]\ndependencies: [a]\nfoo: 1\n", "envs/e.yaml: foo"),
    ("channels: x\n", "envs/e.yaml: channels"),
    ("channels: [x, 1]\n", r"envs/e.yaml: channels\[1\]"),
    ("channels: [x]\ndependencies: {a: 1}\n", "envs/e.yaml: dependencies"),
    ("channels: [x]\ndependencies:\n  - a\n  - {pip: a}\n", r"envs/e.yaml: dependencies\[1\].pip"),
    ("channels: [x]\ndependencies:\n  - a\n  - {conda: [a]}\n", r"envs/e.yaml: dependencies\[1\]"),
    ("dependencies: [a]\n", "envs/e.yaml: channels: no channels given"),
    ("name: [x\n", "envs/e.yaml: not valid YAML at line"),
    ("name: 3\n", "envs/e.yaml: name"),
])
def test_bad_conda_yaml(tmp_path, text, where):
    spec_file = tmp_path / "envs" / "e.yaml"
    spec_file.parent.mkdir()
    spec_file.write_text(text)
    with pytest.raises(EnvError, match=f"^{where}") as info:
        parse_conda(spec_file, tmp_path)
    assert "\n" not in str(info.value)


def test_parse_python_env(tmp_path):
    f = tmp_path / "python_env.yaml"
    f.write_text("python: 3.11\nbuild_dependencies: [pip, setuptools]\ndependencies: [tinypkg==1.0, -r req.txt]\n")
    spec = parse_python_env(f, tmp_path)
    assert (spec.python, spec.requirements) == ("3.11", ("pip", "setuptools", "tinypkg==1.0", "-r req.txt"))


@pytest.mark.parametrize("text, where", [
    ("dependencies: []\n", "python_env.yaml: python: missing"),
    ("python: latest\n", "python_env.yaml: python: 'latest' is not a Python version"),
    ("python: '3.11'\nbuild_dependencies: pip\n", "python_env.yaml: build_dependencies: must be a list"),
    ("python: '3.11'\ndependencies: [a, {b: 1}]\n", r"python_env.yaml: dependencies\[1\]"),
    ("python: '3.11'\nchannels: [a]\n", "python_env.yaml: channels: unknown key"),
    ("[1, 2]\n", "python_env.yaml: must be a mapping"),
])
def test_bad_python_env_yaml(tmp_path, text, where):
    f = tmp_path / "python_env.yaml"
    f.write_text(text)
    with pytest.raises(EnvError, match=f"^{where}"):
        parse_python_env(f, tmp_path)


def test_missing_file_is_an_env_error(tmp_path):
    with pytest.raises(EnvError, match="cannot read"):
        parse_python_env(Path(tmp_path / "nope.yaml"), tmp_path)
