"""conda pieces against the offline test channel: solve, key, conda-lock.yml, hash checks, imports."""

from __future__ import annotations

import subprocess
import sys

import pytest

from orchestra.envs import conda, condalock
from orchestra.envs.specfiles import parse_conda
from orchestra.core.errors import EnvError
from tests import envkit
from tests.envfixtures import channel, offline_envs, session_channel, session_wheels, uv_cache  # noqa: F401


def _spec(tmp_path, channel, deps):
    f = tmp_path / "conda.yaml"
    f.write_text(f"channels: [{channel}]\ndependencies: {deps}\n")
    return f, parse_conda(f, tmp_path)


def test_solve_pins_and_key_ignores_volatile_fields(tmp_path, channel):
    f, spec = _spec(tmp_path, channel, "[hello=0.1]")
    entries = conda.solve(spec, "conda.yaml", "linux-64")
    assert [(e["name"], e["version"]) for e in entries] == [("hello", "0.1"), ("hellolib", "1.0")]
    key = conda.key_of("linux-64", entries, "")
    reordered = [dict(e, depends=[], channel="elsewhere") for e in reversed(entries)]
    assert conda.key_of("linux-64", reordered, "") == key
    assert conda.key_of("linux-64", entries, "tinypkg==1.0\n") != key
    assert conda.key_of("linux-64", [dict(entries[0], sha256="0" * 64), entries[1]], "") != key


def test_conda_lock_file_round_trip_keeps_the_key(tmp_path, channel):
    f, spec = _spec(tmp_path, channel, "[hello, python]")
    entries = conda.solve(spec, "conda.yaml", "linux-64")
    lock = condalock.lock_path_for(f)
    assert lock.name == "conda-lock.yml"
    condalock.write(lock, f, "linux-64", entries, spec.channels, "tinypkg==1.0 \\\n    --hash=sha256:ab\n")
    back, pip_lock, meta = condalock.read(lock, tmp_path, "linux-64")
    assert conda.key_of("linux-64", back, pip_lock) == conda.key_of("linux-64", entries, pip_lock)
    assert pip_lock.startswith("tinypkg==1.0")
    assert meta["content_hash"]["linux-64"] == condalock.spec_hash(f, "linux-64")
    assert [e["file_name"] for e in back] == [e["file_name"] for e in entries]
    with pytest.raises(EnvError, match="no packages for this platform"):
        condalock.read(lock, tmp_path, "osx-arm64")


def test_lock_names():
    from pathlib import Path

    assert condalock.lock_path_for(Path("/p/envs/train.yaml")) == Path("/p/envs/train.conda-lock.yml")
    assert condalock.is_conda_lock_file(Path("/p/conda-lock.yml"))
    assert condalock.is_conda_lock_file(Path("/p/envs/train.conda-lock.yml"))
    assert not condalock.is_conda_lock_file(Path("/p/conda.yaml"))


def test_local_archives_are_checked_against_the_lock(tmp_path, channel):
    f, spec = _spec(tmp_path, channel, "[hellolib]")
    entries = conda.solve(spec, "conda.yaml", "linux-64")
    conda.check_local_hashes(entries, "conda.yaml")  # intact
    envkit.make_conda_pkg(channel / "noarch", "hellolib", "1.0", files={"bin/hellolib": ("changed\n", 0o755)})
    with pytest.raises(EnvError, match="hash mismatch of locked package hellolib 1.0"):
        conda.check_local_hashes(entries, "conda.yaml")


def test_invalid_match_spec_names_its_key_path(tmp_path, channel):
    f, spec = _spec(tmp_path, channel, "['hello', 'hello ==> 1']")
    with pytest.raises(EnvError, match=r"conda.yaml: dependencies\[1\]: invalid package spec"):
        conda.solve(spec, "conda.yaml", "linux-64")


def test_relocate_scripts_rewrites_build_paths(tmp_path):
    tmp, final = tmp_path / ".tmp-x", tmp_path / "x"
    (tmp / "bin").mkdir(parents=True)
    script = tmp / "bin" / "tool"
    script.write_text(f"#!{tmp}/bin/python\nprint('{tmp}')\n")
    script.chmod(0o755)
    (tmp / "bin" / "data").write_text(f"{tmp}\n")
    conda.relocate_scripts(tmp, final)
    assert script.read_text().startswith(f"#!{final}/bin/python\n") and script.stat().st_mode & 0o111
    assert (tmp / "bin" / "data").read_text() == f"{tmp}\n"


def test_rattler_never_loads_in_this_process(tmp_path, channel):
    f, spec = _spec(tmp_path, channel, "[hello]")
    assert conda.solve(spec, "conda.yaml", "linux-64")
    assert "rattler" not in sys.modules  # solved in a child (py-rattler can crash at exit)


def test_cli_import_stays_light():
    code = ("import sys, orchestra.cli, orchestra.envs, orchestra.app.session; "
            "print(','.join(m for m in ('rattler', 'conda_lock', 'asyncio', 'uv') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""
