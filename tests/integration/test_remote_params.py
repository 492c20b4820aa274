"""Remote ``path`` parameters against real servers: http (a server in the test's thread),
``runs:/`` of an orchestra run, ``runs:/`` of a run on a real ``mlflow server``, and ``s3://``
on moto's server. Each is downloaded before the stage starts, its sha256 joins the cache key
(same bytes load, changed bytes rerun), and plans download nothing."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
import requests

from tests.integration.fileserver import FileServer
from tests.mlflow_server import MlflowServer, mlflow_server  # noqa: F401

pytestmark = pytest.mark.integration

CONSUMER = """
name: consumer
entry_points:
  main:
    parameters:
      data: path
    command: "cat {data} > {outputs}/o.txt; echo {data} > {outputs}/where.txt"
"""


def run(cli, project: Path, value: str, *args: str, env: dict[str, str] | None = None) -> dict:
    result = cli("run", str(project), "-P", f"data={value}", "--json", "-q", "--env-manager", "local", *args, env=env)
    assert result.code == 0, result.err
    return json.loads(result.out)


def stage(record: dict) -> dict:
    return record["stages"][0]


def read(record: dict, name: str = "o.txt") -> str:
    return (Path(stage(record)["outputs_dir"]) / name).read_text()


def where(record: dict) -> Path:
    return Path(read(record, "where.txt").strip())


def one_line_error(result, *needles: str) -> None:
    assert result.code == 2, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.err, result.err
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_http_download_key_plan_and_storage_dir(cli, project, tmp_path, orchestra_home):
    consumer = project(CONSUMER)
    served = tmp_path / "served"
    served.mkdir()
    (served / "d.txt").write_text("v1\n")
    with FileServer(served) as server:
        url = server.url("d.txt", auth="bob:pw-secret@")
        first = run(cli, consumer, url)
        assert read(first) == "v1\n"
        assert where(first).is_relative_to(orchestra_home / "runs" / first["run_id"])  # the run's storage directory
        assert first["params"]["data"] == server.url("d.txt")  # logged as given, without credentials
        assert "pw-secret" not in json.dumps(first)
        assert stage(run(cli, consumer, url))["status"] == "LOADED"  # same bytes downloaded again
        gets = len(server.gets)
        plan = cli("plan", str(consumer), "-P", f"data={url}", "--env-manager", "local")
        dry = cli("run", str(consumer), "-P", f"data={url}", "--env-manager", "local", "--dry-run")
        assert plan.code == 0 and dry.code == 0, plan.err + dry.err
        assert "downloaded when the run starts" in plan.out + plan.err
        assert len(server.gets) == gets  # neither downloaded anything
        (served / "d.txt").write_text("v2\n")
        storage = tmp_path / "storage"
        changed = run(cli, consumer, url, "--storage-dir", str(storage))
        assert stage(changed)["status"] == "FINISHED" and read(changed) == "v2\n"
        assert where(changed).is_relative_to(storage) and where(changed).read_text() == "v2\n"
        assert stage(run(cli, consumer, url, env={"MLFLOW_TMP_DIR": str(tmp_path / "tmpdir")}))["status"] == "LOADED"
        assert [p.read_text() for p in (tmp_path / "tmpdir").glob("orchestra-*/main.data/d.txt")] == ["v2\n"]
        missing = cli("run", str(consumer), "-P", f"data={server.url('nope.txt')}", "--env-manager", "local")
        one_line_error(missing, "HTTP 404", server.url("nope.txt"))
        too_big = cli("run", str(consumer), "-P", f"data={url}", "--env-manager", "local",
                      env={"ORCHESTRA_MAX_DOWNLOAD_BYTES": "2"})
        one_line_error(too_big, "larger than 2 bytes")
    runs = sorted(p.name for p in (orchestra_home / "runs").iterdir())
    assert len(runs) == 4  # the failed downloads left no run directory behind


def test_unsupported_scheme_is_one_line(cli, project):
    result = cli("run", str(project(CONSUMER)), "-P", "data=gs://bucket/key", "--env-manager", "local")
    one_line_error(result, "gs:", "runs:/RUN_ID/PATH")


PRODUCER = """
name: producer
entry_points:
  make:
    command: "mkdir -p {outputs}/model && echo weights > {outputs}/model/w.txt && echo card > {outputs}/card.txt"
  other:
    command: "echo other > {outputs}/x.txt"
    depends_on: [make]
