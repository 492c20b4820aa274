"""A git password in the project URI never reaches disk, argv, output, records or the stage.

A real smart-HTTP git server with basic auth (``git http-backend``) on 127.0.0.1."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.faults.githttp import HttpGitServer
from tests.faults.helpers import last_run, stages
from tests.integration.gitservers import git

pytestmark = pytest.mark.integration

SECRET = "s3cr3t-Pa55"
MLPROJECT = """entry_points:
  main:
    command: "git config --list > {outputs}/config; cat $(git rev-parse --git-dir)/config >> {outputs}/config; env > {outputs}/env"
"""


@pytest.fixture
def server(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    git("init", "-q", "-b", "main", cwd=work)
    (work / "MLproject").write_text(MLPROJECT)
    git("add", "-A", cwd=work)
    git("commit", "-qm", "one", cwd=work)
    served = tmp_path / "served"
    served.mkdir()
    git("clone", "-q", "--bare", str(work), str(served / "repo.git"))
    srv = HttpGitServer(served, "alice", SECRET)
    yield srv
    srv.stop()


def _files_holding(root: Path, secret: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and not p.is_symlink() and secret.encode() in p.read_bytes()]


def test_git_credentials_are_used_but_never_stored_or_shown(cli, server, orchestra_home):
    url = server.url("repo.git", f"alice:{SECRET}")
    first = cli("run", url)
    assert first.code == 0, first.err
    again = cli("run", url, "--no-cache")  # the mirror exists now: a fetch, with credentials again
    assert again.code == 0, again.err
    for result in (first, again):
        assert SECRET not in result.out + result.err
    assert _files_holding(orchestra_home, SECRET) == []  # mirror config, checkout, runs.sqlite, logs, outputs
    record = last_run()
    assert SECRET not in repr(record)
    outputs = Path(stages(record)["main"].outputs_dir)
    assert "127.0.0.1" in (outputs / "config").read_text()  # the stage saw its origin, without credentials
    assert SECRET not in (outputs / "config").read_text() + (outputs / "env").read_text()


def test_a_wrong_password_is_exit_2_and_not_echoed(cli, server, orchestra_home):
    result = cli("run", server.url("repo.git", "alice:wrong-Pa55"))
    assert result.code == 2, result.err
    assert "authentication failed" in result.err and "wrong-Pa55" not in result.out + result.err
    assert _files_holding(orchestra_home, "wrong-Pa55") == []


def test_schedules_keep_the_uri_without_credentials_and_read_them_from_a_named_variable(cli, server, orchestra_home):
    url = server.url("repo.git", f"alice:{SECRET}")
    refused = cli("schedule", "add", "nightly", url, "--cron", "0 3 * * *")
    assert refused.code == 2 and "--credentials-env" in refused.err and SECRET not in refused.err
    added = cli("schedule", "add", "nightly", url, "--cron", "0 3 * * *", "--credentials-env", "NIGHTLY_GIT")
    assert added.code == 0, added.err
    listed = cli("schedule", "list", "--json")
    assert SECRET not in added.out + added.err + listed.out and "127.0.0.1" in listed.out
    due = cli("schedule", "run-due", "nightly", "--at", "2030-01-01T03:00:00Z", env={"NIGHTLY_GIT": f"alice:{SECRET}"})
    assert due.code == 0, due.out + due.err
    assert SECRET not in due.out + due.err
    assert last_run().status == "FINISHED"
    assert _files_holding(orchestra_home, SECRET) == []
