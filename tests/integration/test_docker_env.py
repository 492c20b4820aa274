"""docker_env stages on a real docker engine (Debian's docker.io), with local busybox images.

Nothing is pulled: each image is ``docker import``ed from a busybox-static root (tests/dockerkit).
Skips only where no engine can exist here (see ``dockerkit.require_engine``); under ``.ci/run``,
which starts one, a missing engine fails.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import dockerkit
from tests.conftest import run_cli
from tests.mlflow_server import MlflowServer, mlflow_server  # noqa: F401


@pytest.fixture(scope="module")
def engine() -> str:
    return dockerkit.require_engine()


@pytest.fixture
def image(engine: str):
    """A fresh busybox image under a unique tag (removed afterwards)."""
    tag = f"{dockerkit.unique('orchestra-test-busybox')}:1"
    dockerkit.import_image(engine, tag, marker="first")
    yield tag
    dockerkit.remove_images(engine, [tag, *dockerkit.IMPORTED])
    dockerkit.IMPORTED.clear()


def _record(result) -> dict:
    assert result.out.strip(), result.err
    return json.loads(result.out)


def _stage(record: dict, name: str) -> dict:
    return next(stage for stage in record["stages"] if stage["name"] == name)


def _env_lines(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


SHOW = """\
pwd > "$1/cwd.txt"
env > "$1/env.txt"
cat /data/volume.txt > "$1/volume.txt"
cat in-project.txt > "$1/project.txt"
cat /etc/marker > "$1/marker.txt"
test -t 1 && echo "tty: yes" || echo "tty: no"
"""


def test_stage_runs_in_its_image_with_volumes_environment_and_outputs(make_project, image, engine, tmp_path):
    volume = tmp_path / "vol"
    volume.mkdir()
    (volume / "volume.txt").write_text("from the volume\n")
    project = make_project(f"""
        name: shown
        docker_env:
          image: {image}
          volumes: ["{volume}:/data:ro"]
          environment: [["GREETING", "hello world"], "FROM_HOST"]
        entry_points:
          main:
            command: "sh show.sh {{outputs}}"
    """, files={"show.sh": SHOW, "in-project.txt": "inside the project\n"})
    result = run_cli("run", str(project), "--json", "-A", "e=FROM_A=a value", "-A", "t",
                     env={"FROM_HOST": "copied", "MLFLOW_TRACKING_TOKEN": "tok-secret"})
    assert result.code == 0, result.err
    out = Path(_stage(_record(result), "main")["outputs_dir"])
    env = _env_lines((out / "env.txt").read_text())
    assert (out / "cwd.txt").read_text().strip() == "/mlflow/projects/code"  # the project, mounted
    assert (out / "project.txt").read_text() == "inside the project\n"
    assert (out / "volume.txt").read_text() == "from the volume\n"
    assert (out / "marker.txt").read_text() == "first"  # really the image's filesystem
    assert env["GREETING"] == "hello world" and env["FROM_HOST"] == "copied"
    assert env["FROM_A"] == "a value"  # -A e=NAME=value → docker run -e 'NAME=value'
    stage = _stage(_record(result), "main")
    assert "tty: yes" in Path(stage["log_paths"]["stdout"]).read_text()  # -A t → docker run -t
    # The stage gets the run endpoint's own token (never the caller's), passed by name: never on the command line.
    token = env["MLFLOW_TRACKING_TOKEN"]
    assert token and token != "tok-secret"
    assert "docker" in stage["command"] and "--network host" in stage["command"]
    assert token not in stage["command"] and "-e MLFLOW_TRACKING_TOKEN" in stage["command"]
    assert env["ORCHESTRA_STAGE"] == "main" and env["ORCHESTRA_RUN_ID"] == _record(result)["run_id"]
    assert env["ORCHESTRA_OUTPUT_DIR"].endswith(".staging-1")
    assert "HOME" in env and env.get("PATH", "").startswith("/usr/local/sbin")  # the image's, not the host's
    assert dockerkit.containers(engine, f"orchestra-{_record(result)['run_id']}") == []  # --rm


def test_per_stage_docker_env_reads_inputs_and_path_params(make_project, image, tmp_path):
    data = tmp_path / "data.txt"
    data.write_text("path param\n")
    project = make_project(f"""
        entry_points:
          prep:
            env: local
            command: "echo upstream > {{outputs}}/up.txt"
          train:
            depends_on: [prep]
            docker_env: {{image: "{image}"}}
            parameters: {{data: {{type: path, default: "{data}"}}}}
            command: "sh -c 'cat \\"$1\\"/up.txt \\"$2\\" > \\"$3\\"/both.txt' sh {{inputs.prep}} {{data}} {{outputs}}"
    """)
    result = run_cli("run", str(project), "--json")
    assert result.code == 0, result.err
    record = _record(result)
    assert Path(_stage(record, "train")["outputs_dir"], "both.txt").read_text() == "upstream\npath param\n"
    assert _stage(record, "prep")["env_key"].startswith("local")
    assert _stage(record, "train")["env_key"] == f"docker-{dockerkit.image_id(dockerkit.require_engine(), image)}"


def test_cache_key_is_the_image_id(make_project, image, engine):
    project = make_project(f"""
        docker_env: {{image: "{image}"}}
        entry_points:
          main: {{command: "cp /etc/marker {{outputs}}/marker.txt"}}
    """)
    first = _record(run_cli("run", str(project), "--json"))
    again = _record(run_cli("run", str(project), "--json"))
    assert _stage(again, "main")["status"] == "LOADED"
    dockerkit.import_image(engine, image, marker="second")  # the same tag, another image
    changed = run_cli("run", str(project), "--json")
    stage = _stage(_record(changed), "main")
    assert stage["status"] == "FINISHED" and "environment changed" in changed.err
    assert stage["env_key"] != _stage(first, "main")["env_key"]
    assert Path(stage["outputs_dir"], "marker.txt").read_text() == "second"


def test_build_image_builds_once_and_rebuilds_when_the_code_changes(make_project, image, engine):
    name = dockerkit.unique("orchestra-test-built")
    project = make_project(f"""
        name: {name}
        docker_env: {{image: "{image}"}}
        entry_points:
          main: {{command: "cp code.txt {{outputs}}/code.txt"}}
    """, files={"code.txt": "v1\n"})
    try:
        # Two runs at once: one builds, the other waits for it and reuses the image.
        procs = [subprocess.Popen([sys.executable, "-m", "orchestra", "run", str(project), "--build-image", "--json",
                                   "--no-cache"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
        outs = [proc.communicate(timeout=180) for proc in procs]
        assert [proc.returncode for proc in procs] == [0, 0], outs
        tags = dockerkit.images_of(engine, name)
        assert len(tags) == 1, tags
        builds = (Path(os.environ["ORCHESTRA_HOME"]) / "envs" / "builds.log").read_text().splitlines()
        assert len([line for line in builds if json.loads(line).get("event") == "built" and name in line]) == 1
        keys = {_stage(json.loads(out), "main")["env_key"] for out, _err in outs}
        assert keys == {f"docker-{dockerkit.image_id(engine, tags[0])}"}
        # The code is in the image (not mounted): the built WORKDIR holds the project.
        again = run_cli("run", str(project), "--build-image", "--json", "--no-cache")
        assert again.code == 0 and "built docker image" not in again.err
        assert dockerkit.images_of(engine, name) == tags
        (project / "code.txt").write_text("v2\n")
        changed = run_cli("run", str(project), "--build-image", "--json")
        assert changed.code == 0, changed.err
        assert "built docker image" in changed.err and len(dockerkit.images_of(engine, name)) == 2
        assert Path(_stage(_record(changed), "main")["outputs_dir"], "code.txt").read_text() == "v2\n"
    finally:
        dockerkit.remove_images(engine, dockerkit.images_of(engine, name))


def _wait_for_container(engine: str, part: str, deadline_s: float = 60) -> list[str]:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        found = dockerkit.containers(engine, part)
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"no container named *{part}* started")


def test_sigint_to_orchestra_removes_the_container(make_project, image, engine):
    """The stage ignores SIGTERM: the container must go with the stage's group anyway."""
    stage = dockerkit.unique("sleeper").replace("-", "_")
    project = make_project(f"""
        docker_env: {{image: "{image}"}}
        entry_points:
          {stage}: {{command: "sh -c 'trap \\"\\" TERM; echo up; sleep 300'"}}
    """)
    proc = subprocess.Popen([sys.executable, "-m", "orchestra", "run", str(project), "-e", stage],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_container(engine, stage)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=90)
    finally:
        proc.kill()
    assert proc.returncode != 0 and "KILLED" in err
    assert dockerkit.containers(engine, stage) == []


