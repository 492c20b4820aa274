"""The docker_env pieces that need no engine: the MLproject keys, MLflow's -A rule, and the
``docker run`` line orchestra writes (tests/integration/test_docker_env.py runs it for real)."""

from __future__ import annotations

import shlex
import textwrap
from pathlib import Path

import pytest

from orchestra.core.errors import SpecError
from orchestra.envs import Container
from orchestra.execution import container as containermod
from orchestra.mlproject.load import load


def _load(tmp_path: Path, text: str):
    (tmp_path / "MLproject").write_text(textwrap.dedent(text))
    return load(tmp_path)


def test_docker_env_keys_at_project_and_stage_level(tmp_path):
    spec = _load(tmp_path, """
        docker_env:
          image: base:1
          volumes: ["/a:/b"]
          environment: [["X", 1], "HOME_VAR"]
        entry_points:
          main: {command: "true"}
          other:
            docker_env: {image: "other:2"}
            command: "true"
    """)
    project = spec.env
    assert (project.kind, project.image, project.volumes) == ("docker", "base:1", ("/a:/b",))
    assert project.environment == (("X", "1"), "HOME_VAR")
    assert spec.env_for(spec.entry_points["main"]) is project
    stage = spec.env_for(spec.entry_points["other"])
    assert (stage.image, stage.declared_at) == ("other:2", "MLproject: entry_points.other.docker_env")


@pytest.mark.parametrize("entry", ['["ONLY"]', '["A", "b", "c"]', '[1, "b"]', '["A", [1]]'])
def test_bad_environment_entries(tmp_path, entry):
    with pytest.raises(SpecError, match=r"docker_env.environment\[0\]"):
        _load(tmp_path, f"""
            docker_env: {{image: x, environment: [{entry}]}}
            entry_points:
              main: {{command: "true"}}
        """)


def test_stage_may_not_declare_two_environments(tmp_path):
    with pytest.raises(SpecError, match="only one of"):
        _load(tmp_path, """
            entry_points:
              main: {command: "true", docker_env: {image: x}, env: local}
        """)


@pytest.mark.parametrize("pairs, argv", [
    ([("t", None)], ["-t"]),
    ([("gpus", "all")], ["--gpus", "all"]),
    ([("e", "A=1")], ["-e", "A=1"]),
    ([("privileged", None), ("memory", "1g")], ["--privileged", "--memory", "1g"]),
])
def test_docker_args_follow_mlflow(pairs, argv):
    assert containermod.docker_args(pairs) == argv


@pytest.fixture(autouse=True)
def _as_root(monkeypatch):
    """The run line as root writes it (a non-root caller adds --user: tested on its own)."""
    monkeypatch.setattr("os.geteuid", lambda: 0)


def _line(container: Container, **kwargs) -> list[str]:
    env = {"ORCHESTRA_STAGE": "s", "MLFLOW_TRACKING_TOKEN": "tok-secret", "GREETING": "hi there", "OTHER": "x"}
    command, cleanup = containermod.wrap(container, "echo {rendered}", name="orchestra-r-s-1", env=env,
                                         passed=["ORCHESTRA_STAGE", "NOT_SET"], project_dir="/proj", **kwargs)
    assert command.endswith(" echo {rendered}")  # the MLproject command follows the image, as in mlflow
    assert cleanup == (container.exe, "rm", "--force", "orchestra-r-s-1")
    return shlex.split(command.removesuffix(" echo {rendered}"))


def test_run_line_passes_variables_by_name_only():
    argv = _line(Container(exe="/usr/bin/docker", image="sha256:abc", ref="img:1", env_names=("GREETING",)))
    assert argv[:6] == ["/usr/bin/docker", "run", "--rm", "--init", "--name", "orchestra-r-s-1"]
    assert argv[-1] == "sha256:abc"  # the image id the cache key names, not the tag
    pairs = [argv[i + 1] for i, word in enumerate(argv) if word == "-e"]
    assert pairs == ["ORCHESTRA_STAGE", "MLFLOW_TRACKING_TOKEN", "GREETING"]  # NOT_SET and OTHER are left out
    assert "tok-secret" not in " ".join(argv) and "hi there" not in " ".join(argv)
    assert ["--network", "host"] == argv[6:8]
    assert ["-v", "/proj:/mlflow/projects/code", "-w", "/mlflow/projects/code"] == argv[8:12]


def test_run_line_network_and_mounts(tmp_path):
    existing = tmp_path / "in"
    existing.mkdir()
    container = Container(exe="docker", image="sha256:abc", ref="img:1", project_mounted=False,
                          volumes=("/host:/data:ro",), args=(("network", "bridge"), ("t", None)))
    argv = _line(container, writable=[str(tmp_path / "stage")], readable=[str(existing), str(tmp_path / "gone")])
    assert "host" not in argv and argv[6:9] == ["--network", "bridge", "-t"]  # -A network wins
    assert "/mlflow/projects/code" not in " ".join(argv)  # a built image carries the project
    volumes = [argv[i + 1] for i, word in enumerate(argv) if word == "-v"]
    assert volumes == [f"{tmp_path / 'stage'}:{tmp_path / 'stage'}:rw", f"{existing}:{existing}:ro", "/host:/data:ro"]


def test_container_names_are_valid():
    assert containermod.container_name("ab12", "train model/v2", 3) == "orchestra-ab12-train-model-v2-3"


def test_tracking_store_paths(tmp_path):
    assert containermod.tracking_paths({"MLFLOW_TRACKING_URI": f"file://{tmp_path}"}) == [str(tmp_path)]
    assert containermod.tracking_paths({"MLFLOW_TRACKING_URI": str(tmp_path)}) == [str(tmp_path)]
    assert containermod.tracking_paths({"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/m.db"}) == [str(tmp_path)]
    assert containermod.tracking_paths({"MLFLOW_TRACKING_URI": "http://127.0.0.1:5000"}) == []
    assert containermod.tracking_paths({}) == []


def test_non_root_callers_run_as_themselves(monkeypatch):
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    monkeypatch.setattr("os.getuid", lambda: 1000)
    monkeypatch.setattr("os.getgid", lambda: 1001)
    argv = _line(Container(exe="docker", image="sha256:abc", ref="img:1"))
    assert argv[argv.index("--user") + 1] == "1000:1001"
    argv = _line(Container(exe="docker", image="sha256:abc", ref="img:1", args=(("user", "0"),)))
    assert argv.count("--user") == 1 and argv[argv.index("--user") + 1] == "0"  # -A user=… wins
