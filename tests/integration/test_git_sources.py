"""Git project sources against real servers on 127.0.0.1 (file://, git daemon, sshd)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from orchestra import source
from orchestra.core.errors import SourceError
from orchestra.source.git import normalize, validate_url
from tests.integration.gitservers import GitDaemon, SshServer, ensure_user, git, make_repo

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("gitrepo")
    shas = make_repo(root)
    return root, shas


@pytest.fixture(scope="module")
def daemon(repo):
    root, _ = repo
    server = GitDaemon(root)
    yield server
    server.stop()


def version_of(record) -> str:
    return (Path(record["stages"][0]["outputs_dir"]) / "version").read_text().strip()


def run(cli, uri, *args, code=0, env=None):
    result = cli("run", uri, "--json", "-q", *args, env=env)
    assert result.code == code, result.err
    return json.loads(result.out) if code == 0 else result


def test_file_url_default_branch_tag_old_sha_branch_and_subdir(cli, repo):
    root, shas = repo
    url = (root / "repo.git").as_uri()
    head = run(cli, url + "#proj")
    assert version_of(head) == "v2"
    assert head["tags"]["mlflow.source.git.commit"] == shas["docs"]
    assert head["tags"]["mlflow.source.git.branch"] == "main"
    assert head["tags"]["mlflow.source.git.repoURL"] == url
    assert head["tags"]["mlflow.source.name"] == url + "#proj"
    assert version_of(run(cli, url + "#proj", "--version", "v1")) == "v1"
    assert version_of(run(cli, url + "#proj", "--version", shas["v1"][:8])) == "v1"
    assert version_of(run(cli, url + "#proj", "--version", "feature")) == "feature"
    assert version_of(run(cli, url)) == "v2"  # the repository root is a project too


def test_commit_outside_the_subdir_keeps_stages_cached(cli, repo):
    root, shas = repo
    url = (root / "repo.git").as_uri() + "#proj"
    first = run(cli, url, "--version", shas["v2"])
    second = run(cli, url, "--version", shas["docs"])  # only README changed, outside proj/
    assert second["stages"][0]["status"] == "LOADED"
    assert second["stages"][0]["loaded_from"]["run_id"] == first["run_id"]


def test_git_daemon_and_mirror_cache_is_fetched_not_recloned(cli, repo, daemon, orchestra_home):
    root, shas = repo
    url = daemon.url("repo.git")
    assert version_of(run(cli, url + "#proj", "--version", "v1")) == "v1"
    mirrors = list((orchestra_home / "repos").glob("*.git"))
    assert len(mirrors) == 1
    marker = mirrors[0] / "orchestra-test-marker"
    marker.write_text("still the same clone")
    inode = mirrors[0].stat().st_ino
    assert version_of(run(cli, url + "#proj")) == "v2"
    assert marker.exists() and mirrors[0].stat().st_ino == inode
    assert list((orchestra_home / "checkouts").iterdir()) == []  # per-run checkouts removed


def test_new_commits_are_fetched(cli, repo, tmp_path):
    root, _ = repo
    bare = tmp_path / "moving.git"
    shutil.copytree(root / "repo.git", bare)
    url = bare.as_uri() + "#proj"
    assert version_of(run(cli, url)) == "v2"
    work = tmp_path / "w"
    git("clone", "-q", str(bare), str(work))
    (work / "proj" / "VERSION").write_text("v3\n")
    git("commit", "-qam", "v3", cwd=work)
    git("push", "-q", "origin", "main", cwd=work)
    assert version_of(run(cli, url)) == "v3"


def test_two_concurrent_runs_of_different_versions(repo, daemon, orchestra_home):
    url = daemon.url("repo.git") + "#proj"
    procs = {
        version: subprocess.Popen([sys.executable, "-m", "orchestra", "run", url, "--version", version, "--json", "-q"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for version in ("v1", "feature", "main")
    }
    results = {version: proc.communicate(timeout=120) for version, proc in procs.items()}
    for version, (out, err) in results.items():
        assert procs[version].returncode == 0, err
    versions = {v: version_of(json.loads(out)) for v, (out, _) in results.items()}
    assert versions == {"v1": "v1", "feature": "feature", "main": "v2"}
    assert len(list((orchestra_home / "repos").glob("*.git"))) == 1


def test_local_work_tree_with_version_is_never_touched(cli, repo, tmp_path):
    root, shas = repo
    work = tmp_path / "mine"
    git("clone", "-q", str(root / "repo.git"), str(work))
    (work / "proj" / "VERSION").write_text("uncommitted\n")
    head_before = git("rev-parse", "HEAD", cwd=work)
    record = run(cli, str(work) + "#proj", "--version", "v1")
    assert version_of(record) == "v1"
    assert git("rev-parse", "HEAD", cwd=work) == head_before
    assert (work / "proj" / "VERSION").read_text() == "uncommitted\n"
    # Without --version it runs in place, dirty state recorded.
    record = run(cli, str(work / "proj"))
    assert version_of(record) == "uncommitted"
    assert record["tags"]["orchestra.source.git.dirty"] == "true"
    assert record["tags"]["mlflow.source.git.commit"] == head_before


def test_errors_are_one_line_exit_2(cli, repo, daemon, tmp_path):
    root, _ = repo
    url = (root / "repo.git").as_uri()
    cases = {
        (url, "--version", "nope"): "unknown version 'nope'",
        (url + "#missing",): "subdirectory 'missing' not found",
        (url + "#../x",): "invalid subdirectory",
        ((tmp_path / "none.git").as_uri(),): "repository not found",
        (daemon.url("none.git"),): "repository not found",
        ("git://127.0.0.1:1/x.git",): "cannot connect",
        ("git@no-such-host.invalid:x.git",): "",
    }
    for args, expected in cases.items():
        result = cli("run", *args)
        assert result.code == 2, (args, result.err)
        lines = result.err.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.err, result.err
        assert expected in lines[0], (args, lines[0])


def test_credentials_never_reach_errors_tags_or_logs(cli, repo, tmp_path):
    result = cli("run", "https://alice:s3cr3t-token@127.0.0.1:1/x.git")
    assert result.code == 2 and "s3cr3t" not in result.err and "alice" not in result.err
    root, _ = repo
    # A credentialed remote on a local work tree: the repoURL tag is stripped.
    work = tmp_path / "cred"
    git("clone", "-q", str(root / "repo.git"), str(work))
    git("remote", "set-url", "origin", "https://bob:hunter2@example.invalid/r.git", cwd=work)
    record = run(cli, str(work / "proj"))
    assert record["tags"]["mlflow.source.git.repoURL"] == "https://example.invalid/r.git"
    assert "hunter2" not in json.dumps(record)


@pytest.mark.parametrize("uri", ["--upload-pack=touch {pwned}", "-oProxyCommand=touch {pwned}",
                                 "ext::sh -c touch% {pwned}", "fd::17", "ssh://-oProxyCommand=touch%20{pwned}/x"])
def test_option_injection_is_refused(cli, tmp_path, uri):
    pwned = tmp_path / "pwned"
    result = cli("run", "--", uri.format(pwned=pwned)) if uri.startswith("-") else cli("run", uri.format(pwned=pwned))
    assert result.code == 2, result.err
    assert "Traceback" not in result.err
    assert not pwned.exists()


def test_url_validation_and_normalization():
    assert validate_url("git@github.com:org/repo.git")
    assert validate_url("https://host/x.git")
    for bad in ("-x", "ext::sh", "foo://x", "a\nb"):
        with pytest.raises(SourceError):
            validate_url(bad)
    assert normalize("https://u:p@Host.COM/org/repo.git/") == "https://host.com/org/repo"
    assert normalize("git@Example.com:org/repo.git") == "git@example.com:org/repo"
    assert source.strip_credentials("https://u:p@h:8/x") == "https://h:8/x"


@pytest.fixture(scope="module")
def ssh_server(repo, tmp_path_factory):
    if not Path("/usr/sbin/sshd").exists():
        pytest.skip("sshd is not installed (apt-get install openssh-server)")
    home = ensure_user("git")
    if home is None:
        pytest.skip("no 'git' user and not root to create one")
    root, _ = repo
    name = f"repo-{uuid.uuid4().hex[:8]}.git"
    shutil.copytree(root / "repo.git", home / name)
    subprocess.run(["chown", "-R", "git:", str(home / name)], check=False)
    server = SshServer(tmp_path_factory.mktemp("sshd"))
    yield server, name
    server.stop()
    shutil.rmtree(home / name, ignore_errors=True)


def test_scp_style_ssh_url(cli, ssh_server):
    server, name = ssh_server
    env = {"GIT_SSH_COMMAND": server.git_ssh_command}
    record = run(cli, f"git@127.0.0.1:{name}#proj", "--version", "v1", env=env)
    assert version_of(record) == "v1"
    assert record["tags"]["mlflow.source.git.repoURL"] == f"git@127.0.0.1:{name}"
    # A key the server does not accept: authentication failure, one line, exit 2.
    bad_config = Path(str(server.ssh_config) + ".bad")
    bad_config.write_text(server.ssh_config.read_text().replace("keys/client", "keys/host"))
    result = cli("run", f"git@127.0.0.1:{name}", env={"GIT_SSH_COMMAND": f"ssh -F {bad_config}",
                                                      "ORCHESTRA_HOME": str(Path(os.environ['ORCHESTRA_HOME']) / 'other')})
    assert result.code == 2 and "authentication failed" in result.err, result.err


def test_submodules_are_initialised(cli, tmp_path):
    """A project whose code lives partly in a submodule (relative URL, as most repos use)."""
    lib = tmp_path / "lib-work"
    lib.mkdir()
    git("init", "-q", "-b", "main", cwd=lib)
    (lib / "data.txt").write_text("from the submodule\n")
    git("add", "-A", cwd=lib)
    git("commit", "-qm", "lib", cwd=lib)
    git("clone", "-q", "--bare", str(lib), str(tmp_path / "lib.git"))
    app = tmp_path / "app-work"
    app.mkdir()
    git("init", "-q", "-b", "main", cwd=app)
    (app / "MLproject").write_text("entry_points:\n  main:\n    command: \"cat lib/data.txt > {outputs}/data\"\n")
    git("-c", "protocol.file.allow=always", "submodule", "add", "-q", "../lib.git", "lib", cwd=app)
    git("add", "-A", cwd=app)
    git("commit", "-qm", "app", cwd=app)
    git("clone", "-q", "--bare", str(app), str(tmp_path / "app.git"))
    record = run(cli, (tmp_path / "app.git").as_uri())
    assert (Path(record["stages"][0]["outputs_dir"]) / "data").read_text() == "from the submodule\n"
