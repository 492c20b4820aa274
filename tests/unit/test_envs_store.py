"""The env store: marker written last, build-then-rename, one build across processes, sweeping."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestra.envs import store


def _slow_builder(tmp: Path, final: Path) -> None:
    import time

    (tmp / "bin").mkdir()
    (tmp / "bin" / "tool").write_text(str(final))
    time.sleep(0.3)  # widen the window in which the others must wait


def _ensure_in_child(home: str, out: str) -> None:
    os.environ["ORCHESTRA_HOME"] = home
    prefix, built = store.ensure("python-k1", _slow_builder, {"kind": "python", "key": "k1"})
    with open(out, "a") as f:
        f.write(json.dumps([str(prefix), built]) + "\n")


def test_four_processes_build_once(orchestra_home, tmp_path):
    out = tmp_path / "out.jsonl"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_ensure_in_child, args=(str(orchestra_home), str(out))) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * 4
    results = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(built for _, built in results) == [False, False, False, True]
    prefix = Path(results[0][0])
    assert {r[0] for r in results} == {str(prefix)} and store.is_valid(prefix)
    assert (prefix / "bin" / "tool").read_text() == str(prefix)  # told the final path while building
    events = [json.loads(line)["event"] for line in (orchestra_home / "envs" / "builds.log").read_text().splitlines()]
    assert events.count("built") == 1
    assert not [p for p in (orchestra_home / "envs").iterdir() if p.name.startswith(".tmp-")]


def test_a_failed_build_leaves_nothing(orchestra_home):
    def broken(tmp: Path, final: Path) -> None:
        (tmp / "half").write_text("x")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        store.ensure("conda-k2", broken, {})
    assert [p.name for p in (orchestra_home / "envs").iterdir() if not p.name.endswith(".lock")] == []
    prefix, built = store.ensure("conda-k2", lambda tmp, final: None, {})
    assert built and store.is_valid(prefix)


def test_in_place_build_without_marker_is_never_valid(orchestra_home):
    final = store.prefix_for("conda-k3")
    final.mkdir(parents=True)
    (final / "bin").mkdir()  # an in-place build that died before its marker
    assert not store.is_valid(final)
    assert store.published() == []
    prefix, built = store.ensure("conda-k3", lambda tmp, fin: (tmp / "ok").write_text(""), {}, relocatable=False)
    assert built and (prefix / "ok").exists() and not (prefix / "bin").exists()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_sweep_removes_builds_of_dead_processes_only(orchestra_home):
    envs = orchestra_home / "envs"
    envs.mkdir(exist_ok=True)
    dead = envs / f".tmp-python-k4-{_dead_pid()}-abcd"
    alive = envs / f".tmp-python-k5-{os.getppid()}-abcd"
    for d in (dead, alive):
        (d / "bin").mkdir(parents=True)
    removed = store.sweep()
    assert dead in removed and not dead.exists() and alive.exists()


def test_marker_mtime_is_last_use_and_remove_unpublishes(orchestra_home):
    prefix, _ = store.ensure("python-k6", lambda tmp, final: None, {"kind": "python", "spec": "/p/python_env.yaml"})
    os.utime(prefix / store.MARKER, (1_000_000, 1_000_000))
    [env] = store.published()
    assert (env.kind, env.key, env.spec, env.last_used) == ("python", "k6", "/p/python_env.yaml", 1_000_000)
    store.ensure("python-k6", lambda tmp, final: None, {})  # warm use touches the marker
    assert store.published()[0].last_used > 1_000_000
    assert store.remove(store.published()[0]) and not prefix.exists() and store.published() == []


def test_corrupt_resolution_cache_entry_is_a_miss(orchestra_home):
    store.write_resolved("abc", {"kind": "python", "key": "k"})
    assert store.read_resolved("abc")["key"] == "k"
    (orchestra_home / "envs" / "resolved" / "abc.json").write_text("{not json")
    assert store.read_resolved("abc") is None and store.peek_resolved("abc") is None
