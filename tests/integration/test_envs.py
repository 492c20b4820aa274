"""Per-stage environments end to end: real `orchestra` processes, a real local conda channel
(hand-made packages indexed with py-rattler), real wheels, real uv, no network."""

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

from tests import envkit, projects
from tests.envfixtures import channel, offline_envs, session_channel, session_wheels, uv_cache, wheels  # noqa: F401

pytestmark = pytest.mark.integration


def _builds(home: Path, event: str = "built") -> list[dict]:
    log = home / "envs" / "builds.log"
    if not log.exists():
        return []
    return [e for e in map(json.loads, log.read_text().splitlines()) if e["event"] == event]


def _run_json(cli, *args: str, **kw):
    result = cli("run", *args, "--json", **kw)
    assert result.code == 0, result.err
    return json.loads(result.out)


def _conda_yaml(project: Path, channel: Path, deps: str, name: str = "conda.yaml") -> str:
    rel = os.path.relpath(channel, project)  # a path relative to the MLproject dir
    return f"name: t\nchannels:\n  - {rel}\ndependencies:\n{deps}"


def _stdout(record: dict, name: str) -> str:
    stage = next(s for s in record["stages"] if s["name"] == name)
    return Path(stage["log_paths"]["stdout"]).read_text()


def test_conda_stage_runs_a_tool_only_its_env_provides(tmp_path, cli, channel, orchestra_home, project):
    assert shutil.which("hello") is None
    root = tmp_path / "proj"
    root.mkdir()
    project(projects.conda_main("'hello && hellolib && echo prefix=$CONDA_PREFIX'"),
            {"conda.yaml": _conda_yaml(root, channel, "  - hello=0.1\n")}, name="proj")
    record = _run_json(cli, str(root))
    out = _stdout(record, "main")
    assert "hello 0.1" in out and "hellolib 1.0" in out
    prefix = out.split("prefix=")[1].strip()
    assert Path(prefix).parent == orchestra_home / "envs" and Path(prefix).name.startswith("conda-")
    assert record["stages"][0]["env_key"] == Path(prefix).name
    assert len(_builds(orchestra_home)) == 1


def test_python_env_stage_imports_a_package_only_its_env_has(tmp_path, cli, orchestra_home, project):
    root = project(projects.python_env_main("\"python -c 'import sys, tinypkg, tinydep; print(tinypkg.VERSION, "
                                            "sys.prefix)'; echo venv=$VIRTUAL_ENV\""),
                   {"python_env.yaml": f"python: '{envkit.PY_MINOR}'\nbuild_dependencies: [tinydep]\n"
                                       "dependencies: [tinypkg==2.0]\n"}, name="proj")
    host = subprocess.run([sys.executable, "-c", "import tinypkg"], capture_output=True)
    assert host.returncode != 0  # only the env has it
    record = _run_json(cli, str(root))
    out = _stdout(record, "main")
    version, prefix = out.splitlines()[0].split()
    venv = out.split("venv=")[1].strip()
    assert version == "2.0" and prefix == venv and Path(venv).name.startswith("python-")
    lock = next((orchestra_home / "envs" / "locks").glob("python-*.txt")).read_text()
    assert "tinypkg==2.0" in lock and "--hash=sha256:" in lock


def test_two_stages_of_one_pipeline_in_two_environments(tmp_path, cli, channel, orchestra_home, project):
    root = tmp_path / "proj"
    root.mkdir()
    mlproject = """\
name: two
entry_points:
  prep:
    conda_env: envs/tools.yaml
    command: "hello > {outputs}/tool.txt; python -c 'import tinypkg' 2>/dev/null && echo LEAK || echo no-tinypkg"
  train:
    depends_on: [prep]
    python_env: envs/py.yaml
    command: "command -v hello || echo no-hello; python -c 'import tinypkg; print(tinypkg.VERSION)'; cat {inputs.prep}/tool.txt"
"""
    project(mlproject,
            {"envs/tools.yaml": _conda_yaml(root / "envs", channel, "  - hello\n"),
             "envs/py.yaml": f"python: '{envkit.PY_VERSION}'\ndependencies: [tinypkg==1.0]\n"}, name="proj")
    record = _run_json(cli, str(root))
    assert _stdout(record, "prep").strip() == "no-tinypkg"
    assert _stdout(record, "train").splitlines() == ["no-hello", "1.0", "hello 0.2"]
    keys = {s["name"]: s["env_key"] for s in record["stages"]}
    assert keys["prep"].startswith("conda-") and keys["train"].startswith("python-")
    assert len(_builds(orchestra_home)) == 2


