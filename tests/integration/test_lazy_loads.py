"""A loaded stage's tree of links is made only when something reads it.

Real CLI runs in subprocesses, real files and a real ``gc``: a warm run records its loaded
stages without a directory each, and every reader — a stage that runs, ``runs show``, the UI's
artifact route, a ``runs:/`` parameter, a later run — still sees the right files."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

import pytest

from orchestra.store import db

pytestmark = pytest.mark.integration

# a and b are independent; c reads b only; d reads c (a and c each write one file).
FAN = """
entry_points:
  a: {command: "echo alpha > {outputs}/a.txt"}
  b:
    parameters: {n: {type: string, default: "1"}}
    command: "mkdir -p {outputs}/sub && echo beta{n} > {outputs}/sub/b.txt && cp {outputs}/sub/b.txt {outputs}/b.txt"
  c:
    parameters: {p: {type: string, default: "1"}}
    depends_on: [b]
    command: "cat {inputs.b}/sub/b.txt > {outputs}/c.txt && echo c{p} >> {outputs}/c.txt"
"""


def run_json(cli, *args: str) -> dict:
    result = cli("run", *args, "--json", "-q", "--env-manager", "local")
    assert result.code == 0, result.err
    return json.loads(result.out)


def run_quiet(cli, *args: str) -> str:
    """A run as the benchmark runs it (no --json: nothing reads the outputs)."""
    result = cli("run", *args, "-q", "--env-manager", "local")
    assert result.code == 0, result.err
    db.reset_connections()
    from orchestra.store import runs

    return runs.list_runs(limit=1)[0].run_id


def stage_dirs(home: Path, run_id: str) -> list[str]:
    return sorted(p.name for p in (home / "runs" / run_id).iterdir() if p.is_dir())


def test_a_warm_run_links_no_tree_yet_every_reader_sees_the_files(cli, make_project, orchestra_home):
    root = make_project(FAN)
    run_json(cli, str(root), "-e", "a", "-e", "c")
    warm = run_quiet(cli, str(root), "-e", "a", "-e", "c")
    assert stage_dirs(orchestra_home, warm) == []  # three stages loaded, no directory made for them
    from orchestra.app import browse

    path = browse.artifact_path(warm, "b", "sub/b.txt")  # the UI reads, never writes: the object itself
    assert path.read_text() == "beta1\n" and stage_dirs(orchestra_home, warm) == []
    shown = cli("runs", "show", warm, "--json")
    assert shown.code == 0, shown.err
    record = {s["name"]: s for s in json.loads(shown.out)["stages"]}
    assert {s["status"] for s in record.values()} == {"LOADED"}
    assert (Path(record["a"]["outputs_dir"]) / "a.txt").read_text() == "alpha\n"
    assert (Path(record["b"]["outputs_dir"]) / "sub" / "b.txt").read_text() == "beta1\n"
    assert (Path(record["c"]["outputs_dir"]) / "c.txt").read_text() == "beta1\nc1\n"
    linked = Path(record["b"]["outputs_dir"]) / "b.txt"
    assert not os.access(linked, os.W_OK) or os.geteuid() == 0  # links to the read-only objects
    assert oct(linked.stat().st_mode & 0o777) == oct(0o444) and linked.stat().st_nlink >= 2
    again = cli("runs", "show", warm)  # linked once: a second reader keeps the tree
    assert again.code == 0 and f"outputs: {record['a']['outputs_dir']}" in again.out


def test_a_stage_that_runs_gets_the_loaded_stages_it_reads_and_only_those(cli, make_project, orchestra_home):
    root = make_project(FAN)
    run_json(cli, str(root), "-e", "a", "-e", "c")
    changed = run_quiet(cli, str(root), "-e", "a", "-e", "c", "-P", "c.p=2")
    db.reset_connections()
    from orchestra.store import runs

    by_name = {s.name: s for s in runs.get_run(changed).stages}
    assert [by_name[n].status for n in "abc"] == ["LOADED", "LOADED", "FINISHED"]
    assert (Path(by_name["c"].outputs_dir) / "c.txt").read_text() == "beta1\nc2\n"
    assert (Path(by_name["b"].outputs_dir) / "sub" / "b.txt").read_text() == "beta1\n"  # c's input: linked
    assert not Path(by_name["a"].outputs_dir).exists()  # read by nothing yet
    assert sorted(stage_dirs(orchestra_home, changed)) == ["b", "c"]


def test_gc_keeps_the_objects_of_loaded_stages_whose_source_run_is_gone(cli, make_project, orchestra_home):
    root = make_project(FAN)
    cold = run_json(cli, str(root), "-e", "a", "-e", "c")
    warm = run_quiet(cli, str(root), "-e", "a", "-e", "c")
    assert stage_dirs(orchestra_home, warm) == []
    gc = cli("gc", "--keep-last", "1")  # deletes the run that computed them, and its trees
    assert gc.code == 0, gc.err
    assert not (orchestra_home / "runs" / cold["run_id"]).exists()
    shown = json.loads(cli("runs", "show", warm, "--json").out)
    record = {s["name"]: s for s in shown["stages"]}
    assert (Path(record["c"]["outputs_dir"]) / "c.txt").read_text() == "beta1\nc1\n"
    assert (Path(record["b"]["outputs_dir"]) / "sub" / "b.txt").read_text() == "beta1\n"
    later = run_json(cli, str(root), "-e", "a", "-e", "c")  # loads from the warm run's records
    assert {s["status"] for s in later["stages"]} == {"LOADED"}
    assert {s["loaded_from"]["run_id"] for s in later["stages"]} == {warm}
    assert (Path({s["name"]: s for s in later["stages"]}["c"]["outputs_dir"]) / "c.txt").read_text() == "beta1\nc1\n"


def test_gc_keeps_the_objects_of_loaded_stages_never_linked(cli, make_project, orchestra_home):
    """The run that computed them is deleted before anything reads the warm run's stages."""
    root = make_project(FAN)
    run_json(cli, str(root), "-e", "a", "-e", "c")
    warm = run_quiet(cli, str(root), "-e", "a", "-e", "c")
    before = {p for p in (orchestra_home / "objects").rglob("*") if p.is_file()}
    assert cli("gc", "--keep-last", "1").code == 0
    assert {p for p in (orchestra_home / "objects").rglob("*") if p.is_file()} == before
    assert stage_dirs(orchestra_home, warm) == []
    assert cli("gc", "--keep-last", "0").code == 0  # and once no stage names them, they go
    assert not any(p.is_file() for p in (orchestra_home / "objects").rglob("*"))


