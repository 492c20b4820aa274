""".zip project URIs: local, file:// and http:// (a real server on 127.0.0.1), #subdir, the shared
unpacked cache, and the unsafe archives that must be refused with one line and nothing written."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.integration.fileserver import FileServer

pytestmark = pytest.mark.integration

MLPROJECT = b"""name: zipped
entry_points:
  main:
    command: "cat data.txt > {outputs}/o.txt"
"""


def make_zip(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name), data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return path


def project_zip(path: Path, prefix: str = "", data: bytes = b"hello\n") -> Path:
    return make_zip(path, {f"{prefix}MLproject": MLPROJECT, f"{prefix}data.txt": data})


def run(cli, uri: str, *args: str, env: dict[str, str] | None = None) -> dict:
    result = cli("run", uri, "--json", "-q", "--env-manager", "local", *args, env=env)
    assert result.code == 0, result.err
    return json.loads(result.out)


def output(record: dict) -> str:
    return (Path(record["stages"][0]["outputs_dir"]) / "o.txt").read_text()


def test_local_file_and_http_zip_run_then_identical_bytes_load(cli, tmp_path, orchestra_home):
    (tmp_path / "serve").mkdir()
    archive = project_zip(tmp_path / "serve" / "proj.zip")
    first = run(cli, str(archive))
    assert first["stages"][0]["status"] == "FINISHED" and output(first) == "hello\n"
    assert first["tags"]["mlflow.source.name"] == str(archive)
    assert first["tags"]["mlflow.source.type"] == "PROJECT"
    assert first["tags"]["orchestra.source.archive.sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    again = run(cli, archive.as_uri())
    assert again["stages"][0]["status"] == "LOADED"  # same bytes, same code digest
    with FileServer(tmp_path / "serve") as server:
        remote = run(cli, server.url("proj.zip", auth="alice:s3cret@"))
        assert server.gets == ["/proj.zip"]
    assert remote["stages"][0]["status"] == "LOADED"  # a re-download of identical bytes loads
    assert remote["tags"]["mlflow.source.name"] == server.url("proj.zip")  # no credentials kept
    assert "s3cret" not in json.dumps(remote)
    assert len([p for p in (orchestra_home / "zips").iterdir() if not p.name.startswith(".")]) == 1  # one cache entry
    assert not list((orchestra_home / "checkouts").iterdir())  # each run's copy is removed after it
    changed = project_zip(tmp_path / "changed.zip", data=b"changed\n")
    rerun = run(cli, str(changed))
    assert rerun["stages"][0]["status"] == "FINISHED" and output(rerun) == "changed\n"


def test_a_stage_writing_into_its_project_never_changes_the_cache(cli, tmp_path, orchestra_home):
    archive = make_zip(tmp_path / "w.zip", {"MLproject": b"""entry_points:
  main:
    command: "cat data.txt > {outputs}/o.txt && echo mutated > data.txt"
