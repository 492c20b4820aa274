"""The tick: due slots, catch-up after downtime, overlap, claims, changed definitions, the loop.

A fake clock and a fake launcher (a "run" is alive until the test ends it); no sleeps, no
processes. The real processes are in tests/integration/test_schedule_*.py.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from orchestra.app.schedule import manage, store
from orchestra.app.schedule.clock import FakeClock
from orchestra.app.schedule.daemon import Scheduler
from orchestra.app.schedule.tick import MAX_CATCHUP, tick

UTC = timezone.utc
T0 = datetime(2026, 3, 1, 12, 0, 30, tzinfo=UTC)


class FakeLauncher:
    """Records launches; each run "runs" (this live pid) until ``end`` is called."""

    def __init__(self, fail: bool = False) -> None:
        self.launched: list[dict[str, Any]] = []
        self.fail = fail

    def launch(self, firing: dict[str, Any]) -> tuple[int, str]:
        if self.fail:
            raise OSError("no such interpreter")
        self.launched.append(firing)
        return os.getpid(), "/dev/null"

    def slots(self) -> list[str]:
        return [f["scheduled_for"] for f in self.launched]

    def end(self, index: int = -1, status: str = "FINISHED") -> None:
        store.finish(self.launched[index]["id"], run_id="0" * 32, run_status=status, now=0.0)


def add(name: str = "job", cron: str = "*/10 * * * *", at: datetime = T0, **fields: Any) -> None:
    manage.add(name, os.getcwd(), cron, now=at.timestamp(), **fields)


def states(name: str = "job") -> list[tuple[str, str]]:
    return [(f["scheduled_for"], f["state"]) for f in reversed(store.firings(name, 1000))]


def test_nothing_fires_before_the_first_slot_after_adding() -> None:
    add()
    launcher = FakeLauncher()
    assert tick(T0 + timedelta(minutes=9), launcher).outcomes == []
    report = tick(T0 + timedelta(minutes=10), launcher)
    assert launcher.slots() == ["2026-03-01T12:10:00Z"]
    assert [o.state for o in report.outcomes] == ["launched"]
    assert tick(T0 + timedelta(minutes=10), launcher).outcomes == []  # same "now" again: nothing new
    assert report.next_fire_at == datetime(2026, 3, 1, 12, 20, tzinfo=UTC).timestamp()


@pytest.mark.parametrize("catchup, launched, missed", [
    ("latest", ["2026-03-01T14:50:00Z"], 16),
    ("none", [], 17),
    ("all", ["2026-03-01T14:10:00Z", "2026-03-01T14:20:00Z", "2026-03-01T14:30:00Z", "2026-03-01T14:40:00Z",
             "2026-03-01T14:50:00Z"], 12),
])
def test_downtime_follows_catchup(catchup: str, launched: list[str], missed: int) -> None:
    add(catchup=catchup, overlap="allow")
    launcher = FakeLauncher()
    # The scheduler was down from 12:00:30 to 14:55: 17 slots (12:10 … 14:50) came and went.
    report = tick(datetime(2026, 3, 1, 14, 55, tzinfo=UTC), launcher)
    assert launcher.slots() == launched
    assert len(report.states("missed")) == missed
    rows = states()
    assert len(rows) == 17  # every slot has exactly one row: nothing disappears silently
    assert [s for s, st in rows if st == "missed"] == [s for s, _ in rows if s not in launched]


def test_catchup_all_runs_the_backlog_one_after_another_unless_allowed() -> None:
    add(catchup="all")  # overlap skip
    launcher = FakeLauncher()
    tick(datetime(2026, 3, 1, 13, 5, tzinfo=UTC), launcher)  # 12:10 … 13:00: 6 slots, newest 5 kept
    assert launcher.slots() == ["2026-03-01T12:20:00Z"]
    assert [st for _, st in states()] == ["missed"] + ["launched"] + ["pending"] * 4
    assert MAX_CATCHUP == 5
    at = datetime(2026, 3, 1, 13, 5, 10, tzinfo=UTC)
    for expected in ("12:30", "12:40", "12:50", "13:00"):
        tick(at, launcher)  # the previous run still runs: the queue waits
        assert len(launcher.launched) == ["12:30", "12:40", "12:50", "13:00"].index(expected) + 1
        launcher.end()
        tick(at, launcher)
        assert launcher.slots()[-1] == f"2026-03-01T{expected}:00Z"
    assert [st for _, st in states()] == ["missed"] + ["launched"] * 5


def test_latest_does_not_start_a_slot_older_than_a_day() -> None:
    add(cron="0 3 * * MON", catchup="latest")  # weekly: Monday 2 March 03:00
    launcher = FakeLauncher()
    tick(datetime(2026, 3, 3, 12, 0, tzinfo=UTC), launcher)  # down until Tuesday noon
    assert launcher.launched == []
    [(slot, state)] = states()
    assert (slot, state) == ("2026-03-02T03:00:00Z", "missed")
    assert "older than 24 h" in store.firings("job")[0]["reason"]


def test_overlap_skip_records_the_skipped_slot() -> None:
    add()
    launcher = FakeLauncher()
    tick(T0 + timedelta(minutes=10), launcher)
    report = tick(T0 + timedelta(minutes=20), launcher)  # 12:10 still running
    assert [o.state for o in report.outcomes] == ["skipped"]
    assert "still running" in report.outcomes[0].reason
    launcher.end()
    tick(T0 + timedelta(minutes=30), launcher)
    assert states() == [("2026-03-01T12:10:00Z", "launched"), ("2026-03-01T12:20:00Z", "skipped"),
                        ("2026-03-01T12:30:00Z", "launched")]


def test_overlap_queue_keeps_one_pending_slot() -> None:
    add(overlap="queue")
    launcher = FakeLauncher()
    tick(T0 + timedelta(minutes=10), launcher)
    tick(T0 + timedelta(minutes=20), launcher)
    report = tick(T0 + timedelta(minutes=30), launcher)
    assert report.waiting
    assert states() == [("2026-03-01T12:10:00Z", "launched"), ("2026-03-01T12:20:00Z", "pending"),
                        ("2026-03-01T12:30:00Z", "skipped")]
    launcher.end()
    tick(T0 + timedelta(minutes=31), launcher)  # the blocker ended: the queued slot starts now
    assert launcher.slots() == ["2026-03-01T12:10:00Z", "2026-03-01T12:20:00Z"]
    assert states()[1] == ("2026-03-01T12:20:00Z", "launched")


def test_overlap_allow_starts_every_slot() -> None:
    add(overlap="allow")
    launcher = FakeLauncher()
    for minutes in (10, 20, 30):
        tick(T0 + timedelta(minutes=minutes), launcher)
    assert len(launcher.launched) == 3
    assert {st for _, st in states()} == {"launched"}


def test_a_finished_failed_run_does_not_block_the_next_slot() -> None:
    add()
    launcher = FakeLauncher()
    tick(T0 + timedelta(minutes=10), launcher)
    launcher.end(status="FAILED")
    tick(T0 + timedelta(minutes=20), launcher)
    assert len(launcher.launched) == 2


def test_launcher_failure_is_recorded_and_the_tick_goes_on() -> None:
    add("a")
    add("b")
    report = tick(T0 + timedelta(minutes=10), FakeLauncher(fail=True))
    assert sorted((o.schedule, o.state) for o in report.outcomes) == [("a", "launch_failed"), ("b", "launch_failed")]
    assert "no such interpreter" in store.firings("a")[0]["reason"]
    # The slot is decided: a later tick does not try it again.
    assert tick(T0 + timedelta(minutes=11), FakeLauncher()).outcomes == []


def test_two_stores_views_claim_each_slot_once(orchestra_home) -> None:
    """Two ticks at the same instant (as two processes would): the second finds every slot taken."""
    add()
    first, second = FakeLauncher(), FakeLauncher()
    at = T0 + timedelta(minutes=10)
    tick(at, first)
    # Simulate a process that read the watermark before the first one moved it.
    store.db().execute("UPDATE schedules SET watermark = ?", (T0.timestamp(),))
    tick(at, second)
    assert len(first.launched) == 1 and second.launched == []
    assert len(store.firings("job")) == 1


def test_changed_definition_applies_from_the_change_on() -> None:
    add(cron="*/10 * * * *")
    launcher = FakeLauncher(fail=False)
    tick(T0 + timedelta(minutes=10), launcher)
    launcher.end()
    old_digest = store.firings("job")[0]["definition_digest"]
    # At 12:25 the schedule is changed to hourly at :40 with a parameter; 12:20 was already due
    # under the old definition but no tick saw it: it belongs to the old definition, not missed.
    manage.add("job", os.getcwd(), "40 * * * *", replace=True, params=("alpha=2",),
               now=(T0 + timedelta(minutes=25)).timestamp())
    report = tick(T0 + timedelta(minutes=45), launcher)
    assert [(o.slot, o.state) for o in report.outcomes] == [("2026-03-01T12:40:00+00:00", "launched")]
    rows = store.firings("job")
    assert rows[0]["definition_digest"] != old_digest
    assert '"alpha=2"' in rows[0]["definition"]
    assert ("2026-03-01T12:20:00Z", "missed") not in states()


def test_unchanged_replace_keeps_the_watermark() -> None:
    add()
    _, change = manage.add("job", os.getcwd(), "*/10 * * * *", replace=True, now=(T0 + timedelta(hours=5)).timestamp())
    assert change == "unchanged"
    launcher = FakeLauncher()
    tick(T0 + timedelta(minutes=10), launcher)
    assert len(launcher.launched) == 1


def test_removed_schedule_stops_and_keeps_history() -> None:
    add()
    launcher = FakeLauncher()
    tick(T0 + timedelta(minutes=10), launcher)
    store.remove("job")
    assert tick(T0 + timedelta(minutes=20), launcher).outcomes == []
    assert len(store.firings("job")) == 1


def test_paused_schedule_does_not_fire_and_resumes_from_now() -> None:
    add()
    launcher = FakeLauncher()
    store.set_paused("job", True, now=T0.timestamp())
    assert tick(T0 + timedelta(minutes=30), launcher).outcomes == []
    store.set_paused("job", False, now=(T0 + timedelta(minutes=35)).timestamp())
    report = tick(T0 + timedelta(minutes=45), launcher)
    assert [(o.slot, o.state) for o in report.outcomes] == [("2026-03-01T12:40:00+00:00", "launched")]


def test_jitter_delays_the_launch_but_not_the_slot() -> None:
    add(cron="0 * * * *", jitter=600)
    from orchestra.app.schedule.model import jitter_offset

    delay = jitter_offset("job", "2026-03-01T13:00:00Z", 600)
    launcher = FakeLauncher()
    nominal = datetime(2026, 3, 1, 13, 0, tzinfo=UTC)
    tick(nominal + timedelta(seconds=delay - 1), launcher)
    assert launcher.launched == []
    tick(nominal + timedelta(seconds=delay + 0.001), launcher)  # datetimes keep microseconds only
    assert launcher.slots() == ["2026-03-01T13:00:00Z"]
    assert launcher.launched[0]["fire_at"] == pytest.approx(nominal.timestamp() + delay)


def test_dst_gap_and_fold_in_the_tick() -> None:
    """Europe/Berlin, 25 Oct 2026: '30 2 * * *' fires once; '*/30 * * * *' fires in both folds."""
    start = datetime(2026, 10, 24, 22, 0, tzinfo=UTC)
    add("fixed", "30 2 * * *", at=start, timezone="Europe/Berlin", overlap="allow")
    add("half", "*/30 * * * *", at=start, timezone="Europe/Berlin", overlap="allow")
    clock = FakeClock(start)
    launcher = FakeLauncher()
    while clock.now() < datetime(2026, 10, 25, 3, 0, tzinfo=UTC):
        tick(clock.now(), launcher)
        clock.advance(60)
    fixed = [f["scheduled_local"] for f in launcher.launched if f["schedule"] == "fixed"]
    half = [f["scheduled_local"] for f in launcher.launched if f["schedule"] == "half"]
    assert fixed == ["2026-10-25T02:30:00+02:00"]
    assert half[2:7] == ["2026-10-25T01:30:00+02:00", "2026-10-25T02:00:00+02:00", "2026-10-25T02:30:00+02:00",
                         "2026-10-25T02:00:00+01:00", "2026-10-25T02:30:00+01:00"]
    assert store.counts("half") == {"launched": 9}  # no missed rows: every tick was on time


def test_scheduler_loop_with_a_fake_clock_wakes_for_each_slot() -> None:
    add(cron="*/10 * * * *", overlap="allow")
    clock = FakeClock(T0)
    launcher = FakeLauncher()
    ticked: list[datetime] = []
    scheduler = Scheduler(clock, launcher)

    def on_tick(report) -> None:
        ticked.append(clock.now())
        assert not any(o.state == "missed" for o in report.outcomes)
        if clock.now() >= datetime(2026, 3, 1, 13, 15, tzinfo=UTC):
            scheduler.stop()

    scheduler.on_tick = on_tick
    scheduler.run(max_ticks=10_000)
    assert launcher.slots() == [f"2026-03-01T{h}:00Z" for h in ("12:10", "12:20", "12:30", "12:40", "12:50",
                                                                "13:00", "13:10")]
    gaps = [(b - a).total_seconds() for a, b in zip(ticked, ticked[1:])]
    assert max(gaps) <= 60  # it never sleeps past 60 s (wall-clock jumps are noticed)
    # ... and it wakes exactly at each fire time, not up to a minute late.
    assert {datetime(2026, 3, 1, 12, m, tzinfo=UTC) for m in (10, 20, 30, 40, 50)} <= set(ticked)


def test_scheduler_stop_ends_the_loop_after_the_tick() -> None:
    add()
    clock = FakeClock(T0)
    launcher = FakeLauncher()
    scheduler = Scheduler(clock, launcher)
    scheduler.on_tick = lambda report: scheduler.stop() if report.outcomes else None
    assert scheduler.run(max_ticks=1000) < 1000
    assert len(launcher.launched) == 1


def test_stale_firings_are_closed_when_their_process_is_gone() -> None:
    import subprocess
    import sys

    add()
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()

    class DeadLauncher(FakeLauncher):
        def launch(self, firing):
            return proc.pid, "/tmp/x.log"

    tick(T0 + timedelta(minutes=10), DeadLauncher())
    tick(T0 + timedelta(minutes=11), FakeLauncher())  # reconcile: no run was ever created
    row = store.firings("job")[0]
    assert row["state"] == "launch_failed" and "exited before creating a run" in row["reason"]


def test_a_long_downtime_is_recorded_without_listing_every_slot() -> None:
    add(cron="* * * * *")
    launcher = FakeLauncher()
    report = tick(T0 + timedelta(days=30), launcher)  # a month of minutes went by
    assert len(launcher.launched) == 1  # catchup latest: the newest slot only
    rows = store.firings("job", 100_000)
    assert len(rows) <= 502
    summary = [r for r in rows if "not listed one by one" in (r["reason"] or "")]
    assert len(summary) == 1 and summary[0]["scheduled_for"] == "2026-03-01T12:01:00Z"  # the first missed slot
    assert sum(1 for o in report.outcomes if o.state == "missed") == len(rows) - 1


def test_a_reused_pid_does_not_count_as_the_running_run() -> None:
    add()
    launcher = FakeLauncher()
    tick(T0 + timedelta(minutes=10), launcher)
    [row] = store.firings("job")
    assert row["pid"] == os.getpid() and row["pid_start"]
    # Same pid, another process start time: what a reboot or pid wrap-around looks like.
    store.update_firing(row["id"], pid_start="1")
    tick(T0 + timedelta(minutes=20), launcher)
    assert [st for _, st in states()] == ["launch_failed", "launched"]
