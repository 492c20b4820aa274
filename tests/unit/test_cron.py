"""Cron adapter: syntax, next fire times, the DST table of docs/schedules.md, rejections."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from orchestra.core.errors import EXIT_BAD_INPUT, CronError
from orchestra.app.schedule import cron
from orchestra.app.schedule.model import jitter_offset

UTC = timezone.utc


def times(expr: str, tz: str, start: str, n: int) -> list[str]:
    """The next n fire times after ``start`` (local wall time in ``tz``) as ISO strings with offsets."""
    after = datetime.fromisoformat(start).replace(tzinfo=cron.zone(tz))
    return [t.isoformat() for t in cron.parse(expr, tz).next_times(after, n)]


@pytest.mark.parametrize("expr, start, expected", [
    ("*/20 9-10 * * *", "2026-01-05T09:30", ["2026-01-05T09:40:00+00:00", "2026-01-05T10:00:00+00:00",
                                             "2026-01-05T10:20:00+00:00", "2026-01-05T10:40:00+00:00",
                                             "2026-01-06T09:00:00+00:00"]),
    ("0 9 * * MON-FRI", "2026-01-09T10:00", ["2026-01-12T09:00:00+00:00", "2026-01-13T09:00:00+00:00",
                                             "2026-01-14T09:00:00+00:00"]),
    ("0 0 1,15 FEB *", "2026-01-01T00:00", ["2026-02-01T00:00:00+00:00", "2026-02-15T00:00:00+00:00",
                                            "2027-02-01T00:00:00+00:00"]),
    ("0 0 L * *", "2026-01-31T00:00", ["2026-02-28T00:00:00+00:00", "2026-03-31T00:00:00+00:00"]),
    ("0 0 LW * *", "2026-01-01T00:00", ["2026-01-30T00:00:00+00:00", "2026-02-27T00:00:00+00:00",
                                        "2026-03-31T00:00:00+00:00"]),
    ("0 18 * * 5L", "2026-01-01T00:00", ["2026-01-30T18:00:00+00:00", "2026-02-27T18:00:00+00:00"]),
    ("30 8 * * MON#2", "2026-01-01T00:00", ["2026-01-12T08:30:00+00:00", "2026-02-09T08:30:00+00:00"]),
    # DOM and DOW both restricted: OR (Vixie/Debian) — the 13th, and every Friday.
    ("0 0 13 * FRI", "2026-02-01T00:00", ["2026-02-06T00:00:00+00:00", "2026-02-13T00:00:00+00:00",
                                          "2026-02-20T00:00:00+00:00"]),
    # DOW restricted, DOM '*': AND — Fridays only.
    ("0 0 * * 5", "2026-02-01T00:00", ["2026-02-06T00:00:00+00:00", "2026-02-13T00:00:00+00:00"]),
    ("0 12 * * 7", "2026-01-01T00:00", ["2026-01-04T12:00:00+00:00"]),  # 7 = Sunday
    ("@hourly", "2026-01-01T00:30", ["2026-01-01T01:00:00+00:00", "2026-01-01T02:00:00+00:00"]),
    ("@daily", "2026-01-01T00:30", ["2026-01-02T00:00:00+00:00"]),
    ("@midnight", "2026-01-01T00:30", ["2026-01-02T00:00:00+00:00"]),
    ("@weekly", "2026-01-01T00:30", ["2026-01-04T00:00:00+00:00"]),
    ("@monthly", "2026-01-01T00:30", ["2026-02-01T00:00:00+00:00"]),
    ("@yearly", "2026-01-01T00:30", ["2027-01-01T00:00:00+00:00"]),
    ("@annually", "2026-01-01T00:30", ["2027-01-01T00:00:00+00:00"]),
    ("0 0 29 2 *", "2026-01-01T00:00", ["2028-02-29T00:00:00+00:00"]),
])
def test_next_fire_times(expr: str, start: str, expected: list[str]) -> None:
    assert times(expr, "UTC", start, len(expected)) == expected


def test_times_are_strictly_after_and_in_the_schedule_zone() -> None:
    expr = cron.parse("0 2 * * *", "Europe/Berlin")
    at = datetime(2026, 6, 1, 0, 0, tzinfo=UTC)  # = 02:00 CEST: not "after"
    got = expr.next_times(at, 2)
    assert [t.isoformat() for t in got] == ["2026-06-02T02:00:00+02:00", "2026-06-03T02:00:00+02:00"]
    assert cron.utc_key(got[0]) == "2026-06-02T00:00:00Z"


# The DST table (docs/schedules.md): Debian cron's rule as cronsim computes it.
DST_TABLE = [
    # zone, expression, start (local), expected next fire times (local, with offset)
    # -- fixed time in the spring-forward gap: once, when the gap ends
    ("Europe/Berlin", "30 2 * * *", "2026-03-28T12:00", ["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"]),
    ("America/New_York", "30 2 * * *", "2026-03-07T12:00", ["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"]),
    ("Australia/Lord_Howe", "15 2 * * *", "2026-10-03T12:00", ["2026-10-04T02:30:00+11:00", "2026-10-05T02:15:00+11:00"]),
    # -- fixed time in the repeated hour: once, at the first occurrence
    ("Europe/Berlin", "30 2 * * *", "2026-10-24T12:00", ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]),
    ("America/New_York", "30 1 * * *", "2026-10-31T12:00", ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"]),
    ("Australia/Lord_Howe", "45 1 * * *", "2026-04-04T12:00", ["2026-04-05T01:45:00+11:00", "2026-04-06T01:45:00+10:30"]),
    # -- Africa/Cairo moves at midnight: @daily falls into the gap and fires when it ends
    ("Africa/Cairo", "@daily", "2026-04-23T12:00", ["2026-04-24T01:00:00+03:00", "2026-04-25T00:00:00+03:00"]),
    ("Africa/Cairo", "0 * * * *", "2026-04-23T22:30", ["2026-04-23T23:00:00+02:00", "2026-04-24T01:00:00+03:00"]),
    ("Africa/Cairo", "30 23 * * *", "2026-10-29T12:00", ["2026-10-29T23:30:00+03:00", "2026-10-30T23:30:00+02:00"]),
    # -- a step in the hour field: '*/2' starts with '*', so no fix-up
    ("Europe/Berlin", "0 */2 * * *", "2026-03-29T00:30", ["2026-03-29T04:00:00+02:00", "2026-03-29T06:00:00+02:00"]),
    ("Europe/Berlin", "0 */2 * * *", "2026-10-25T01:30", ["2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00",
                                                          "2026-10-25T04:00:00+01:00"]),
    # -- '*'-hour expressions: gap slots do not exist, repeated-hour slots fire in both folds
    ("Europe/Berlin", "0 * * * *", "2026-03-29T00:30", ["2026-03-29T01:00:00+01:00", "2026-03-29T03:00:00+02:00"]),
    ("Europe/Berlin", "*/30 * * * *", "2026-10-25T01:45", ["2026-10-25T02:00:00+02:00", "2026-10-25T02:30:00+02:00",
                                                           "2026-10-25T02:00:00+01:00", "2026-10-25T02:30:00+01:00",
                                                           "2026-10-25T03:00:00+01:00"]),
    ("America/New_York", "0 * * * *", "2026-03-08T00:30", ["2026-03-08T01:00:00-05:00", "2026-03-08T03:00:00-04:00"]),
    ("America/New_York", "30 * * * *", "2026-11-01T00:45", ["2026-11-01T01:30:00-04:00", "2026-11-01T01:30:00-05:00",
                                                            "2026-11-01T02:30:00-05:00"]),
    ("Australia/Lord_Howe", "*/15 * * * *", "2026-10-04T01:40", ["2026-10-04T01:45:00+10:30", "2026-10-04T02:30:00+11:00"]),
    ("Australia/Lord_Howe", "*/15 * * * *", "2026-04-05T01:20", ["2026-04-05T01:30:00+11:00", "2026-04-05T01:45:00+11:00",
                                                                  "2026-04-05T01:30:00+10:30", "2026-04-05T01:45:00+10:30",
                                                                  "2026-04-05T02:00:00+10:30"]),
]


@pytest.mark.parametrize("tz, expr, start, expected", DST_TABLE, ids=[f"{r[0]}|{r[1]}|{r[2][:10]}" for r in DST_TABLE])
def test_dst_table(tz: str, expr: str, start: str, expected: list[str]) -> None:
    assert times(expr, tz, start, len(expected)) == expected


def test_fixed_time_started_inside_the_repeated_hour_does_not_fire_again() -> None:
    # After the first 02:30 (CEST) fired, a restart at 02:10 CET (second fold) must not answer
    # 02:30 CEST — an instant in the past — or 02:30 CET: the next slot is the next day.
    expr = cron.parse("30 2 * * *", "Europe/Berlin")
    after = datetime(2026, 10, 25, 2, 10, fold=1, tzinfo=cron.zone("Europe/Berlin"))
    assert [t.isoformat() for t in expr.next_times(after, 1)] == ["2026-10-26T02:30:00+01:00"]


def test_fixed_time_flag() -> None:
    assert cron.parse("30 2 * * *").fixed_time
    assert cron.parse("0 2-4 * * *").fixed_time
    assert not cron.parse("0 */2 * * *").fixed_time
    assert not cron.parse("*/5 3 * * *").fixed_time


@pytest.mark.parametrize("expr, needle", [
    ("@reboot", "@reboot is not supported"),
    ("0 0 * * * *", "seconds and year fields are not supported"),
    ("0 0 0 * * * 2027", "7 field(s)"),
    ("H 3 * * *", "H/R"),
    ("0 H(0-5) * * *", "H/R"),
    ("R 3 * * *", "H/R"),
    ("0 0 15W * *", "'W'"),
    ("0 0 ? * *", "'?'"),
    ("60 * * * *", "bad minute"),
    ("0 24 * * *", "bad hour"),
    ("0 0 32 * *", "bad day-of-month"),
    ("0 0 * 13 *", "bad month"),
    ("0 0 * * 8", "bad day-of-week"),
    ("0 0 30 2 *", "bad day-of-month"),
    ("*/0 * * * *", "bad minute"),
    ("5-1 * * * *", "bad minute"),
    ("@often", "unknown alias"),
    ("", "empty cron expression"),
    ("* * *", "3 field(s)"),
    ("0 0 * * L5", "bad day-of-week"),
    ("0 0 * * $", "bad day-of-week"),
])
def test_rejected_expressions_are_one_line_exit_2(expr: str, needle: str) -> None:
    with pytest.raises(CronError) as info:
        cron.parse(expr, where="--cron")
    message = str(info.value)
    assert needle in message
    assert message.startswith("--cron: ")
    assert "\n" not in message
    assert info.value.exit_code == EXIT_BAD_INPUT


@pytest.mark.parametrize("tz", ["Mars/Olympus", "", "Europe/../etc/passwd", "/etc/localtime", "UTC+1"])
def test_bad_time_zone(tz: str) -> None:
    with pytest.raises(CronError, match="unknown time zone"):
        cron.parse("0 0 * * *", tz, where="--timezone")


def test_zone_names_come_from_tzdata() -> None:
    for tz in ("UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Africa/Cairo"):
        assert cron.check_timezone(tz) == tz


def test_jitter_is_fixed_per_slot_and_bounded() -> None:
    values = {jitter_offset("nightly", f"2026-01-{d:02d}T02:00:00Z", 300) for d in range(1, 29)}
    assert len(values) > 20  # spread over the slots
    assert all(0 <= v < 300 for v in values)
    assert jitter_offset("nightly", "2026-01-01T02:00:00Z", 300) == jitter_offset("nightly", "2026-01-01T02:00:00Z", 300)
    assert jitter_offset("other", "2026-01-01T02:00:00Z", 300) != jitter_offset("nightly", "2026-01-01T02:00:00Z", 300)
    assert jitter_offset("nightly", "2026-01-01T02:00:00Z", 0) == 0.0