""", "data.txt": b"pristine\n"})
    assert output(run(cli, str(archive))) == "pristine\n"
    assert output(run(cli, str(archive), "--no-cache")) == "pristine\n"


def test_subdirectory_and_single_top_level_directory(cli, tmp_path):
    both = make_zip(tmp_path / "mono.zip", {"a/MLproject": MLPROJECT, "a/data.txt": b"from a\n",
                                            "b/MLproject": MLPROJECT, "b/data.txt": b"from b\n"})
    assert output(run(cli, f"{both}#b")) == "from b\n"
    with FileServer(tmp_path) as server:
        assert output(run(cli, server.url("mono.zip") + "#a")) == "from a\n"
    github_style = project_zip(tmp_path / "repo-main.zip", prefix="repo-main/", data=b"top\n")
    assert output(run(cli, str(github_style))) == "top\n"  # MLflow's root has no MLproject: the one directory is used
    missing = cli("run", f"{both}#c", "--env-manager", "local")
    assert missing.code == 2 and "subdirectory 'c' not found" in missing.err


def one_line_error(result, *needles: str) -> None:
    assert result.code == 2, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.err, result.err
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize("case", ["dotdot", "absolute", "symlink", "total", "ratio", "duplicate"])
def test_unsafe_archives_are_refused_and_nothing_is_written(cli, tmp_path, orchestra_home, case):
    work = tmp_path / "work"
    work.mkdir()
    env = {}
    needle = ""
    path = tmp_path / f"{case}.zip"
    if case == "dotdot":
        make_zip(path, {"MLproject": MLPROJECT, "../evil": b"x"})
        needle = "'../evil'"
    elif case == "absolute":
        make_zip(path, {"MLproject": MLPROJECT, str(tmp_path / "abs-evil"): b"x"})
        needle = "abs-evil"
    elif case == "symlink":
        make_zip(path, {"MLproject": MLPROJECT}, links={"data.txt": "../../../../etc/passwd"})
        needle = "symbolic links"
    elif case == "total":
        make_zip(path, {"MLproject": MLPROJECT, "big.bin": os.urandom(4096)})
        env = {"ORCHESTRA_MAX_UNZIP_BYTES": "2048"}
        needle = "more than 2048 bytes"
    elif case == "ratio":
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("MLproject", MLPROJECT)
            with archive.open("zeros.bin", "w") as member:
                for _ in range(40):
                    member.write(bytes(1 << 20))
        needle = "zip bomb"
    else:
        make_zip(path, {"MLproject": MLPROJECT, "data.txt": b"a", "./data.txt": b"b"})
        needle = "duplicate member"
    result = cli("run", str(path), "--env-manager", "local", cwd=work, env=env)
    one_line_error(result, needle)
    assert not (tmp_path / "evil").exists() and not (tmp_path / "abs-evil").exists()
    assert not list(work.iterdir())
    assert not list((orchestra_home / "zips").iterdir())  # no entry, no leftover staging directory
    assert not (orchestra_home / "runs").exists() or not list((orchestra_home / "runs").iterdir())


def test_http_errors_not_a_zip_and_size_cap(cli, tmp_path):
    (tmp_path / "junk.zip").write_bytes(b"this is not a zip")
    project_zip(tmp_path / "ok.zip")
    with FileServer(tmp_path) as server:
        one_line_error(cli("run", server.url("missing.zip")), "HTTP 404", server.url("missing.zip"))
        one_line_error(cli("run", server.url("junk.zip")), "not a valid zip file")
        one_line_error(cli("run", server.url("ok.zip"), env={"ORCHESTRA_MAX_DOWNLOAD_BYTES": "100"}),
                       "larger than 100 bytes")
    one_line_error(cli("run", str(tmp_path / "absent.zip")), "no such zip file")
    one_line_error(cli("run", str(tmp_path / "ok.zip"), "--version", "v1"), "--version")


def test_concurrent_runs_of_the_same_zip_share_one_unpacked_entry(tmp_path, orchestra_home):
    archive = project_zip(tmp_path / "proj.zip")
    procs = [subprocess.Popen([sys.executable, "-m", "orchestra", "run", str(archive), "--json", "-q",
                               "--env-manager", "local", "--no-cache"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(3)]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert json.loads(out)["stages"][0]["status"] == "FINISHED"
    assert len(list((orchestra_home / "zips").iterdir())) == 1


def test_leftovers_of_killed_unpacks_are_swept(cli, tmp_path, orchestra_home):
    zips = orchestra_home / "zips"
    zips.mkdir(parents=True, exist_ok=True)
    old, fresh = zips / ".unpack-old", zips / ".unpack-fresh"
    old.mkdir()
    (old / "partial").write_text("x")
    fresh.mkdir()
    os.utime(old, (0, 0))
    run(cli, str(project_zip(tmp_path / "p.zip")))
    assert not old.exists() and fresh.exists()  # a day-old leftover goes; a concurrent unpack is left alone


LISTING = b"""name: listing
entry_points:
  main:
    parameters:
      out: string
    command: "(cat data.txt; ls -1) > {out}"
"""


def test_the_same_zip_runs_in_the_same_directory_as_under_mlflow_run(cli, tmp_path):
    """The real ``mlflow run`` (the test venv's) and orchestra on one archive, root and ``#subdir``:
    the command sees the same files."""
    from tests.mlflow_server import require_venv

    mlflow = require_venv() / "bin" / "mlflow"
    archive = make_zip(tmp_path / "mono.zip", {"MLproject": LISTING, "data.txt": b"root\n", "extra.py": b"",
                                               "b/MLproject": LISTING, "b/data.txt": b"from b\n"})
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    for uri, name in ((str(archive), "root"), (f"{archive}#b", "sub")):
        theirs, ours = tmp_path / f"mlflow-{name}.txt", tmp_path / f"orchestra-{name}.txt"
        done = subprocess.run([str(mlflow), "run", uri, "--env-manager", "local", "-P", f"out={theirs}"], env=env,
                              capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-2000:]
        result = cli("run", uri, "--env-manager", "local", "-P", f"out={ours}", "--no-cache")
        assert result.code == 0, result.err
        assert ours.read_text() == theirs.read_text()
    assert (tmp_path / "orchestra-sub.txt").read_text() == "from b\nMLproject\ndata.txt\n"
