"""What killed or odd runs leave behind is swept or repaired, and messages stay readable."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import envkit, projects
from tests.envfixtures import offline_envs, session_wheels, uv_cache  # noqa: F401
from tests.faults.helpers import last_run, objects, stages, wait_for
from tests.hooks_receiver import Receiver, Reply

pytestmark = pytest.mark.integration


def test_a_sigkilled_run_leaves_no_staging_directory_after_the_next_command(cli, make_project, tmp_path,
                                                                           orchestra_home):
    marker = tmp_path / "writing"
    root = make_project(f"""
        entry_points:
          main: {{command: "echo part > {{outputs}}/half; touch {marker}; sleep 300"}}
    """)
    proc = subprocess.Popen([sys.executable, "-m", "orchestra", "run", str(root)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    wait_for(marker.exists, what="the stage to write")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert list((orchestra_home / "runs").glob("*/*/.staging-*"))  # what the killed run left
    assert cli("runs", "list").code == 0  # any command that reads runs finishes the dead one
    assert not list((orchestra_home / "runs").glob("*/*/.staging-*"))


def test_env_gc_sweeps_a_killed_build(tmp_path, cli, make_project, orchestra_home):
    root = make_project(projects.python_env_main("\"python -c 'import slowpkg'\"").mlproject,
                        {"python_env.yaml": f"python: '{envkit.PY_MINOR}'\ndependencies: [slowpkg]\n"})
    gate = tmp_path / "gate"
    gate.write_text("")
    env = {**os.environ, "SLOWPKG_GATE": str(gate), "SLOWPKG_MAX": "60", "UV_CACHE_DIR": str(tmp_path / "uvc")}
    proc = subprocess.Popen([sys.executable, "-m", "orchestra", "env", "create", str(root)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: Path(f"{gate}.started").exists(), what="the build to start")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        gate.unlink(missing_ok=True)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    envs_dir = orchestra_home / "envs"
    assert [p for p in envs_dir.iterdir() if p.name.startswith(".tmp-")]
    result = cli("env", "gc")
    assert result.code == 0, result.err
    assert not [p for p in envs_dir.iterdir() if p.name.startswith(".tmp-")]


def test_hooks_retry_says_what_it_delivered(cli, make_project, tmp_path):
    failing = {"on": True}
    root = make_project("entry_points:\n  main: {command: 'true'}\n")
    with Receiver(lambda request, index: Reply(status=503) if failing["on"] else Reply()) as receiver:
        (tmp_path / "hooks.yaml").write_text(f"run_ended: [{{url: '{receiver.url}', name: r}}]\n")
        result = cli("run", str(root), "--hooks", str(tmp_path / "hooks.yaml"), "--hooks-drain", "0.5")
        assert result.code == 0, result.err
        failing["on"] = False
        retried = cli("hooks", "retry")
        assert retried.code == 0, retried.err
        assert "1 of 1 pending webhook deliveries delivered" in retried.out
        again = cli("hooks", "retry")
        assert "no webhook deliveries were pending" in again.out


def test_a_huge_parameter_value_is_cut_in_messages(cli, make_project):
    root = make_project("""
        entry_points:
          main:
            parameters: {alpha: {type: float, default: 1}}
            command: "echo {alpha}"
    """)
    result = cli("run", str(root), "-P", "alpha=" + "9x" * 50_000)
    assert result.code == 2
    assert len(result.err) < 600 and "(100000 characters)" in result.err, result.err[:300]


def test_an_object_chmodded_000_is_repaired_before_it_is_loaded(cli, make_project, orchestra_home):
    root = make_project("""
        entry_points:
          a: {command: "echo data > {outputs}/a.txt"}
          b: {command: "cat {inputs.a}/a.txt > {outputs}/b.txt", depends_on: [a]}
    """)
    assert cli("run", str(root)).code == 0
    obj = next(iter(p for p in objects(orchestra_home) if p.stat().st_size == 5))
    obj.chmod(0o000)
    result = cli("run", str(root), "--force", "b")
    assert result.code == 0, result.err
    assert stages(last_run())["a"].status == "LOADED"
    assert oct(obj.stat().st_mode & 0o777) == oct(0o444)
    loaded = Path(stages(last_run())["a"].outputs_dir) / "a.txt"
    assert oct(loaded.stat().st_mode & 0o777) == oct(0o444)
