"""The worker side of remote executors, without a cluster: rewriting the driver's paths into
this host's, and the per-process supervisor's pgid list."""

from __future__ import annotations

import os
import re
import signal
import subprocess

import pytest

from orchestra.execution.executors import worker
from orchestra.execution.executors.worker import _Rewriter


def _alternation(mapping: dict[str, str], text: str) -> str:
    """What the rewriting means: one regex of every path, longest first."""
    keys = sorted(mapping, key=len, reverse=True)
    if not keys:
        return text
    return re.sub("|".join(map(re.escape, keys)), lambda m: mapping[m.group(0)], text)


def test_paths_are_rewritten_longest_first_left_to_right():
    mapping = {"/h/runs/r/a": "/w/A", "/h/runs/r/ab": "/w/AB", "/h/runs/r/a/x": "/w/AX", "/h/other": "/w/O"}
    rewrite = _Rewriter(mapping)
    assert rewrite("/h/runs/r/a") == "/w/A"  # a whole value
    assert rewrite("cat /h/runs/r/ab/f /h/runs/r/a/x/g /h/runs/r/a/y > /h/other/o") == \
        "cat /w/AB/f /w/AX/g /w/A/y > /w/O/o"
    assert rewrite("/h/runs/r/a/h/runs/r/ab") == "/w/A/w/AB"  # adjacent paths
    assert rewrite("no paths here, /h/run") == "no paths here, /h/run"
    assert _Rewriter({})("/h/runs/r/a") == "/h/runs/r/a"


def test_rewriting_matches_an_alternation_of_every_path():
    import random

    rng = random.Random(7)
    for _ in range(2000):
        base = rng.choice(["/h/runs/r1/", "/a/", "/h/runs/r1/stages/s1"])
        mapping = {base + "".join(rng.choice("ab/") for _ in range(rng.randint(0, 6))): f"<{i}>"
                   for i in range(rng.randint(0, 8))}
        text = "".join(rng.choice([base, "a", "b", "/", " ", "x"]) for _ in range(rng.randint(0, 30)))
        text += "".join(key + rng.choice(["", "/me.txt", " "]) for key in list(mapping)[:3])
        assert _Rewriter(mapping)(text) == _alternation(mapping, text), (mapping, text)


def test_a_long_chain_of_upstream_paths_is_rewritten_without_a_regex_of_them_all():
    mapping = {f"/home/u/runs/abc/stages/s{i}/outputs": f"/w/inputs/{i}" for i in range(3000)}
    rewrite = _Rewriter(mapping)
    assert not hasattr(rewrite, "pattern")
    assert rewrite("cat /home/u/runs/abc/stages/s2999/outputs/me.txt /home/u/runs/abc/stages/s29/outputs/x") == \
        "cat /w/inputs/2999/me.txt /w/inputs/29/x"


@pytest.fixture
def fresh_supervisor(tmp_path, monkeypatch):
    monkeypatch.setenv("ORCHESTRA_WORKER_DIR", str(tmp_path / "worker"))
    monkeypatch.setattr(worker, "_supervisor", None)
    sup = worker.supervisor()
    yield sup
    sup.groups.close()


def test_the_supervisor_lists_the_groups_alive_in_one_file_rewritten_in_place(fresh_supervisor):
    sup = fresh_supervisor
    registry = worker._TaskRegistry(sup)
    procs = [subprocess.Popen(["sleep", "30"], start_new_session=True) for _ in range(2)]
    try:
        inode = os.stat(sup.pgid_file).st_ino
        registry.add(procs[0], ("true", "cleanup-arg"))
        registry.add(procs[1])
        assert sup.pgid_file.read_text().split() == [str(procs[0].pid), str(procs[1].pid)]
        # The watchdog also runs the stages' cleanup commands (a docker_env stage's container).
        assert "cleanup-arg" in sup.pgid_file.with_name("pgids.cleanup").read_text()
        registry.remove(procs[0])
        assert sup.pgid_file.read_text().split() == [str(procs[1].pid)]
        assert os.stat(sup.pgid_file).st_ino == inode  # written in place: no new file per stage
        assert sup.groups._watchdog is not None and sup.groups._watchdog.poll() is None
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_each_worker_thread_reuses_one_scratch_directory_emptied_of_earlier_attempts(tmp_path):
    import threading

    first = worker._thread_scratch(tmp_path)
    (first / "logs").mkdir()
    (first / "logs" / "stdout.log").write_text("an earlier attempt's log")
    (first / "out" / "deep").mkdir(parents=True)
    (first / "out" / "deep" / "o.txt").write_text("x")
    (first / "tracking.jsonl").write_text("{}")
    again = worker._thread_scratch(tmp_path)
    assert again == first
    assert [p.name for p in first.iterdir()] == ["logs"] and not list((first / "logs").iterdir())
    other: list = []
    thread = threading.Thread(target=lambda: other.append(worker._thread_scratch(tmp_path)))
    thread.start()
    thread.join()
    assert other[0] != first and other[0].is_dir()  # threads running attempts at once never share one