def test_a_runs_uri_reads_a_loaded_stage(cli, make_project, orchestra_home):
    root = make_project(FAN)
    run_json(cli, str(root), "-e", "b")
    warm = run_quiet(cli, str(root), "-e", "b")
    assert stage_dirs(orchestra_home, warm) == []
    consumer = make_project("""
        entry_points:
          main:
            parameters: {data: path}
            command: "cat {data} > {outputs}/o.txt"
    """)
    made = run_json(cli, str(consumer), "-P", f"data=runs:/{warm}/b/sub/b.txt")
    assert (Path(made["stages"][0]["outputs_dir"]) / "o.txt").read_text() == "beta1\n"


def exclusive_free(home: Path) -> bool:
    """Whether ``gc`` could take the objects lock now (another open file: as another process)."""
    fd = os.open(home / "locks" / "objects.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def test_a_warm_run_writes_its_loaded_stages_before_gc_may_run(cli, make_project, orchestra_home, monkeypatch):
    """gc takes the objects lock alone, then reads what the store names: a run holds the lock
    from its first load until its loaded stages are written (the run in process here, to look at
    the lock at the moment they are written)."""
    from orchestra.app import api
    from orchestra.core.options import RunOptions, Selection
    from orchestra.store import runs

    root = make_project(FAN)
    run_json(cli, str(root), "-e", "a", "-e", "c")
    seen: list[bool] = []
    write = runs.update_stages

    def watched(run_id, updates):
        seen.append(exclusive_free(orchestra_home))
        write(run_id, updates)

    monkeypatch.setattr(runs, "update_stages", watched)
    db.reset_connections()
    result = api.run(str(root), RunOptions(selection=Selection(entry_points=("a", "c")), quiet=True), record=False)
    assert result.exit_code == 0 and result.record is None
    assert seen == [False]  # the three loads, written in one transaction, under the lock
    assert exclusive_free(orchestra_home)  # and let go once written


def test_the_hold_is_released_by_the_recorder_once(orchestra_home):
    from orchestra.app.identity import RunIdentity
    from orchestra.app.recorder import RunRecorder
    from orchestra.store.objects_lock import Hold

    def free() -> bool:
        return exclusive_free(orchestra_home)

    hold = Hold()
    hold.take()
    hold.take()  # taken again by the next load: still one share
    assert not free()
    RunRecorder(RunIdentity("r" * 32, "Default"), targets=(), stages=(), hold=hold).flush()
    assert free()
    hold.release()  # released twice: nothing more happens
    assert free()


def test_a_deep_stage_links_the_far_loaded_stage_it_reads_and_no_other(cli, make_project, orchestra_home):
    """Past MAX_INPUT_VARIABLES upstream stages, the driver links the stages a running stage is
    given a variable for; ``orchestra.stage.input_path`` links a far one when it reads it."""
    from tests.integration.test_long_chain_inputs import READER, chain

    from orchestra.execution.task import MAX_INPUT_VARIABLES

    n = MAX_INPUT_VARIABLES + 6
    root = make_project(chain(n).replace("command: \"python reader.py",
                                          "parameters: {p: {type: string, default: \"1\"}}\n    command: \"python reader.py"),
                        {"reader.py": READER})
    run_json(cli, str(root), "-e", "last")
    warm = run_quiet(cli, str(root), "-e", "last", "-P", "last.p=2", "--env-manager", "local")
    db.reset_connections()
    from orchestra.store import runs

    by_name = {s.name: s for s in runs.get_run(warm).stages}
    assert by_name["last"].status == "FINISHED" and by_name["s0"].status == "LOADED"
    seen = json.loads((Path(by_name["last"].outputs_dir) / "seen.json").read_text())
    assert seen["s0"] == "s0\n" and seen["named"] == "s1\n" and seen["file"]
    assert set(stage_dirs(orchestra_home, warm)) == {"s0", "s1", f"s{n - 1}", "last"}  # read, or given
    assert (Path(by_name["s0"].outputs_dir) / "me.txt").stat().st_nlink >= 2  # links to the object
    shown = json.loads(cli("runs", "show", warm, "--json").out)  # the rest, when read
    assert all((Path(s["outputs_dir"]) / "me.txt").read_text() == f"{s['name']}\n"
               for s in shown["stages"] if s["name"].startswith("s"))
