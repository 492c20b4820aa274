"""Outputs as artifacts keyed by run; automatic reuse, --load-from, explainable plans."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

# Each stage appends its name to a ledger outside the project, so tests can see exactly which
# commands ran (the ledger is outside the project so it does not change the code digest).
PIPELINE = """
name: reuse
entry_points:
  a:
    parameters:
      x: {type: int, default: 1}
      constant: {type: bool, default: false}
    command: "echo a >> $LEDGER && python make.py a {x} {constant} {outputs}"
  b:
    depends_on: [a]
    parameters:
      y: {type: float, default: 0.5}
    command: "echo b >> $LEDGER && python make.py b {y} false {outputs} {inputs.a}"
  c:
    depends_on: [b]
    command: "echo c >> $LEDGER && python make.py c 0 false {outputs} {inputs.b}"
  side:
    command: "echo side >> $LEDGER && python make.py side 0 false {outputs}"
"""

MAKE = """
import sys, pathlib, hashlib
name, value, constant, out = sys.argv[1:5]
upstream = sys.argv[5] if len(sys.argv) > 5 else None
text = name + ("" if constant == "true" else value)
if upstream:
    text += hashlib.sha256(b"".join(p.read_bytes() for p in sorted(pathlib.Path(upstream).iterdir()))).hexdigest()
