"""`orchestra schedule …` through real processes: run-due launching real runs, races, git fetched
at fire time, bad input, failures, sync, and the schedule webhooks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import jsonschema
import pytest

from orchestra.app.schedule import store
from orchestra.store import runs as runstore
from tests import projects
from tests.conftest import REPO_ROOT
from tests.hooks_receiver import Receiver, Reply, wait_until

pytestmark = pytest.mark.integration


def slot_after(minutes: int = 1) -> tuple[str, str]:
    """(--at value a few seconds past the `minutes`-th minute boundary after the newest schedule
    was added, that slot's UTC key) — counted from the add, so a boundary passing meanwhile
    cannot add a slot the test did not expect."""
    added = max((s.created_at for s in store.all_schedules()), default=datetime.now(timezone.utc).timestamp())
    boundary = datetime.fromtimestamp(added, tz=timezone.utc).replace(second=0, microsecond=0) + timedelta(minutes=minutes)
    return (boundary + timedelta(seconds=3)).isoformat(), boundary.strftime("%Y-%m-%dT%H:%M:%SZ")


def scheduled_runs(name: str) -> list[dict]:
    return [r.to_json() for r in runstore.list_runs(limit=1000) if r.tags.get("orchestra.schedule") == name]


def one_line_error(result) -> str:
    assert result.code == 2, (result.code, result.err)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("orchestra: error: "), result.err
    assert "Traceback" not in result.err
    return lines[0]


@pytest.mark.parametrize("args, needle", [
    (("--cron", "@reboot"), "@reboot is not supported"),
    (("--cron", "0 0 2 * * *"), "seconds and year fields are not supported"),
    (("--cron", "H 2 * * *"), "H/R"),
    (("--cron", "0 25 * * *"), "--cron: cron '0 25 * * *': bad hour"),
    (("--cron", "0 2 * * *", "--timezone", "Europe/Atlantis"), "--timezone: unknown time zone 'Europe/Atlantis'"),
    (("--cron", "0 2 * * *", "--jitter", "-5"), "--jitter: jitter -5 is out of range"),
    (("--cron", "0 2 * * *", "-P", "novalue"), "is not KEY=VALUE"),
])
def test_bad_schedule_input_is_exit_2_one_line(cli, project, args, needle) -> None:
    root = project(projects.SCHEDULED)
    line = one_line_error(cli("schedule", "add", "nightly", str(root), *args))
    assert needle in line
    assert store.all_schedules() == []


def test_other_bad_input(cli, project, tmp_path: Path) -> None:
    root = project(projects.SCHEDULED)
    assert "invalid schedule name" in one_line_error(cli("schedule", "add", "bad name", str(root), "--cron", "@daily"))
    assert "no such project directory" in one_line_error(cli("schedule", "add", "x", str(tmp_path / "nope"), "--cron", "@daily"))
    assert "no schedule named 'ghost'" in one_line_error(cli("schedule", "next", "ghost"))
    assert "not an ISO-8601 time" in one_line_error(cli("schedule", "run-due", "--at", "yesterday"))
    assert "--hooks" in one_line_error(cli("schedule", "add", "x", str(root), "--cron", "@daily",
                                           "--hooks", str(tmp_path / "nohooks.json")))
    assert cli("schedule", "add", "x", str(root), "--cron", "@daily").code == 0
    assert "already exists" in one_line_error(cli("schedule", "add", "x", str(root), "--cron", "@hourly"))
    assert "invalid choice" in one_line_error(cli("schedule", "add", "y", str(root), "--cron", "@daily",
                                                  "--overlap", "sometimes"))


@pytest.mark.parametrize("entry, needle", [
    ("{cron: '0 2 * * * *'}", "MLproject: schedules.nightly.cron: cron '0 2 * * * *' has 6 field(s)"),
    ("{cron: '@reboot'}", "MLproject: schedules.nightly.cron: cron @reboot is not supported"),
    ("{cron: '0 2 * * *', timezone: Moon/Base}", "MLproject: schedules.nightly.timezone: unknown time zone"),
    ("{cron: '0 2 * * *', overlap: sometimes}", "schedules.nightly.overlap"),
    ("{timezone: UTC}", "schedules.nightly"),
    ("{cron: '@daily', entry_points: [trian]}", "MLproject: schedules.nightly.entry_points: unknown entry point 'trian'"),
    ("{cron: '@daily', timezon: Europe/Berlin}", "MLproject: schedules.nightly.timezon: unknown key 'timezon'"),
])
def test_sync_names_file_and_key_path(cli, project, entry: str, needle: str) -> None:
    root = project(projects.SCHEDULED.plus(f"schedules:\n  nightly: {entry}\n"))
    assert needle in one_line_error(cli("schedule", "sync", str(root)))
    if "entry_points" not in needle:  # validate checks the section too (it does not resolve targets)
        assert needle.split(": ", 1)[-1] in one_line_error(cli("validate", str(root)))


def test_run_due_launches_through_orchestra_run(cli, project) -> None:
    root = project(projects.SCHEDULED)
    added = cli("schedule", "add", "nightly", str(root), "--cron", "* * * * *", "-P", "alpha=0.3")
    assert added.code == 0, added.err
    assert added.out.count("next: ") == 3
    at, key = slot_after()
    due = cli("schedule", "run-due", "--at", at)
    assert due.code == 0, due.err
    assert f"nightly {key.replace('Z', '+00:00')} launched" in due.out
    [run] = scheduled_runs("nightly")
    assert run["status"] == "FINISHED"
    assert run["params"]["alpha"] == "0.3"
    assert run["tags"]["orchestra.scheduled_for"] == key.replace("Z", "+00:00")
    log = Path(run["stages"][0]["log_paths"]["stdout"]).read_text()
    assert f"alpha 0.3 schedule nightly for {key.replace('Z', '+00:00')}" in log
    [firing] = [f for f in store.firings("nightly") if f["state"] == "launched"]
    assert firing["run_id"] == run["run_id"] and firing["run_status"] == "FINISHED"
    history = cli("schedule", "history", "nightly")
    assert f"launched run {run['run_id']} FINISHED" in history.out
    # The same --at again: the slot is taken, nothing new starts.
    again = cli("schedule", "run-due", "--at", at)
    assert again.code == 0 and again.out == ""
    assert len(scheduled_runs("nightly")) == 1


def test_two_run_due_processes_racing_launch_each_slot_once(cli, project) -> None:
    root = project(projects.SCHEDULED)
    for name in ("a", "b", "c"):
        assert cli("schedule", "add", name, str(root), "--cron", "* * * * *", "--overlap", "allow").code == 0
    at, key = slot_after()
    procs = [subprocess.Popen([sys.executable, "-m", "orchestra", "schedule", "run-due", "--at", at, "--json"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    launched = [o for out, _ in outs for o in json.loads(out) if o["state"] == "launched"]
    assert sorted(o["schedule"] for o in launched) == ["a", "b", "c"]  # each once, across both
    for name in ("a", "b", "c"):
        assert len(scheduled_runs(name)) == 1
        assert [f["scheduled_for"] for f in store.firings(name) if f["state"] == "launched"] == [key]


def test_bad_uri_and_failing_run_are_recorded_and_do_not_stop_others(cli, project, tmp_path: Path) -> None:
    root = project(projects.SCHEDULED)
    assert cli("schedule", "add", "good", str(root), "--cron", "* * * * *").code == 0
    assert cli("schedule", "add", "failing", str(root), "--cron", "* * * * *", "-P", "alpha=-1").code == 0
    missing = (tmp_path / "missing.git").as_uri()
    assert cli("schedule", "add", "nowhere", missing, "--cron", "* * * * *").code == 0
    at, key = slot_after()
    due = cli("schedule", "run-due", "--at", at)
    assert due.code == 1, due.err  # a run failed: system cron mails the owner
    assert scheduled_runs("good")[0]["status"] == "FINISHED"
    assert scheduled_runs("failing")[0]["status"] == "FAILED"
    [bad] = store.firings("nowhere")
    assert bad["state"] == "launch_failed"
    assert "missing.git" in bad["reason"] and bad["run_id"] is None
    history = cli("schedule", "history", "nowhere")
    assert "launch_failed" in history.out


def _git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@x"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


def test_git_project_is_fetched_at_fire_time(cli, project, tmp_path: Path) -> None:
    repo = project(projects.SCHEDULED, name="repo")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "one")
    first = _git(repo, "rev-parse", "HEAD")
    assert cli("schedule", "add", "g", repo.as_uri(), "--cron", "* * * * *", "--version", "main").code == 0
    at1, _ = slot_after(1)
    assert cli("schedule", "run-due", "--at", at1).code == 0
    (repo / "report.py").write_text(projects.SCHEDULED.files["report.py"] + "\nprint('second version')\n")
    _git(repo, "commit", "-qam", "two")
    second = _git(repo, "rev-parse", "HEAD")
    at2, _ = slot_after(2)
    assert cli("schedule", "run-due", "--at", at2).code == 0
    commits = [r["tags"]["mlflow.source.git.commit"] for r in reversed(scheduled_runs("g"))]
    assert commits == [first, second]


@pytest.mark.parametrize("overlap", ["skip", "queue", "allow"])
def test_overlap_with_real_runs(cli, make_project, tmp_path: Path, overlap: str) -> None:
    gate = tmp_path / "gate"
    root = make_project("""
        name: slow
        entry_points:
          main:
            command: "python wait.py"
    """, {"wait.py": f"""
        import pathlib, time
        deadline = time.time() + 60
        while not pathlib.Path({str(gate)!r}).exists() and time.time() < deadline:
            time.sleep(0.05)
    """})
    assert cli("schedule", "add", "slow", str(root), "--cron", "* * * * *", "--overlap", overlap).code == 0
    at1, _ = slot_after(1)
    assert cli("schedule", "run-due", "--at", at1, "--no-wait").code == 0
    wait_until(lambda: scheduled_runs("slow"))
    at2, _ = slot_after(2)
    second = cli("schedule", "run-due", "--at", at2, "--no-wait")
    expected = {"skip": "skipped: overlap: the previous run of this schedule is still running",
                "queue": "pending: waiting for the schedule's running run to end", "allow": "launched"}[overlap]
    assert expected in second.out
    if overlap == "allow":
        wait_until(lambda: len([r for r in scheduled_runs("slow") if r["status"] == "RUNNING"]) == 2)
    gate.write_text("go")
    wait_until(lambda: all(f["ended_at"] for f in store.firings("slow") if f["state"] == "launched"))
    third = cli("schedule", "run-due", "--at", at2)  # same time: only a queued slot can start now
    assert ("launched" in third.out) == (overlap == "queue")
    states = [f["state"] for f in reversed(store.firings("slow"))]
    assert states == {"skip": ["launched", "skipped"], "queue": ["launched", "launched"],
                      "allow": ["launched", "launched"]}[overlap]
    assert len(scheduled_runs("slow")) == (1 if overlap == "skip" else 2)


def test_sync_list_pause_resume_remove(cli, project) -> None:
    root = project(projects.SCHEDULED.plus("""
schedules:
  nightly: {cron: "30 2 * * *", timezone: Europe/Berlin, parameters: {alpha: 0.3}, overlap: queue}
  weekly: {cron: "@weekly", catchup: none}
"""))
    synced = cli("schedule", "sync", str(root))
    assert synced.code == 0, synced.err
    assert "schedule nightly added" in synced.out and "schedule weekly added" in synced.out
    assert "unchanged" in cli("schedule", "sync", str(root)).out
    nightly = store.get("nightly").schedule
    assert (nightly.timezone, nightly.params, nightly.overlap, nightly.uri) == \
        ("Europe/Berlin", ("alpha=0.3",), "queue", str(root))
    listing = json.loads(cli("schedule", "list", "--json").out)
    assert [r["name"] for r in listing] == ["nightly", "weekly"]
    nxt = cli("schedule", "next", "nightly", "-n", "2", "--after", "2026-03-28T12:00:00Z")
    assert "2026-03-29T03:00:00+02:00  (2026-03-29T01:00:00Z)" in nxt.out  # gap: fires when it ends
    assert "2026-03-30T02:30:00+02:00  (2026-03-30T00:30:00Z)" in nxt.out
    assert cli("schedule", "pause", "weekly").code == 0
    assert "(paused)" in cli("schedule", "list").out
    assert "already was resumed" not in cli("schedule", "resume", "weekly").out
    # The MLproject drops `weekly`: sync removes what it had registered.
    (root / "MLproject").write_text(projects.SCHEDULED.mlproject + "schedules:\n  nightly: {cron: '30 2 * * *', timezone: Europe/Berlin}\n")
    resynced = cli("schedule", "sync", str(root))
    assert "schedule nightly updated" in resynced.out and "schedule weekly removed" in resynced.out
    assert cli("schedule", "remove", "nightly").code == 0
    assert cli("schedule", "list").err.startswith("no schedules")


def next_half_hour(after: float) -> datetime:
    """The first :00/:30 UTC strictly after the unix time ``after`` (a ``*/30 * * * *`` slot)."""
    start = datetime.fromtimestamp(after, tz=timezone.utc).replace(second=0, microsecond=0)
    return start.replace(minute=0 if start.minute < 30 else 30) + timedelta(minutes=30)


def outbox_rows(conn) -> list[tuple]:
    """The webhook outbox as a failure message shows it: who holds what, and since when."""
    import time

    rows = conn.execute(
        "SELECT d.id, e.name, e.status, d.state, d.attempts, d.next_at, d.claimed_pid, d.last_error"
        " FROM deliveries d JOIN events e ON e.id = d.event_id ORDER BY d.id").fetchall()
    return [(*row[:5], None if row[5] is None else round(row[5] - time.time(), 1), *row[6:]) for row in rows]


def test_schedule_webhooks(cli, project, tmp_path: Path) -> None:
    schema = json.loads((REPO_ROOT / "schemas" / "webhook-event.schema.json").read_text())
    root = project(projects.SCHEDULED)
    with Receiver() as receiver:
        hooks = tmp_path / "hooks.json"
        hooks.write_text(json.dumps({"schedule_fired": [{"url": receiver.url, "name": "s"}],
                                     "schedule_skipped": [{"url": receiver.url, "name": "s"}],
                                     "run_ended": [{"url": receiver.url, "name": "s"}]}))
        assert cli("schedule", "add", "hooked", str(root), "--cron", "* * * * *", "--hooks", str(hooks)).code == 0
        # Counted from hooked's own add (a minute boundary may pass before the next add).
        at, key = slot_after(3)  # hooked: 2 missed (catchup latest), then the newest launched
        assert cli("schedule", "add", "broken", (tmp_path / "gone.git").as_uri(), "--cron", "*/30 * * * *",
                   "--catchup", "none", "--hooks", str(hooks)).code == 0
        # broken fires at :00/:30 only; run it at its first slot after its add, on time (nothing missed)
        half = next_half_hour(store.get("broken").created_at)
        # Only `hooked` here: `broken`'s own :00/:30 slot may fall inside this window (the test's clock).
        assert cli("schedule", "run-due", "hooked", "--at", at).code == 0
        assert cli("schedule", "run-due", "broken", "--at", (half + timedelta(seconds=2)).isoformat()).code == 1
        from orchestra.integrations.hooks import outbox

        conn = outbox.open_db()
        try:
            receiver.wait_for(6)
        except AssertionError:
            seen = [(r.json["event"], r.json["payload"]["schedule"]["name"]) for r in receiver.requests]
            raise AssertionError(f"received {seen}; deliveries {outbox_rows(conn)}") from None
        # The receiver records a request before answering it: wait for the answers to be stored.
        # Every event recorded was delivered by the processes that recorded it (no later command
        # is needed), and there were exactly six: no extra one is in flight.
        try:
            wait_until(lambda: conn.execute("SELECT COUNT(*) FROM deliveries WHERE state != 'delivered'")
                       .fetchone()[0] == 0)
        except AssertionError:
            raise AssertionError(f"deliveries not settled: {outbox_rows(conn)}") from None
        assert conn.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0] == 6, outbox_rows(conn)
        got = list(receiver.requests)
        assert len(got) == 6, (
            [(r.json["event"], r.json["status"], r.headers["x-orchestra-attempt"], r.headers["webhook-id"][-6:])
             for r in got],
            [tuple(row) for row in conn.execute("SELECT delivery_id, attempt, status_code, error, latency_ms"
                                                " FROM attempts")])
    bodies = [r.json for r in got]
    for body in bodies:
        jsonschema.Draft202012Validator(schema).validate(body)
    summary = sorted((b["payload"]["schedule"]["name"], b["event"], b["status"]) for b in bodies)
    hooked = [s for s in summary if s[0] == "hooked"]
    assert [s[1:] for s in hooked] == [("run_ended", "success"), ("schedule_fired", "launched"),
                                       ("schedule_skipped", "missed"), ("schedule_skipped", "missed")]
    assert [s[1:] for s in summary if s[0] == "broken"] == [("schedule_fired", "launch_failed"),
                                                            ("schedule_fired", "launched")]
    fired = next(b for b in bodies if b["event"] == "schedule_fired" and b["payload"]["schedule"]["name"] == "hooked")
    assert fired["payload"]["schedule"] == {"name": "hooked", "scheduled_for": key.replace("Z", "+00:00")}
    assert fired["payload"]["run"] is None
    failed = next(b for b in bodies if b["status"] == "launch_failed")
    assert "gone.git" in failed["payload"]["message"]
    ended = next(b for b in bodies if b["event"] == "run_ended")
    assert ended["payload"]["schedule"]["name"] == "hooked"


def test_run_due_ends_after_its_webhooks_are_answered(cli, tmp_path: Path) -> None:
    """A receiver slow to answer the first request: `run-due` (its run cannot start and ends at
    once) exits only after every webhook of its tick was answered, within the hooks drain. An
    attempt still in flight when a process exits is lost until some later orchestra command —
    with `run-due` from system cron a minute away, on a busy machine often."""
    with Receiver(lambda request, index: Reply(delay_s=6.0 if index == 0 else 0.0)) as receiver:
        hooks = tmp_path / "hooks.json"
        hooks.write_text(json.dumps({"schedule_fired": [{"url": receiver.url, "name": "s"}]}))
        assert cli("schedule", "add", "broken", (tmp_path / "gone.git").as_uri(), "--cron", "*/30 * * * *",
                   "--catchup", "none", "--hooks", str(hooks)).code == 0
        slot = next_half_hour(store.get("broken").created_at) + timedelta(seconds=2)
        assert cli("schedule", "run-due", "broken", "--at", slot.isoformat()).code == 1
        from orchestra.integrations.hooks import outbox

        rows = outbox_rows(outbox.open_db())
        assert [row[1:4] for row in rows] == [("schedule_fired", "launched", "delivered"),
                                              ("schedule_fired", "launch_failed", "delivered")], rows
        assert len(receiver.requests) == 2
