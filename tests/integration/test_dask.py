"""``orchestra run --executor dask://…`` through the real CLI against a real loopback cluster:
pipelines, caching, failure policy, a worker killed mid-stage, cancellation, resources, S3."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests import projects
from tests.conftest import EXAMPLES, REPO_ROOT
from tests.integration.test_kill import alive, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def dask_cluster():
    from tests.integration.daskcluster import cluster

    return cluster()


def statuses(record) -> dict[str, str]:
    return {s["name"]: s["status"] for s in record["stages"]}


def store_env(dask_cluster, store: str | None, tmp_path: Path | None = None) -> dict[str, str]:
    if store == "file":
        return {"ORCHESTRA_ARTIFACTS": f"file://{tmp_path / 'shared-store'}"}
    return dask_cluster.s3_env(f"cli-{uuid.uuid4().hex}") if store == "s3" else {}


@pytest.mark.parametrize("store", [None, "s3", "file"])
def test_pipeline_runs_on_dask_then_loads_everything(cli, project, dask_cluster, store, tmp_path):
    root = project(projects.CHAIN)
    env = store_env(dask_cluster, store, tmp_path)
    first = cli("run", str(root), "--executor", dask_cluster.url, "--json", env=env)
    assert first.code == 0, first.err
    record = json.loads(first.out)
    assert statuses(record) == {"prep": "FINISHED", "train": "FINISHED", "report": "FINISHED"}
    assert record["tags"]["mlflow.project.backend"] == "dask"
    report = {s["name"]: s for s in record["stages"]}["report"]
    assert (Path(report["outputs_dir"]) / "r.txt").read_text() == "data\nmodel\ndata\n"
    second = cli("run", str(root), "--executor", dask_cluster.url, "--json", env=env)
    assert second.code == 0, second.err
    assert set(statuses(json.loads(second.out)).values()) == {"LOADED"}
    if store == "s3":  # every output object and every attempt's manifest is in the bucket
        keys = set(_bucket_keys(dask_cluster, env["ORCHESTRA_ARTIFACTS"]))
        for stage in record["stages"]:
            for entry in stage["manifest"].values():
                assert f"objects/{entry['sha256'][:2]}/{entry['sha256']}" in keys
            assert f"runs/{record['run_id']}/{stage['name']}/1/manifest.json" in keys
            # These stages print nothing: an empty log is not uploaded (it reads as empty).
            assert f"runs/{record['run_id']}/{stage['name']}/1/logs/stdout.log" not in keys
    if store == "file":
        shared = tmp_path / "shared-store"
        assert (shared / "runs" / record["run_id"] / "report" / "1" / "manifest.json").is_file()
        assert not [p for p in shared.rglob("*") if ".tmp-" in p.name]  # every upload renamed into place


def test_outputs_loaded_from_a_local_run_reach_remote_workers_through_s3(cli, project, dask_cluster):
    root = project(projects.CHAIN.mlproject.replace('cat {inputs.train}/m.txt {inputs.prep}/d.txt > {outputs}/r.txt',
                                         'cat {inputs.train}/m.txt {inputs.prep}/d.txt > {outputs}/r.txt; echo {tag}')
                        .replace("  report:\n", "  report:\n    parameters: {tag: {type: string, default: a}}\n"))
    local = cli("run", str(root), "--json")
    assert local.code == 0, local.err
    env = store_env(dask_cluster, "s3")
    # prep and train load from the local run: their objects exist only on this machine until
    # the driver pushes them; report runs on a worker that downloads them from S3.
    remote = cli("run", str(root), "-P", "tag=b", "--executor", dask_cluster.url, "--json", env=env)
    assert remote.code == 0, remote.err
    record = json.loads(remote.out)
    assert statuses(record) == {"prep": "LOADED", "train": "LOADED", "report": "FINISHED"}
    report = {s["name"]: s for s in record["stages"]}["report"]
    assert (Path(report["outputs_dir"]) / "r.txt").read_text() == "data\nmodel\ndata\n"
    keys = set(_bucket_keys(dask_cluster, env["ORCHESTRA_ARTIFACTS"]))
    assert not any(k.startswith(f"runs/{record['run_id']}/prep/") for k in keys)  # never ran remotely
    for name in ("prep", "train"):  # ...but its outputs were pushed for the worker
        for entry in {s["name"]: s for s in record["stages"]}[name]["manifest"].values():
            assert f"objects/{entry['sha256'][:2]}/{entry['sha256']}" in keys


def _bucket_keys(dask_cluster, url: str) -> list[str]:
    import boto3

    bucket, prefix = url.removeprefix("s3://").split("/", 1)
    s3 = boto3.client("s3", endpoint_url=dask_cluster.s3_endpoint, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/")
    return [item["Key"].removeprefix(prefix + "/") for page in pages for item in page.get("Contents", [])]


@pytest.mark.parametrize("store", [None, "s3"])
def test_quickstart_on_dask_matches_the_local_run(cli, dask_cluster, store):
    local = json.loads(cli("run", str(EXAMPLES / "quickstart"), "--json", "--no-cache").out)
    remote = cli("run", str(EXAMPLES / "quickstart"), "--executor", dask_cluster.url, "--json", "--no-cache",
                 env=store_env(dask_cluster, store))
    assert remote.code == 0, remote.err
    record = json.loads(remote.out)
    assert set(statuses(record).values()) == {"FINISHED"}
    # Same inputs, same bytes: the outputs' digests agree with the local pool's.
    assert [s["manifest"] for s in record["stages"]] == [s["manifest"] for s in local["stages"]]
    assert set(record["stages"][3]["metrics"]) == {"rmse", "mae"}  # metrics came back from the worker
    assert Path(record["stages"][3]["log_paths"]["stdout"]).read_text().startswith("rmse=")


def test_failure_skips_descendants_on_dask(cli, make_project, dask_cluster):
    root = make_project("""
        entry_points:
          bad:
            command: "echo broken >&2; exit 4"
          child:
            depends_on: [bad]
            command: "true"
    """)
    result = cli("run", str(root), "--executor", dask_cluster.url, "--json")
    assert result.code == 1
    record = json.loads(result.out)
    assert statuses(record) == {"bad": "FAILED", "child": "SKIPPED"}
    assert {s["name"]: s for s in record["stages"]}["bad"]["exit_code"] == 4
    assert "[bad] | broken" in result.err


KILLED_MID_STAGE = """
entry_points:
  fragile:
    retries: 1
    command: "bash -c 'if [ $ORCHESTRA_ATTEMPT = 1 ]; then sleep 300 & echo $! > {marker}.child; echo $WORKER_LABEL > {marker}.worker; wait; else echo $ORCHESTRA_ATTEMPT > {{outputs}}/attempt; fi'"