(pathlib.Path(out) / f"{name}.txt").write_text(text)
"""


@pytest.fixture
def pipeline(make_project, tmp_path, monkeypatch):
    ledger = tmp_path / "ledger.txt"
    ledger.touch()
    monkeypatch.setenv("LEDGER", str(ledger))
    root = make_project(PIPELINE, {"make.py": MAKE})
    return root, ledger


def ran(ledger: Path) -> list[str]:
    lines = ledger.read_text().split()
    ledger.write_text("")
    return sorted(lines)


def run_json(cli, root, *args, code=0):
    result = cli("run", str(root), "--json", "-j", "2", *args)
    assert result.code == code, result.err
    return json.loads(result.out), result.err


def statuses(record) -> dict[str, str]:
    return {s["name"]: s["status"] for s in record["stages"]}


def test_second_run_loads_every_stage_and_runs_no_command(cli, pipeline):
    root, ledger = pipeline
    first, _ = run_json(cli, root)
    assert ran(ledger) == ["a", "b", "c", "side"]
    second, err = run_json(cli, root)
    assert ran(ledger) == []
    assert set(statuses(second).values()) == {"LOADED"}
    for stage in second["stages"]:
        assert stage["loaded_from"]["run_id"] == first["run_id"]
        out = Path(stage["outputs_dir"])
        assert (out / f"{stage['name']}.txt").exists()
    # Loading is linking: the loaded file is the same inode as the first run's output.
    a1 = Path(first["stages"][0]["outputs_dir"]) / "a.txt"
    a2 = Path(second["stages"][0]["outputs_dir"]) / "a.txt"
    assert a1.stat().st_ino == a2.stat().st_ino
    assert "loaded" in err


def test_changing_one_parameter_reruns_exactly_its_dependents(cli, pipeline):
    root, ledger = pipeline
    run_json(cli, root)
    ran(ledger)
    record, err = run_json(cli, root, "-P", "y=0.25")
    assert ran(ledger) == ["b", "c"]
    assert statuses(record) == {"a": "LOADED", "b": "FINISHED", "c": "FINISHED", "side": "LOADED"}
    assert "param y 0.5 → 0.25" in err


def test_early_cutoff_identical_upstream_bytes_let_descendants_load(cli, pipeline):
    root, ledger = pipeline
    run_json(cli, root, "-P", "constant=true")
    ran(ledger)
    record, _ = run_json(cli, root, "-P", "constant=true", "-P", "x=2")
    # a reran (its param changed) but wrote the same bytes, so b and c load.
    assert ran(ledger) == ["a"]
    assert statuses(record)["b"] == "LOADED" and statuses(record)["c"] == "LOADED"


def test_no_cache_force_and_cache_false(cli, pipeline, make_project, tmp_path):
    root, ledger = pipeline
    run_json(cli, root)
    ran(ledger)
    run_json(cli, root, "--no-cache")
    assert ran(ledger) == ["a", "b", "c", "side"]
    record, _ = run_json(cli, root, "--force", "b")
    # b reran and produced identical bytes: c follows its key and loads.
    assert ran(ledger) == ["b"]
    assert statuses(record)["c"] == "LOADED"
    text = (root / "MLproject").read_text().replace("  side:\n", "  side:\n    cache: false\n")
    (root / "MLproject").write_text(text)
    run_json(cli, root)
    ran(ledger)
    run_json(cli, root)
    assert ran(ledger) == ["side"]


def test_load_from_matching_and_mismatching_run_explains(cli, pipeline):
    root, ledger = pipeline
    base, _ = run_json(cli, root)
    other, _ = run_json(cli, root, "-P", "y=0.3")
    ran(ledger)
    # Prefer the base run: keys match, so every stage loads from it.
    record, _ = run_json(cli, root, "--load-from", base["run_id"])
    assert ran(ledger) == []
    assert {s["loaded_from"]["run_id"] for s in record["stages"]} == {base["run_id"]}
    # Ask for y=0.9 loading from base: b cannot be reused, and the reason is printed.
    record, err = run_json(cli, root, "-P", "y=0.9", "--load-from", base["run_id"])
    assert "param y 0.5 → 0.9" in err
    assert ran(ledger) == ["b", "c"]
    plan = cli("plan", str(root), "-P", "y=0.9", "--load-from", other["run_id"], "--json")
    assert plan.code == 0, plan.err
    by_stage = {s["stage"]: s for s in json.loads(plan.out)}
    assert by_stage["a"]["action"] == "LOAD"
    assert any("0.3 → 0.9" in r for r in by_stage["b"]["load_from_differences"])


def test_load_stages_trusts_outputs_even_when_keys_differ(cli, pipeline):
    root, ledger = pipeline
    base, _ = run_json(cli, root)
    ran(ledger)
    record, err = run_json(cli, root, "-P", "y=0.7", "--load-from", base["run_id"], "--load-stages", "b")
    assert ran(ledger) == []  # b trusted, so c's key matches the base run too
    assert statuses(record)["b"] == "LOADED"
    assert record["tags"]["orchestra.trusted_stages"] == "b"
    assert record["tags"]["orchestra.loaded_from"] == base["run_id"]
    assert "trusted" in err


def test_unknown_run_id_and_stage_are_exit_2_with_choices(cli, pipeline):
    root, _ = pipeline
    base, _ = run_json(cli, root, "-e", "a")
    bad = cli("run", str(root), "--load-from", "f" * 32)
    assert bad.code == 2 and "no run" in bad.err and len(bad.err.strip().splitlines()) == 1
    bad = cli("run", str(root), "--load-from", "not-hex!")
    assert bad.code == 2 and "invalid run id" in bad.err
    bad = cli("run", str(root), "--load-from", base["run_id"], "--load-stages", "b")
    assert bad.code == 2 and "stages with outputs: a" in bad.err
    bad = cli("run", str(root), "--load-from", base["run_id"], "--load-stages", "nope")
    assert bad.code == 2 and "selected:" in bad.err


def test_resume_a_failed_run_with_load_from(cli, make_project, tmp_path, monkeypatch):
    flag = tmp_path / "fail-b"
    flag.touch()
    monkeypatch.setenv("FLAG", str(flag))
    root = make_project("""
        entry_points:
          a: {command: "echo a > {outputs}/a"}
          b: {command: "test ! -e $FLAG && echo b > {outputs}/b", depends_on: [a]}
          c: {command: "echo c > {outputs}/c", depends_on: [b]}
    """)
    failed = cli("run", str(root), "--json")
    assert failed.code == 1
    record = json.loads(failed.out)
    assert statuses(record) == {"a": "FINISHED", "b": "FAILED", "c": "SKIPPED"}
    assert f"--load-from {record['run_id']}" in failed.err
    flag.unlink()
    resumed, _ = run_json(cli, root, "--load-from", record["run_id"])
    assert statuses(resumed) == {"a": "LOADED", "b": "FINISHED", "c": "FINISHED"}


def test_corrupted_object_is_detected_removed_and_rerun(cli, pipeline):
    root, ledger = pipeline
    first, _ = run_json(cli, root, "-e", "a")
    ran(ledger)
    out = Path(first["stages"][0]["outputs_dir"]) / "a.txt"
    os.chmod(out, stat.S_IWUSR | stat.S_IRUSR)  # the object itself, through its hardlink
    out.write_text("tampered")
    record, err = run_json(cli, root, "-e", "a")
    assert ran(ledger) == ["a"]
    assert "failed verification" in err or "cannot load" in err
    assert statuses(record)["a"] == "FINISHED"
    assert (Path(record["stages"][0]["outputs_dir"]) / "a.txt").read_text() == "a1"
    # And the next run loads the fresh, intact copy.
    record, _ = run_json(cli, root, "-e", "a")
    assert statuses(record)["a"] == "LOADED" and ran(ledger) == []


def test_concurrent_runs_share_the_store(cli, pipeline):
    import subprocess
    import sys

    root, ledger = pipeline
    procs = [subprocess.Popen([sys.executable, "-m", "orchestra", "run", str(root), "-q", "-P", f"y={i}"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(3)]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    listing = json.loads(cli("runs", "list", "--json").out)
    assert len(listing) == 3 and {r["status"] for r in listing} == {"FINISHED"}
    again, _ = run_json(cli, root, "-P", "y=1")
    assert set(statuses(again).values()) == {"LOADED"}


def test_gc_never_breaks_a_later_load(cli, pipeline):
    root, ledger = pipeline
    old, _ = run_json(cli, root, "-P", "y=0.1")
    keep, _ = run_json(cli, root, "-P", "y=0.2")
    ran(ledger)
    dry = cli("gc", "--keep-last", "1", "--dry-run")
    assert dry.code == 0 and "would delete 1 run" in dry.out
    assert cli("runs", "show", old["run_id"]).code == 0
    result = cli("gc", "--keep-last", "1")
    assert result.code == 0, result.err
    assert cli("runs", "show", old["run_id"]).code == 2
    assert not Path(old["stages"][1]["outputs_dir"]).exists()
    record, _ = run_json(cli, root, "-P", "y=0.2")
    assert set(statuses(record).values()) == {"LOADED"} and ran(ledger) == []
    record, _ = run_json(cli, root, "-P", "y=0.1")
    # Shared stages (a, side) were kept through the newer run; b and c rerun.
    assert ran(ledger) == ["b", "c"]


def test_symlink_escaping_outputs_is_refused(cli, make_project):
    root = make_project("""
        entry_points:
          main: {command: "ln -s /etc/hostname {outputs}/leak"}
    """)
    result = cli("run", str(root), "--json")
    assert result.code == 1
    record = json.loads(result.out)
    assert record["stages"][0]["status"] == "FAILED"
    assert "outside the output directory" in result.err
    assert record["stages"][0]["outputs_dir"] is None


def test_declared_outputs_must_exist(cli, make_project):
    root = make_project("""
        entry_points:
          main: {command: "echo hi > {outputs}/other.txt", outputs: [model.pkl]}
    """)
    result = cli("run", str(root))
    assert result.code == 1 and "declared output 'model.pkl' was not written" in result.err


def test_plan_and_dry_run_write_nothing(cli, pipeline, orchestra_home):
    root, ledger = pipeline
    run_json(cli, root)
    ran(ledger)
    before = sorted(p.relative_to(orchestra_home) for p in orchestra_home.rglob("*") if "cache" not in p.parts
                    and not p.name.endswith(("-wal", "-shm")))
    plan = cli("plan", str(root), "-P", "x=5")
    assert plan.code == 0, plan.err
    assert "a: RUN (param x 1 → 5)" in plan.out
    assert "b: RUN (decided after a (will run))" in plan.out
    assert "side: LOAD" in plan.out
    dry = cli("run", str(root), "--dry-run", "-P", "x=5")
    assert dry.code == 0 and "a: RUN" in dry.err
    after = sorted(p.relative_to(orchestra_home) for p in orchestra_home.rglob("*") if "cache" not in p.parts
                   and not p.name.endswith(("-wal", "-shm")))
    assert before == after and ran(ledger) == []
    assert len(json.loads(cli("runs", "list", "--json").out)) == 1


def test_runs_show_and_diff(cli, pipeline):
    root, _ = pipeline
    a, _ = run_json(cli, root)
    b, _ = run_json(cli, root, "-P", "y=0.75")
    show = cli("runs", "show", b["run_id"])
    assert show.code == 0 and "loaded_from" not in show.out
    assert f"from {a['run_id'][:8]}/a" in show.out and "cache key sha256:" in show.out and "output a.txt" in show.out
    diff = cli("runs", "diff", a["run_id"], b["run_id"])
    assert diff.code == 0, diff.err
    assert "param y" in diff.out and "param y 0.5 → 0.75" in diff.out
    assert "key same" in diff.out  # stage a


def test_stage_helpers(cli, make_project):
    root = make_project("""
        entry_points:
          make: {command: "python make.py"}
          use: {command: "python use.py", depends_on: [make]}
    """, {
        "make.py": """
            from orchestra import stage
            stage.output_path("deep/dir/x.txt").write_text("x")
            open("scratch.txt", "w").write("artifact")
            stage.log_artifact("scratch.txt")
            stage.log_metric("m", 1.5, step=2)
            stage.log_param("p", 3)
        """,
        "use.py": """
            from orchestra import stage
            assert stage.input_path("make", "deep/dir/x.txt").read_text() == "x"
            assert stage.input_path("make", "scratch.txt").read_text() == "artifact"
            try:
                stage.input_path("make", "../../../etc/passwd")
            except ValueError:
                pass
            else:
                raise SystemExit("escape allowed")
        """,
    })
    record, _ = run_json(cli, root)
    make = record["stages"][0]
    assert make["metrics"] == {"m": 1.5} and make["params"] == {"p": "3"}
    assert set(make["manifest"]) == {"deep/dir/x.txt", "scratch.txt"}
    assert statuses(record)["use"] == "FINISHED"