def test_conda_pip_section_is_installed_with_uv_into_the_conda_env(tmp_path, cli, channel, project):
    root = tmp_path / "proj"
    root.mkdir()
    deps = "  - hello\n  - python\n  - pip:\n    - tinypkg==1.0\n"
    project("name: c\nentry_points:\n  main:\n    command: \"python -c 'import sys, tinypkg; "
            "print(tinypkg.VERSION, sys.prefix)'; hello\"\n",
            {"conda.yaml": _conda_yaml(root, channel, deps)}, name="proj")  # implicit (MLflow's rule)
    record = _run_json(cli, str(root))
    version, prefix, *rest = _stdout(record, "main").split()
    assert version == "1.0" and Path(prefix).name.startswith("conda-") and rest == ["hello", "0.2"]
    assert (Path(prefix) / "conda-meta").is_dir()


def test_three_concurrent_runs_build_one_env(tmp_path, orchestra_home, project):
    root = project(projects.python_env_main("\"python -c 'import slowpkg; print(slowpkg.VERSION)'\""),
                   {"python_env.yaml": f"python: '{envkit.PY_MINOR}'\ndependencies: [slowpkg]\n"}, name="proj")
    gate = tmp_path / "gate"
    gate.write_text("")
    # A private uv cache: a wheel of slowpkg built by another test must not skip the build.
    env = {**os.environ, "SLOWPKG_GATE": str(gate), "SLOWPKG_MAX": "60", "UV_CACHE_DIR": str(tmp_path / "uvc")}
    procs = [subprocess.Popen([sys.executable, "-m", "orchestra", "run", str(root), "--json", "-q"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    try:
        deadline = time.time() + 60
        # One process is inside the build (the backend says so); the other two wait on its lock.
        while time.time() < deadline and not (Path(f"{gate}.started").exists()
                                               and len(_builds(orchestra_home, "waiting")) == 2):
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            time.sleep(0.05)
        assert len(_builds(orchestra_home, "waiting")) == 2
        gate.unlink()
        outs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            p.kill() if p.poll() is None else None
    assert [p.returncode for p in procs] == [0, 0, 0], [o[1] for o in outs]
    assert len(_builds(orchestra_home)) == 1
    assert len(_builds(orchestra_home, "reused-after-wait")) == 2
    assert len(Path(f"{gate}.started").read_text().split()) == 1  # the package was built once
    keys = {json.loads(o[0])["stages"][0]["env_key"] for o in outs}
    assert len(keys) == 1


def test_sigkill_during_build_leaves_nothing_a_later_run_takes_for_valid(tmp_path, cli, orchestra_home, project):
    root = project(projects.python_env_main("\"python -c 'import slowpkg; print(slowpkg.VERSION)'\""),
                   {"python_env.yaml": f"python: '{envkit.PY_MINOR}'\ndependencies: [slowpkg]\n"}, name="proj")
    gate = tmp_path / "gate"
    gate.write_text("")
    # A private uv cache: a wheel of slowpkg built by another test must not skip the build.
    env = {**os.environ, "SLOWPKG_GATE": str(gate), "SLOWPKG_MAX": "60", "UV_CACHE_DIR": str(tmp_path / "uvc")}
    proc = subprocess.Popen([sys.executable, "-m", "orchestra", "env", "create", str(root)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not Path(f"{gate}.started").exists():
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        envs_dir = orchestra_home / "envs"
        assert [p.name for p in envs_dir.iterdir() if p.name.startswith(".tmp-python-")]  # mid-build
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        gate.unlink(missing_ok=True)
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # uv and the build backend it left behind
        except ProcessLookupError:
            pass
    assert not [p for p in envs_dir.iterdir() if p.name.startswith("python-") and p.is_dir()]
    listed = cli("env", "list", "--json")
    assert listed.code == 0 and json.loads(listed.out) == []
    assert _builds(orchestra_home) == []
    record = _run_json(cli, str(root), env={"UV_CACHE_DIR": str(tmp_path / "uvc")})
    assert _stdout(record, "main").strip() == "1.0"
    assert len(_builds(orchestra_home)) == 1
    assert not [p.name for p in envs_dir.iterdir() if p.name.startswith(".tmp-")]  # the orphan was swept


def test_changed_spec_builds_a_new_env_and_reruns_the_stage(tmp_path, cli, orchestra_home, project):
    spec = tmp_path / "proj" / "python_env.yaml"
    root = project("name: p\nentry_points:\n  main:\n"
                   "    command: \"python -c 'import tinypkg; print(tinypkg.VERSION)'\"\n",
                   {"python_env.yaml": f"python: '{envkit.PY_MINOR}'\ndependencies: [tinypkg==1.0]\n"}, name="proj")
    first = _run_json(cli, str(root))
    assert _stdout(first, "main").strip() == "1.0"
    again = _run_json(cli, str(root))
    assert again["stages"][0]["status"] == "LOADED"
    spec.write_text(f"python: '{envkit.PY_MINOR}'\ndependencies: [tinypkg==2.0]\n")
    plan = cli("plan", str(root))
    assert plan.code == 0 and "environment not built yet" in plan.out, plan.out
    third = _run_json(cli, str(root))
    assert third["stages"][0]["status"] == "FINISHED" and _stdout(third, "main").strip() == "2.0"
    assert third["stages"][0]["env_key"] != first["stages"][0]["env_key"]
    assert len(_builds(orchestra_home)) == 2
    plan = cli("plan", str(root), "--json")
    assert json.loads(plan.out)[0]["action"] == "LOAD"


def test_plan_and_dry_run_build_nothing(tmp_path, cli, channel, orchestra_home, project):
    root = tmp_path / "proj"
    root.mkdir()
    project(projects.conda_main("hello"), {"conda.yaml": _conda_yaml(root, channel, "  - hello\n")}, name="proj")
    for args in (("plan", str(root)), ("run", str(root), "--dry-run")):
        result = cli(*args)
        assert result.code == 0, result.err
        assert "environment not built yet" in result.out + result.err
    envs_dir = orchestra_home / "envs"
    assert not envs_dir.exists() or not [p for p in envs_dir.iterdir() if p.name.startswith("conda-")]
    assert _builds(orchestra_home) == []


def test_conda_lock_round_trip(tmp_path, cli, channel, orchestra_home, project):
    from conda_lock.lockfile import parse_conda_lock_file

    root = tmp_path / "proj"
    root.mkdir()
    project(projects.conda_main("hello"), {"conda.yaml": _conda_yaml(root, channel, "  - hello\n")}, name="proj")
    locked = cli("env", "lock", str(root))
    assert locked.code == 0, locked.err
    lock_file = root / "conda-lock.yml"
    assert str(lock_file) in locked.out
    parsed = parse_conda_lock_file(lock_file)  # conda-lock's own reader accepts it
    assert sorted((p.name, p.version) for p in parsed.package) == [("hello", "0.2"), ("hellolib", "1.0")]
    assert all(p.hash.sha256 and p.url.startswith("file://") for p in parsed.package)
    # A newer hello appears in the channel: the lock, not a new solve, decides what is installed.
    envkit.make_conda_pkg(channel / "noarch", "hello", "0.3", depends=("hellolib >=1.0",))
    envkit.index_channel(channel)
    record = _run_json(cli, str(root))
    assert _stdout(record, "main").strip() == "hello 0.2"
    key = record["stages"][0]["env_key"]
    # conda_env naming the lock itself installs exactly those packages: the same env.
    (root / "MLproject").write_text("name: c\nconda_env: conda-lock.yml\nentry_points:\n  main:\n"
                                    "    command: hello\n")
    record = _run_json(cli, str(root))
    assert record["stages"][0]["env_key"] == key
    assert len(_builds(orchestra_home)) == 1
    # A locked archive that changed under the same name is refused.
    assert cli("env", "gc", "--all").code == 0
    envkit.make_conda_pkg(channel / "noarch", "hello", "0.2", depends=("hellolib >=1.0",),
                          files={"bin/hello": ("#!/bin/sh\necho tampered\n", 0o755)})
    result = cli("run", str(root))
    assert result.code == 2
    assert "hash mismatch of locked package hello 0.2" in result.err and len(result.err.strip().splitlines()) == 1


def test_env_manager_uv_converts_conda_yaml_and_warns_about_dropped_packages(tmp_path, cli, channel, project):
    root = tmp_path / "proj"
    root.mkdir()
    deps = f"  - python={envkit.PY_MINOR}\n  - hello\n  - pip:\n    - tinypkg==2.0\n"
    project(projects.conda_main("\"command -v hello || echo no-hello; python -c 'import tinypkg; "
                                "print(tinypkg.VERSION)'; echo $VIRTUAL_ENV\""),
            {"conda.yaml": _conda_yaml(root, channel, deps)}, name="proj")
    for manager in ("uv", "virtualenv"):
        result = cli("run", str(root), "--env-manager", manager, "--json", "--no-cache")
        assert result.code == 0, result.err
        assert "conda packages not installed: hello" in result.err
        lines = _stdout(json.loads(result.out), "main").split()
        assert lines[:2] == ["no-hello", "2.0"] and Path(lines[2]).name.startswith("python-")


def test_env_manager_conda_refuses_a_python_env_project(tmp_path, cli, project):
    root = project(projects.python_env_main("'true'"), {"python_env.yaml": "python: '3.11'\n"}, name="proj")
    result = cli("run", str(root), "--env-manager", "conda")
    assert result.code == 2 and "cannot be run with --env-manager conda" in result.err
    local = cli("run", str(root), "--env-manager", "local")
    assert local.code == 0, local.err


def test_env_list_create_and_gc(tmp_path, cli, channel, orchestra_home, project):
    root = tmp_path / "proj"
    root.mkdir()
    project(projects.conda_main("hello"), {"conda.yaml": _conda_yaml(root, channel, "  - hello\n")}, name="proj")
    created = cli("env", "create", str(root))
    assert created.code == 0, created.err
    key, state, prefix, stages = created.out.split("\t")
    assert state == "built" and key.startswith("conda-") and stages.strip() == "main"
    assert cli("env", "create", str(root)).out.split("\t")[1] == "ready"
    listed = json.loads(cli("env", "list", "--json").out)
    assert [(e["name"], e["kind"], e["spec"]) for e in listed] == [(key, "conda", str(root / "conda.yaml"))]
    assert listed[0]["size"] > 0
    table = cli("env", "list")
    assert key.split("-", 1)[1] in table.out and "conda.yaml" in table.out
    assert "deleted 0 environment" in cli("env", "gc").out  # used just now
    assert "would delete 1" in cli("env", "gc", "--all", "--dry-run").out
    assert "deleted 1 environment" in cli("env", "gc", "--all").out
    assert cli("env", "list").out.strip() == "no environments"
    record = _run_json(cli, str(root))  # rebuilt from the cached lock, no solve needed
    assert _stdout(record, "main").strip() == "hello 0.2"


FAKE_MICROMAMBA = """\
#!{python}
# A stand-in for micromamba: records its argv, then installs the @EXPLICIT file's archives.
import json, sys, tarfile, pathlib, urllib.parse
log = pathlib.Path({log!r})
log.write_text(json.dumps(sys.argv[1:]))
args = sys.argv[1:]
prefix = pathlib.Path(args[args.index("--prefix") + 1])
explicit = pathlib.Path(args[args.index("--file") + 1]).read_text().split()
for url in explicit[1:]:
    with tarfile.open(urllib.parse.urlparse(url.split("#")[0]).path) as tf:
        tf.extractall(prefix, filter="fully_trusted")
(prefix / "conda-meta").mkdir(parents=True, exist_ok=True)
"""


def test_orchestra_conda_exe_installs_with_that_executable(tmp_path, cli, channel, project):
    root = tmp_path / "proj"
    root.mkdir()
    project(projects.conda_main("hello"), {"conda.yaml": _conda_yaml(root, channel, "  - hello=0.1\n")}, name="proj")
    exe = tmp_path / "bin" / "micromamba"
    exe.parent.mkdir()
    log = tmp_path / "argv.json"
    exe.write_text(FAKE_MICROMAMBA.format(python=sys.executable, log=str(log)))
    exe.chmod(0o755)
    result = cli("run", str(root), "--json", env={"ORCHESTRA_CONDA_EXE": str(exe)})
    assert result.code == 0, result.err
    argv = json.loads(log.read_text())
    assert argv[:3] == ["create", "--yes", "--prefix"] and argv[4] == "--file"
    assert Path(argv[3]).name.startswith("conda-")
    assert _stdout(json.loads(result.out), "main").strip() == "hello 0.1"
    missing = cli("run", str(root), "--no-cache", env={"ORCHESTRA_CONDA_EXE": "no-such-mamba"})
    assert missing.code == 2 and "ORCHESTRA_CONDA_EXE=no-such-mamba: no such executable" in missing.err


@pytest.mark.parametrize("conda_yaml, expected", [
    ("name: t\nchannels: [./nochannel]\ndependencies: [hello]\n", "conda.yaml: channels: channel unreachable"),
    ("name: t\nchannels: [CHANNEL]\ndependencies: [hello>=5, hellolib]\n",
     "conda.yaml: dependencies: cannot satisfy hello>=5, hellolib"),
    ("name: t\nchannels: [CHANNEL]\ndependencies:\n  - hello\n  - {foo: 1}\n", "conda.yaml: dependencies[1]"),
    ("name: t\nchannels: [CHANNEL]\ndependencies: [hello\n", "conda.yaml: not valid YAML"),
    ("name: t\nchannels: [CHANNEL]\ndependencies: hello\n", "conda.yaml: dependencies: must be a list"),
])
def test_bad_conda_env_is_one_line_exit_2(tmp_path, cli, channel, conda_yaml, expected, project):
    root = project(projects.conda_main("'true'"),
                   {"conda.yaml": conda_yaml.replace("CHANNEL", str(channel))}, name="proj")
    result = cli("run", str(root))
    assert result.code == 2, result.err
    assert expected in result.err and len(result.err.strip().splitlines()) == 1, result.err
    assert "Traceback" not in result.err


def test_unreachable_http_channel_is_one_line_exit_2(tmp_path, cli, project):
    import socket

    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = project(projects.conda_main("'true'"),
                   {"conda.yaml": f"channels: ['http://127.0.0.1:{port}/ch']\ndependencies: [hello]\n"}, name="proj")
    result = cli("run", str(root))
    assert result.code == 2 and "channel unreachable" in result.err and f"127.0.0.1:{port}" in result.err
    assert len(result.err.strip().splitlines()) == 1


@pytest.mark.parametrize("python_env, expected", [
    ("python: '3.99'\n", "python_env.yaml: python: Python 3.99 is asked for, but no matching interpreter"),
    ("dependencies: [tinypkg]\n", "python_env.yaml: python: missing"),
    ("python: '3.11'\ndependencies: tinypkg\n", "python_env.yaml: dependencies: must be a list"),
    ("python: '3.11'\ndependencies: [tinypkg, 3]\n", "python_env.yaml: dependencies[1]: must be a pip requirement"),
    ("python: '3.11'\nextras: [x]\n", "python_env.yaml: extras: unknown key"),
    (f"python: '{envkit.PY_MINOR}'\ndependencies: [nosuchpkg]\n",
     "python_env.yaml: cannot resolve the requirements nosuchpkg"),
])
def test_bad_python_env_is_one_line_exit_2(tmp_path, cli, python_env, expected, project):
    root = project(projects.python_env_main("'true'"), {"python_env.yaml": python_env}, name="proj")
    result = cli("run", str(root))
    assert result.code == 2, result.err
    assert expected in result.err and len(result.err.strip().splitlines()) == 1, result.err
    if "3.99" in python_env:
        assert "found: " in result.err and envkit.PY_VERSION in result.err


def test_python_hash_mismatch_of_a_locked_package(tmp_path, cli, wheels, project):
    root = project(projects.python_env_main("\"python -c 'import tinydep'\""),
                   {"python_env.yaml": f"python: '{envkit.PY_MINOR}'\ndependencies: [tinydep==1.0]\n"}, name="proj")
    env = {"UV_CACHE_DIR": str(tmp_path / "uv-cache")}
    assert cli("env", "create", str(root), env=env).code == 0
    assert cli("env", "gc", "--all").code == 0
    envkit.make_wheel(wheels, "tinydep", "1.0", module_text="TAMPERED = True\n")
    env = {"UV_CACHE_DIR": str(tmp_path / "uv-cache-2")}  # uv would serve the locked hash from its cache
    result = cli("env", "create", str(root), env=env)
    assert result.code == 2 and "hash mismatch" in result.err.lower(), result.err
    assert len(result.err.strip().splitlines()) == 1
    assert cli("env", "create", str(root), "--update", env=env).code == 0  # re-resolving accepts the new wheel


def test_python_env_uses_another_installed_python(tmp_path, cli, project):
    from orchestra.envs import uvtool

    others = [v for v in uvtool.installed_versions() if not v.startswith(envkit.PY_MINOR + ".")
              and v.startswith("3.") and int(v.split(".")[1]) >= 8]
    if not others:
        pytest.skip("only one Python 3 minor version is installed here")
    minor = ".".join(others[-1].split(".")[:2])
    root = project(projects.python_env_main("\"python -c 'import sys, tinypkg; "
                                            "print(*sys.version_info[:2], sep=chr(46))'\""),
                   {"python_env.yaml": f"python: '{minor}'\ndependencies: [tinypkg]\n"}, name="proj")
    record = _run_json(cli, str(root))
    assert _stdout(record, "main").strip() == minor


def test_env_manager_uv_without_any_env_file_builds_a_bare_venv(tmp_path, cli, project):
    root = project("name: p\nentry_points:\n  main:\n"
                   "    command: \"python -c 'import sys; print(sys.prefix != sys.base_prefix, sys.prefix)'\"\n",
                   {}, name="proj")
    record = _run_json(cli, str(root), "--env-manager", "uv")
    in_venv, prefix = _stdout(record, "main").split()
    assert in_venv == "True" and Path(prefix).name.startswith("python-")
    local = _run_json(cli, str(root), "--no-cache")
    # Without --env-manager the stage runs in the caller's Python (itself a venv, sometimes).
    local_prefix = _stdout(local, "main").split()[1]
    assert local_prefix != prefix and not Path(local_prefix).name.startswith("python-")


def test_python_env_requirements_file_is_part_of_the_key(tmp_path, cli, project):
    root = project(projects.python_env_main("\"python -c 'import tinypkg; print(tinypkg.VERSION)'\""),
                   {"python_env.yaml": f"python: '{envkit.PY_MINOR}'\ndependencies: [-r requirements.txt]\n",
                    "requirements.txt": "tinypkg==1.0\n"}, name="proj")
    assert _stdout(_run_json(cli, str(root)), "main").strip() == "1.0"
    (root / "requirements.txt").write_text("tinypkg==2.0\n")
    record = _run_json(cli, str(root))
    assert record["stages"][0]["status"] == "FINISHED" and _stdout(record, "main").strip() == "2.0"


def test_conda_variables_are_set_for_the_stage(tmp_path, cli, channel, project):
    root = tmp_path / "proj"
    root.mkdir()
    project(projects.conda_main("'echo $MY_SETTING'"),
            {"conda.yaml": _conda_yaml(root, channel, "  - hellolib\nvariables:\n  MY_SETTING: on-42\n")}, name="proj")
    assert _stdout(_run_json(cli, str(root)), "main").strip() == "on-42"


def test_warm_reuse_takes_no_lock_and_no_solve(tmp_path, cli, wheels, orchestra_home, project):
    root = project(projects.python_env_main("\"python -c 'import tinypkg; print(tinypkg.VERSION)'\""),
                   {"python_env.yaml": f"python: '{envkit.PY_MINOR}'\ndependencies: [tinypkg==1.0]\n"}, name="proj")
    first = _run_json(cli, str(root))
    key = first["stages"][0]["env_key"]
    shutil.rmtree(wheels)  # a solve now would fail: nothing to resolve from
    lock = orchestra_home / "envs" / f"{key}.lock"
    lock.unlink()
    lock.mkdir()  # and so would taking the env's filelock
    again = _run_json(cli, str(root), "--no-cache")
    assert again["stages"][0]["env_key"] == key and _stdout(again, "main").strip() == "1.0"
    assert len(_builds(orchestra_home)) == 1 and _builds(orchestra_home, "waiting") == []


def test_conda_activation_scripts_set_their_variables(tmp_path, cli, channel, project):
    root = tmp_path / "proj"
    root.mkdir()
    project(projects.conda_main("'echo $HELLO_DATA; cat $HELLO_DATA/README; echo $CONDA_PREFIX'"),
            {"conda.yaml": _conda_yaml(root, channel, "  - hellodata\n")}, name="proj")
    data, content, prefix = _stdout(_run_json(cli, str(root)), "main").split()
    assert data == f"{prefix}/share/hellodata" and content == "data"  # the final path, not the build dir


def test_a_cold_build_is_reported_and_a_warm_reuse_is_silent(tmp_path, cli, channel, project):
    root = tmp_path / "proj"
    root.mkdir()
    project(projects.conda_main("'hello'"),
            {"conda.yaml": _conda_yaml(root, channel, "  - hello=0.1\n")}, name="proj")
    first = cli("run", str(root))
    assert first.code == 0, first.err
    assert "orchestra: built conda env" in first.err
    assert "building environment" not in first.err  # "building …" is a transient line, on a terminal only
    again = cli("run", str(root), "--no-cache")
    assert again.code == 0 and "building environment" not in again.err and "built " not in again.err