"""


def test_worker_killed_mid_stage_is_one_failed_attempt_and_leaves_no_orphan(make_project, dask_cluster, tmp_path, cli):
    marker = tmp_path / "m"
    root = make_project(KILLED_MID_STAGE.format(marker=marker))
    proc = subprocess.Popen([sys.executable, "-m", "orchestra", "run", str(root), "-e", "fragile",
                             "--executor", dask_cluster.url, "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: Path(f"{marker}.child").exists() and Path(f"{marker}.worker").exists()
             and Path(f"{marker}.worker").read_text().strip(), what="attempt 1 to start")
    child = int(Path(f"{marker}.child").read_text())
    victim = dask_cluster.worker_pids()[Path(f"{marker}.worker").read_text().strip()]
    os.kill(victim, signal.SIGKILL)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    stage = json.loads(out)["stages"][0]
    assert stage["status"] == "FINISHED" and stage["attempts"] == 2
    assert (Path(stage["outputs_dir"]) / "attempt").read_text() == "2\n"
    assert "was lost while running it); retrying" in err
    # The dead worker's stage group is killed by its supervisor: no orphan keeps running.
    wait_for(lambda: not alive(child), what="the orphaned stage child to be killed")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_cancels_remote_stages(cli, project, dask_cluster, tmp_path, sig):
    marker = tmp_path / "started"
    root = project(projects.killable(marker))
    proc = subprocess.Popen([sys.executable, "-m", "orchestra", "run", str(root), "--executor", dask_cluster.url],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for(lambda: all(Path(f"{marker}{s}").exists() and Path(f"{marker}{s}").read_text().strip()
                         for s in (".child", ".other")), what="both stages to start")
    children = [int(Path(f"{marker}{s}").read_text()) for s in (".child", ".other")]
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()
    for child in children:
        wait_for(lambda: not alive(child), what="remote stage group to die")
    record = json.loads(cli("runs", "list", "--json").out)[0]
    assert record["status"] == "KILLED"
    assert statuses(record) == {"slow": "KILLED", "other": "KILLED", "after": "KILLED"}


def test_resources_place_stages_on_the_worker_that_has_them(cli, make_project, dask_cluster):
    stages = "".join(f"""
          g{i}:
            resources: {{gpus: 1}}
            command: "echo $WORKER_LABEL > {{outputs}}/where"
    """ for i in range(4))
    root = make_project("entry_points:" + stages)
    targets = [arg for i in range(4) for arg in ("-e", f"g{i}")]
    result = cli("run", str(root), *targets, "--executor", dask_cluster.url, "--json")
    assert result.code == 0, result.err
    where = {s["name"]: (Path(s["outputs_dir"]) / "where").read_text().strip() for s in json.loads(result.out)["stages"]}
    assert where == {f"g{i}": "gpu" for i in range(4)}


@pytest.mark.parametrize("request_, shown", [("{gpus: 2}", "GPU=2"), ("{memory: 4GB}", "MEMORY=4e+09"),
                                             ("{tpu: 1}", "tpu=1")])
def test_unsatisfiable_resources_are_exit_2_before_anything_runs(cli, make_project, dask_cluster, tmp_path,
                                                                 request_, shown):
    marker = tmp_path / "ran"
    root = make_project(f"""
        entry_points:
          first:
            command: "touch {marker}"
          big:
            depends_on: [first]
            resources: {request_}
            command: "touch {marker}"
    """)
    result = cli("run", str(root), "--executor", dask_cluster.url)
    assert result.code == 2
    line = result.err.strip()
    assert "\n" not in line and "Traceback" not in line
    assert f"stage 'big' needs {shown} but no worker of {dask_cluster.address} offers it" in line
    assert "entry_points.big.resources" in line and "GPU=1" in line  # what the workers do offer
    assert not marker.exists()
    assert json.loads(cli("runs", "list", "--json").out) == []


def test_bad_memory_size_is_a_spec_error(cli, make_project):
    root = make_project("""
        entry_points:
          main:
            resources: {memory: lots}
            command: "true"
    """)
    result = cli("run", str(root))
    assert result.code == 2
    assert "entry_points.main.resources.memory: memory 'lots' is not a size" in result.err


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_scheduler_is_exit_2_naming_the_address(cli, project):
    pytest.importorskip("distributed")
    root = project(projects.CHAIN)
    port = _free_port()
    result = cli("run", str(root), "--executor", f"dask://127.0.0.1:{port}",
                 env={"ORCHESTRA_DASK_CONNECT_TIMEOUT": "1"})
    assert result.code == 2, result.err
    assert f"cannot reach the Dask scheduler at tcp://127.0.0.1:{port}: connection refused" in result.err
    assert "Traceback" not in result.err and len(result.err.strip().splitlines()) == 1
    assert json.loads(cli("runs", "list", "--json").out) == []


def test_without_dask_installed_the_error_says_what_to_install(cli, project, tmp_path):
    poison = tmp_path / "nodask"
    poison.mkdir()
    # Importing a module whose sys.modules entry is None raises ImportError, as if not installed.
    (poison / "sitecustomize.py").write_text("import sys\nsys.modules['distributed'] = None\n")
    root = project(projects.CHAIN)
    result = cli("run", str(root), "--executor", "dask://127.0.0.1:8786",
                 env={"PYTHONPATH": os.pathsep.join([str(poison), str(REPO_ROOT)])})
    assert result.code == 2
    assert result.err.strip() == ("orchestra: error: --executor dask://: Dask is not installed "
                                  "(pip install 'orchestra[dask]')")


@pytest.mark.parametrize("value", ["dask://127.0.0.1", "dask://:8786", "ray://x:1", "dask://h:1/x"])
def test_bad_executor_values_are_exit_2(cli, project, value):
    result = cli("run", str(project(projects.CHAIN)), "--executor", value)
    assert result.code == 2
    assert result.err.startswith(f"orchestra: error: --executor {value}: ") and "\n" not in result.err.strip()


def test_local_runs_import_no_distributed_machinery(project):
    root = project(projects.CHAIN)
    code = ("import sys, orchestra.app.api as api; r = api.run(sys.argv[1], api.RunOptions(quiet=True)); "
            "assert r.exit_code == 0; "
            "print(','.join(m for m in ('distributed', 'dask', 'fsspec', 's3fs', 'boto3') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""


def test_output_lines_stream_from_the_worker_to_the_console(cli, make_project, dask_cluster):
    root = make_project("""
        entry_points:
          main:
            command: "echo hello-from-$WORKER_LABEL; echo warn-line >&2"
    """)
    result = cli("run", str(root), "--executor", dask_cluster.url)
    assert result.code == 0, result.err
    assert any(line.startswith("[main] hello-from-") for line in result.err.splitlines())
    assert "[main] warn-line" in result.err


def test_sigkill_of_the_driver_kills_its_remote_stages(project, dask_cluster, tmp_path, cli):
    marker = tmp_path / "started"
    root = project(projects.killable(marker))
    proc = subprocess.Popen([sys.executable, "-m", "orchestra", "run", str(root), "--executor", dask_cluster.url],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: Path(f"{marker}.child").exists() and Path(f"{marker}.child").read_text().strip(),
             what="stage start")
    child = int(Path(f"{marker}.child").read_text())
    proc.kill()
    proc.wait(60)
    # The scheduler drops the dead client's tasks; each worker's supervisor kills their groups.
    wait_for(lambda: not alive(child), what="the remote stage to be killed")
    assert json.loads(cli("runs", "list", "--json").out)[0]["status"] == "KILLED"


def test_workers_that_cannot_see_the_driver_files_are_refused(dask_cluster, tmp_path):
    from orchestra.execution.executors.dask import DaskExecutor

    executor = DaskExecutor(dask_cluster.address)
    try:
        with pytest.raises(Exception) as info:
            # The workers share this machine, so hide the project: none of them can see it.
            executor.preflight({}, probe=tmp_path / "probe", project_dir=tmp_path / "not-shared")
        assert info.value.exit_code == 2
        assert "cannot see this machine's files" in str(info.value) and "ORCHESTRA_ARTIFACTS" in str(info.value)
        assert not (tmp_path / "probe").exists()
        executor.preflight({"g": {"gpus": 1}}, probe=tmp_path / "probe", project_dir=tmp_path)  # all visible
    finally:
        executor.close()


def test_help_path_imports_no_engine():
    code = ("import sys, orchestra.cli as c; c.build_parser(); c.build_parser('run'); "
            "print(','.join(m for m in ('distributed', 'dask', 'fsspec', 's3fs') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""


def test_losing_the_scheduler_fails_the_stage_and_kills_it(project, tmp_path):
    from tests.integration.daskcluster import private_cluster

    marker = tmp_path / "started"
    root = project(projects.killable(marker))
    with private_cluster() as own:
        own.wait_ready_n(1)
        proc = subprocess.Popen([sys.executable, "-m", "orchestra", "run", str(root), "-e", "slow",
                                 "--executor", own.url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: Path(f"{marker}.child").exists() and Path(f"{marker}.child").read_text().strip(),
                 what="stage start")
        child = int(Path(f"{marker}.child").read_text())
        os.killpg(own.procs[0].pid, signal.SIGKILL)  # the scheduler
        _, err = proc.communicate(timeout=90)
        assert proc.returncode == 1, err
        assert "[slow] FAILED after" in err and f"the Dask scheduler at {own.address} dropped it" in err
        assert "Traceback" not in err
        # Its worker closes without a scheduler; the supervisor ends the stage group first.
        wait_for(lambda: not alive(child), what="the stage to be killed")


def test_s3_store_without_s3fs_says_what_to_install(cli, project, tmp_path):
    pytest.importorskip("distributed")
    poison = tmp_path / "nos3fs"
    poison.mkdir()
    (poison / "sitecustomize.py").write_text("import sys\nsys.modules['s3fs'] = None\n")
    result = cli("run", str(project(projects.CHAIN)), "--executor", "dask://127.0.0.1:1",
                 env={"PYTHONPATH": os.pathsep.join([str(poison), str(REPO_ROOT)]),
                      "ORCHESTRA_ARTIFACTS": "s3://bucket/prefix"})
    assert result.code == 2
    assert result.err.strip() == ("orchestra: error: ORCHESTRA_ARTIFACTS=s3://bucket/prefix: no filesystem for s3:// "
                                  "is installed (pip install 'orchestra[s3]')")


def test_a_worker_with_another_orchestra_is_refused(cli, project, tmp_path):
    from tests.integration.daskcluster import private_cluster

    shim = tmp_path / "other-version"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text("import orchestra\norchestra.__version__ = '0.0.1-other'\n")
    with private_cluster(extra_pythonpath=str(shim)) as own:
        own.wait_ready_n(1)
        result = cli("run", str(project(projects.CHAIN)), "--executor", own.url)
    assert result.code == 2
    assert "Dask workers run another orchestra than this machine" in result.err and "has 0.0.1-other" in result.err
    assert json.loads(cli("runs", "list", "--json").out) == []