def test_sigkilled_orchestra_leaves_no_container(make_project, image, engine):
    """orchestra gets no chance to clean up: its watchdog kills the stage group, then removes
    the container (the stage ignores the SIGTERM the docker client forwards, and the client's
    death alone would leave it running)."""
    stage = dockerkit.unique("orphan").replace("-", "_")
    project = make_project(f"""
        docker_env: {{image: "{image}"}}
        entry_points:
          {stage}: {{command: "sh -c 'trap \\"\\" TERM; sleep 300'"}}
    """)
    proc = subprocess.Popen([sys.executable, "-m", "orchestra", "run", str(project), "-e", stage],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_container(engine, stage)
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 60
    while dockerkit.containers(engine, stage) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert dockerkit.containers(engine, stage) == []


def test_timeout_removes_the_container(make_project, image, engine):
    """The stage ignores SIGTERM: after the grace period its group is killed, and its container."""
    stage = dockerkit.unique("slow").replace("-", "_")
    project = make_project(f"""
        docker_env: {{image: "{image}"}}
        entry_points:
          {stage}: {{timeout: 2, command: "sh -c 'trap \\"\\" TERM; sleep 300'"}}
    """)
    result = run_cli("run", str(project), "-e", stage, timeout=120)
    assert result.code != 0 and "timed out" in result.err
    assert dockerkit.containers(engine, stage) == []


def test_stage_reaches_the_tracking_server_on_the_host(make_project, image, mlflow_server: MlflowServer):  # noqa: F811
    """busybox wget inside the container logs a metric over REST into the run's own endpoint
    (through --network host and the MLFLOW_* variables orchestra passes, its token included); the
    mirror forwards it to the stage's child run on the server."""
    experiment = dockerkit.unique("docker-exp")
    script = """\
body="{\\"run_id\\": \\"$MLFLOW_RUN_ID\\", \\"key\\": \\"in_container\\", \\"value\\": 7, \\"timestamp\\": 0}"
wget -q -O - --header "Content-Type: application/json" --header "Authorization: Bearer $MLFLOW_TRACKING_TOKEN" --post-data "$body" "$MLFLOW_TRACKING_URI/api/2.0/mlflow/runs/log-metric"
"""
    project = make_project(f"""
        docker_env: {{image: "{image}"}}
        entry_points:
          main: {{command: "sh log_metric.sh"}}
    """, files={"log_metric.sh": script})
    result = run_cli("run", str(project), "--tracking-uri", mlflow_server.url, "--experiment", experiment, "--json",
                     env={"ORCHESTRA_MLFLOW_TIMEOUT": "60"}, timeout=240)
    assert result.code == 0, result.err
    _parent, children = mlflow_server.runs_of(_record(result)["run_id"], experiment)
    metrics = {m["key"]: m["value"] for m in children["main"]["data"].get("metrics", [])}
    assert metrics.get("in_container") == 7
    tags = {t["key"]: t["value"] for t in children["main"]["data"].get("tags", [])}
    assert tags["mlflow.project.env"] == "docker" and tags["mlflow.docker.image.uri"] == image
    assert tags["mlflow.docker.image.id"] == dockerkit.image_id(dockerkit.require_engine(), image)


@pytest.mark.parametrize("how", ["no docker on PATH", "DOCKER_HOST unreachable"])
def test_no_engine_is_one_line_exit_2_never_a_host_run(make_project, tmp_path, how):
    """Simulates a machine without an engine (this one has one): PATH without any docker client,
    or DOCKER_HOST pointing at a socket nothing listens on. --env-manager local must not run it on the host."""
    marker = tmp_path / "ran-on-host"
    project = make_project(f"""
        docker_env: {{image: "busybox:latest"}}
        entry_points:
          main: {{command: "touch {marker}"}}
    """)
    if how == "no docker on PATH":
        tools = tmp_path / "bin"  # what a run needs (git, bash), and no docker client
        tools.mkdir()
        for tool in ("git", "bash", "sh"):
            found = shutil.which(tool)
            if found:
                (tools / tool).symlink_to(found)
        env = {"PATH": str(tools)}
    else:
        env = {"DOCKER_HOST": f"unix://{tmp_path}/nothing.sock"}
    for extra in ((), ("--env-manager", "local")):
        result = run_cli("run", str(project), *extra, env=env)
        assert result.code == 2, result.err
        lines = [line for line in result.err.splitlines() if line.strip()]
        assert len(lines) == 1 and "Traceback" not in result.err, result.err
        assert "MLproject: docker_env" in lines[0]
        assert ("no `docker` executable" if how == "no docker on PATH" else "nothing.sock") in lines[0]
        assert not marker.exists()


def test_bad_docker_env_entries_are_exit_2(make_project):
    bad = make_project("""
        docker_env: {image: "x", environment: [["ONLY_NAME"]]}
        entry_points:
          main: {command: "true"}
    """)
    result = run_cli("run", str(bad))
    assert result.code == 2 and "docker_env.environment[0]" in result.err and "[NAME, value]" in result.err
    unset = make_project("""
        docker_env: {image: "x", environment: ["ORCHESTRA_TEST_SURELY_UNSET"]}
        entry_points:
          main: {command: "true"}
    """)
    result = run_cli("run", str(unset))
    assert result.code == 2 and "ORCHESTRA_TEST_SURELY_UNSET is not set" in result.err


def test_env_manager_local_still_runs_in_the_container(make_project, image):
    """As with mlflow run, docker_env wins over --env-manager: never a silent host run."""
    project = make_project(f"""
        docker_env: {{image: "{image}"}}
        entry_points:
          main: {{command: "sh -c 'pwd > $ORCHESTRA_OUTPUT_DIR/cwd.txt'"}}
    """)
    result = run_cli("run", str(project), "--env-manager", "local", "--json")
    assert result.code == 0, result.err
    assert "--env-manager local does not apply to docker_env stages" in result.err
    out = Path(_stage(_record(result), "main")["outputs_dir"])
    assert (out / "cwd.txt").read_text().strip() == "/mlflow/projects/code"


def test_docker_stages_refuse_a_dask_executor(make_project):
    project = make_project("""
        docker_env: {image: "busybox:latest"}
        entry_points:
          main: {command: "true"}
    """)
    result = run_cli("run", str(project), "--executor", "dask://127.0.0.1:9")
    assert result.code == 2 and "local executor only" in result.err and len(result.err.strip().splitlines()) == 1
