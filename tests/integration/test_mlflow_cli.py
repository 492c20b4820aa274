"""The MLflow mirror without a server: bad tracking URIs, an unreachable server, secrets never shown."""

from __future__ import annotations

import json
import sqlite3

import pytest

from tests.mlflow_server import free_port

pytestmark = pytest.mark.integration

PROJECT = """
entry_points:
  a:
    command: "python -c 'print(1)'"
  b:
    depends_on: [a]
    command: "python -c 'print(2)'"
"""


@pytest.mark.parametrize("uri", ["http://", "http://h:port"])
def test_malformed_server_uri_is_exit_2(cli, make_project, uri):
    result = cli("run", str(make_project(PROJECT)), "--tracking-uri", uri)
    assert result.code == 2
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("orchestra: error: --tracking-uri"), result.err


@pytest.mark.parametrize("flag", [True, False])
def test_store_tracking_uri_keeps_the_run_locally_and_says_how_to_mirror(cli, make_project, orchestra_home,
                                                                        tmp_path, flag):
    store = f"file://{tmp_path}/mlruns" if flag else f"sqlite:///{tmp_path}/x.db"
    args, env = (["--tracking-uri", store], None) if flag else ([], {"MLFLOW_TRACKING_URI": store})
    result = cli("run", str(make_project(PROJECT)), "--json", "--mlflow-artifacts", *args, env=env)
    assert result.code == 0, result.err
    record = json.loads(result.out)
    assert record["status"] == "FINISHED"
    notes = [line for line in result.err.splitlines() if "is an MLflow store" in line]
    assert len(notes) == 1, result.err
    assert f"mlflow server --backend-store-uri {store}" in notes[0]
    assert f"orchestra runs sync {record['run_id']} --tracking-uri http://127.0.0.1:5000" in notes[0]
    assert not (orchestra_home / "mirror.sqlite").exists()  # no mirror was built
    # runs sync needs a server, and says how to get one from that store.
    sync = cli("runs", "sync", record["run_id"], *args, env=env)
    assert sync.code == 2 and "mlflow server --backend-store-uri" in sync.err


def test_store_uri_credentials_are_never_printed(cli, make_project):
    result = cli("run", str(make_project(PROJECT)), env={"MLFLOW_TRACKING_URI": "postgresql://bob:hunter2@db/x"})
    assert result.code == 0, result.err
    assert "MLFLOW_TRACKING_URI postgresql://db/x" in result.err and "hunter2" not in result.err


def test_mlflow_artifacts_needs_a_server(cli, make_project):
    result = cli("run", str(make_project(PROJECT)), "--mlflow-artifacts")
    assert result.code == 2 and "--mlflow-artifacts needs a tracking server" in result.err


def test_unreachable_server_never_fails_the_run(cli, make_project, orchestra_home):
    url = f"http://carol:t0ps3cret@127.0.0.1:{free_port()}"  # nothing listens there
    result = cli("run", str(make_project(PROJECT)), "--tracking-uri", url, "--json")
    assert result.code == 0, result.err
    record = json.loads(result.out)
    assert record["status"] == "FINISHED"
    assert "t0ps3cret" not in result.err + result.out
    # Nothing in the run waits on the server (stages log to the run's endpoint): one line at the end.
    assert result.err.count("not sent to") == 1
    assert f"orchestra runs sync {record['run_id']}" in result.err
    # The work is queued durably, and the secret is not in the queue either.
    db = sqlite3.connect(orchestra_home / "mirror.sqlite")
    pending = db.execute("SELECT COUNT(*) FROM ops WHERE state = 'pending' AND run_id = ?", (record["run_id"],)).fetchone()[0]
    assert pending > 0
    dump = "\n".join(db.iterdump())
    assert "t0ps3cret" not in dump and "carol" not in dump
    # The stages still got MLFLOW_TRACKING_URI (with credentials: the stage needs them), no run id.
    sync = cli("runs", "sync", record["run_id"], "--tracking-uri", url)
    assert sync.code == 1 and "t0ps3cret" not in sync.err
    assert len(sync.err.strip().splitlines()) == 1


def test_runs_sync_needs_a_server(cli, make_project):
    run = cli("run", str(make_project(PROJECT)), "--json")
    result = cli("runs", "sync", json.loads(run.out)["run_id"])
    assert result.code == 2 and "needs a tracking server" in result.err


def test_importing_the_cli_stays_light():
    import subprocess
    import sys

    code = ("import sys, orchestra.cli, orchestra.integrations.tracking; "
            "print([m for m in ('requests', 'mlflow', 'pandas') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_erroring_server_never_fails_the_run(cli, make_project, orchestra_home):
    """A server answering 500 to everything: the run finishes, the stages do not wait on it."""
    from tests.hooks_receiver import Receiver, Reply

    with Receiver(lambda request, index: Reply(status=500, body=b'{"error_code": "INTERNAL_ERROR"}')) as server:
        result = cli("run", str(make_project(PROJECT)), "--tracking-uri", server.base, "--json")
        assert result.code == 0, result.err
        assert json.loads(result.out)["status"] == "FINISHED"
        assert "HTTP 500" in result.err and result.err.count("not sent to") == 1
        # Nothing synchronous: only the background sender (with its backoff) and the one last try
        # at the end asked, not one call per stage.
        assert server.requests[0].path.startswith("/api/2.0/mlflow/experiments/get-by-name")
        assert len(server.requests) <= 6