"""


def test_runs_uri_of_an_orchestra_run(cli, project, tmp_path):
    producer = project(PRODUCER, name="producer")
    made = json.loads(cli("run", str(producer), "--json", "-q", "--env-manager", "local").out)
    rid = made["run_id"]
    consumer = project(CONSUMER, name="consumer")
    file_ref = run(cli, consumer, f"runs:/{rid}/make/card.txt")
    assert read(file_ref) == "card\n"
    dir_consumer = project(CONSUMER.replace("cat {data}", "cat {data}/w.txt"), name="dirconsumer")
    assert read(run(cli, dir_consumer, f"runs:/{rid}/make/model")) == "weights\n"
    assert stage(run(cli, consumer, f"runs:/{rid}/make/card.txt"))["status"] == "LOADED"
    single = project(CONSUMER, name="single")  # a run of one stage: the stage may be left out
    assert read(run(cli, single, f"runs:/{file_ref['run_id']}/o.txt")) == "card\n"
    one_line_error(cli("run", str(consumer), "-P", f"data=runs:/{rid}/make/absent.txt", "--env-manager", "local"),
                   "no 'absent.txt'", "card.txt")
    one_line_error(cli("run", str(consumer), "-P", f"data=runs:/{rid}/card.txt", "--env-manager", "local"),
                   "name a stage", "make")
    one_line_error(cli("run", str(consumer), "-P", f"data=runs:/{rid}/make/../../x", "--env-manager", "local"),
                   "'..'")


def _mlflow_run_with_artifact(server: MlflowServer, files: dict[str, bytes]) -> tuple[str, str]:
    experiment = f"remote-params-{uuid.uuid4().hex[:8]}"
    api = f"{server.url}/api/2.0/mlflow"
    exp_id = requests.post(f"{api}/experiments/create", json={"name": experiment}, timeout=10).json()["experiment_id"]
    created = requests.post(f"{api}/runs/create", json={"experiment_id": exp_id, "start_time": int(time.time() * 1000)},
                            timeout=10).json()["run"]["info"]
    root = created["artifact_uri"].removeprefix("mlflow-artifacts:").lstrip("/")
    put_artifacts(server, root, files)
    return created["run_id"], root


def put_artifacts(server: MlflowServer, root: str, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        response = requests.put(f"{server.url}/api/2.0/mlflow-artifacts/artifacts/{root}/{name}", data=data, timeout=10)
        assert response.status_code == 200, response.text


def test_runs_uri_of_a_run_on_a_real_mlflow_server(cli, project, mlflow_server: MlflowServer):
    run_id, root = _mlflow_run_with_artifact(mlflow_server, {"model/w.txt": b"w1\n", "model/sub/b.txt": b"b\n",
                                                            "card.txt": b"card\n"})
    env = {"MLFLOW_TRACKING_URI": mlflow_server.url}
    consumer = project(CONSUMER)
    first = run(cli, consumer, f"runs:/{run_id}/card.txt", env=env)
    assert read(first) == "card\n"
    dir_consumer = project(CONSUMER.replace("cat {data}", "cat {data}/w.txt {data}/sub/b.txt"), name="dirs")
    assert read(run(cli, dir_consumer, f"runs:/{run_id}/model", env=env)) == "w1\nb\n"
    assert stage(run(cli, consumer, f"runs:/{run_id}/card.txt", env=env))["status"] == "LOADED"
    put_artifacts(mlflow_server, root, {"card.txt": b"card v2\n"})
    changed = run(cli, consumer, f"runs:/{run_id}/card.txt", env=env)
    assert stage(changed)["status"] == "FINISHED" and read(changed) == "card v2\n"
    one_line_error(cli("run", str(consumer), "-P", f"data=runs:/{run_id}/absent.txt", "--env-manager", "local", env=env),
                   "no artifact 'absent.txt'")
    one_line_error(cli("run", str(dir_consumer), "-P", f"data=runs:/{run_id}/model", "--env-manager", "local",
                       env={**env, "ORCHESTRA_MAX_DOWNLOAD_BYTES": "4"}), "larger than 4 bytes")
    one_line_error(cli("run", str(consumer), "-P", f"data=runs:/{uuid.uuid4().hex}/x", "--env-manager", "local", env=env),
                   "tracking server")
    one_line_error(cli("run", str(consumer), "-P", f"data=runs:/{run_id}/card.txt", "--env-manager", "local"),
                   "no tracking server")


@pytest.fixture
def s3(monkeypatch):
    pytest.importorskip("s3fs")
    pytest.importorskip("moto.server")
    from tests.integration.daskcluster import BUCKET, s3_env

    env = {k: v for k, v in s3_env("unused").items() if k != "ORCHESTRA_ARTIFACTS"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    return s3fs.S3FileSystem(), f"{BUCKET}/params-{uuid.uuid4().hex[:8]}"


def test_s3_object_and_prefix_on_moto(cli, project, s3):
    fs, prefix = s3
    fs.pipe(f"{prefix}/d.txt", b"s3 v1\n")
    fs.pipe(f"{prefix}/dir/a.txt", b"a\n")
    fs.pipe(f"{prefix}/dir/b/c.txt", b"c\n")
    consumer = project(CONSUMER)
    assert read(run(cli, consumer, f"s3://{prefix}/d.txt")) == "s3 v1\n"
    assert stage(run(cli, consumer, f"s3://{prefix}/d.txt"))["status"] == "LOADED"
    fs.pipe(f"{prefix}/d.txt", b"s3 v2\n")
    changed = run(cli, consumer, f"s3://{prefix}/d.txt")
    assert stage(changed)["status"] == "FINISHED" and read(changed) == "s3 v2\n"
    dirs = project(CONSUMER.replace("cat {data}", "cat {data}/a.txt {data}/b/c.txt"), name="dirs")
    assert read(run(cli, dirs, f"s3://{prefix}/dir")) == "a\nc\n"
    one_line_error(cli("run", str(consumer), "-P", f"data=s3://{prefix}/absent.txt", "--env-manager", "local"),
                   "no such object")
    one_line_error(cli("run", str(dirs), "-P", f"data=s3://{prefix}/dir", "--env-manager", "local",
                       env={"ORCHESTRA_MAX_DOWNLOAD_BYTES": "3"}), "larger than 3 bytes")


def test_mlflow_example_project_line_count_downloads_into_storage_dir(cli, project, s3, tmp_path):
    """mlflow's tests/resources/example_project ``line_count`` entry point (a ``path`` parameter) given
    an s3:// value, as mlflow's own path-parameter test does, with ``--storage-dir``."""
    fs, prefix = s3
    fs.pipe(f"{prefix}/lines.txt", b"one\ntwo\nthree\n")
    example = project("""
entry_points:
  main:
    command: "echo 'Main entry point'"
  line_count:
    parameters:
      path: path
    command: "cat {path} | wc -l > {outputs}/count.txt; echo {path} > {outputs}/where.txt"
""")
    storage = tmp_path / "storage"
    result = cli("run", str(example), "-e", "line_count", "-P", f"path=s3://{prefix}/lines.txt", "--storage-dir",
                 str(storage), "--json", "-q", "--env-manager", "local")
    assert result.code == 0, result.err
    record = json.loads(result.out)
    assert read(record, "count.txt").strip() == "3"
    local = where(record)
    assert local.is_relative_to(storage) and local.name == "lines.txt" and local.read_bytes() == b"one\ntwo\nthree\n"
    assert record["params"]["path"] == f"s3://{prefix}/lines.txt"
