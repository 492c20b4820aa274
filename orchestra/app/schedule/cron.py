"""Cron expressions behind one small adapter around cronsim.

Accepted: 5 fields (minute hour day-of-month month day-of-week) with names (``JAN``, ``MON``),
ranges, lists, steps, ``L`` / ``LW`` (day of month), ``5L`` (last Friday), ``MON#2`` (second
Monday), and the aliases ``@yearly @annually @monthly @weekly @daily @midnight @hourly``.
Day-of-month and day-of-week combine with OR, or with AND when either starts with ``*``
(Vixie/Debian). Rejected with a clear message: ``@reboot``, a seconds or year field, Jenkins
``H``/``R``, ``W`` other than ``LW``, ``?``.

DST follows Debian cron, as cronsim computes it: a *fixed-time* expression (neither minute nor
hour starts with ``*``) whose local time falls in a spring-forward gap fires once when the gap
ends, and once (at the first occurrence) in a repeated hour; an expression whose minute or hour
starts with ``*`` gets no special handling — its slots inside the gap do not exist, and those in
the repeated hour fire in both folds. Every time returned is aware; slots are compared and keyed
in UTC, so a repeated local time is never two slots unless it is two instants.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Iterator
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from orchestra.core.errors import CronError

UTC = timezone.utc
ALIASES = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}
ALLOWED = "5 fields 'minute hour day-of-month month day-of-week' or one of " + " ".join(ALIASES)
_FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")
_RANGES = ("0-59", "0-23", "1-31 or L, LW", "1-12 or JAN-DEC", "0-7 or SUN-SAT, 5L, MON#2")
_CHARS = re.compile(r"^[0-9A-Za-z*,/#-]+$")


@dataclass(frozen=True, slots=True)
class CronExpr:
    """A validated cron expression in an IANA time zone.

    Attributes:
        text: what the user wrote (an alias stays an alias).
        fields: the 5-field form handed to cronsim.
        timezone: IANA zone name (``UTC`` by default).
    """

    text: str
    fields: str
    timezone: str = "UTC"

    @property
    def zone(self) -> ZoneInfo:
        return zone(self.timezone)

    @property
    def fixed_time(self) -> bool:
        """True when the Debian DST fix-up applies (neither minute nor hour starts with ``*``)."""
        minute, hour = self.fields.split()[:2]
        return not minute.startswith("*") and not hour.startswith("*")

    def times_after(self, after: datetime) -> Iterator[datetime]:
        """Fire times strictly after ``after`` (aware), in the schedule's zone, ascending.

        cronsim iterates a fixed-time expression on the naive wall clock, so started inside a
        repeated hour it can answer an instant *before* its start; such answers are dropped, which
        is what keeps a fixed time at "once, at the first occurrence".
        """
        from cronsim import CronSim

        if after.tzinfo is None:
            raise ValueError("times_after needs an aware datetime")
        start = after.astimezone(self.zone)
        floor = after.astimezone(UTC)
        # cronsim drops sub-second parts; start at the whole second so "strictly after" holds.
        iterator = CronSim(self.fields, start.replace(microsecond=0))
        last = floor
        for moment in iterator:
            at = moment.astimezone(UTC)
            if at <= last:
                continue
            last = at
            yield moment

    def next_times(self, after: datetime, n: int) -> list[datetime]:
        """The next ``n`` fire times after ``after`` (fewer when the expression stops matching)."""
        result: list[datetime] = []
        for moment in self.times_after(after):
            result.append(moment)
            if len(result) >= n:
                break
        return result

    def period_after(self, slot: datetime) -> timedelta:
        """Time from ``slot`` to the following fire time (the schedule's period there)."""
        following = self.next_times(slot, 1)
        return (following[0] - slot) if following else timedelta(days=366)

    def explain(self) -> str:
        """English description from cronsim (best effort)."""
        from cronsim import CronSim

        try:
            return CronSim(self.fields, datetime.now(self.zone)).explain()
        except Exception:  # noqa: BLE001 - explain() covers common forms only; it is a nicety
            return self.text


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def check_timezone(name: str, *, where: str | None = None) -> str:
    """Return ``name`` if it is an IANA zone known to tzdata.

    Raises:
        CronError: unknown or malformed zone name.
    """
    text = (name or "").strip()
    bad = not text or text.startswith("/") or ".." in text or " " in text
    if not bad:
        try:
            zone(text)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            bad = True
    if bad:
        raise CronError(f"unknown time zone {name!r}", where=where,
                        hint="an IANA name such as UTC, Europe/Berlin, America/New_York")
    return text


def parse(text: str, timezone_name: str = "UTC", *, where: str | None = None) -> CronExpr:
    """Validate a cron expression and its zone.

    Args:
        text: the expression (5 fields or an ``@`` alias).
        timezone_name: IANA zone (default UTC).
        where: file and key path (or flag) for messages.

    Raises:
        CronError: anything outside the accepted syntax, an impossible date, or an unknown zone.
    """
    cached = _PARSED.get((text, timezone_name))
    if cached is not None:
        return cached
    expr = _parse(text, timezone_name, where)
    if len(_PARSED) < 4096:
        _PARSED[(text, timezone_name)] = expr
    return expr


_PARSED: dict[tuple[str, str], CronExpr] = {}  # a tick re-reads every definition: parse each once


def _parse(text: str, timezone_name: str, where: str | None) -> CronExpr:
    tz = check_timezone(timezone_name, where=where)
    raw = " ".join(str(text or "").split())
    if not raw:
        raise CronError("empty cron expression", where=where, hint=ALLOWED)
    shown = repr(raw)
    if raw.startswith("@"):
        fields = ALIASES.get(raw.lower())
        if fields is None:
            what = "@reboot is not supported (orchestra has no boot event)" if raw.lower() == "@reboot" \
                else f"unknown alias {shown}"
            raise CronError(f"cron {what}", where=where, hint=ALLOWED)
        return CronExpr(raw, fields, tz)
    parts = raw.split(" ")
    if len(parts) != 5:
        extra = " (seconds and year fields are not supported)" if len(parts) in (6, 7) else ""
        raise CronError(f"cron {shown} has {len(parts)} field(s), expected 5{extra}", where=where, hint=ALLOWED)
    for index, part in enumerate(parts):
        _check_field(part, index, shown, where)
    fields = " ".join(parts)
    expr = CronExpr(raw, fields, tz)
    from cronsim import CronSim, CronSimError

    try:
        CronSim(fields, datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as exc:
        field = _field_of(str(exc))
        raise CronError(f"cron {shown}: bad {field}", where=where,
                        hint=f"{field}: {_RANGES[_FIELDS.index(field)]}" if field in _FIELDS else ALLOWED) from None
    if not expr.next_times(datetime(2000, 1, 1, tzinfo=UTC), 1):
        raise CronError(f"cron {shown} never fires", where=where, hint="check day-of-month against the months")
    return expr


def _check_field(part: str, index: int, shown: str, where: str | None) -> None:
    name = _FIELDS[index]
    upper = part.upper()
    if "?" in part:
        raise CronError(f"cron {shown}: '?' is not supported in the {name} field", where=where,
                        hint="use '*' (5-field Vixie/Debian cron)")
    if re.search(r"(^|[^A-Z])[HR]($|[^A-Z])", upper):
        raise CronError(f"cron {shown}: Jenkins-style H/R in the {name} field is not supported", where=where,
                        hint="write the minute/hour explicitly; add jitter with --jitter SECONDS")
    if not _CHARS.match(part):
        raise CronError(f"cron {shown}: bad {name} {part!r}", where=where, hint=f"{name}: {_RANGES[index]}")
    if index == 2 and "W" in upper and upper != "LW":
        raise CronError(f"cron {shown}: 'W' (nearest weekday) is not supported, only 'LW'", where=where,
                        hint=f"{name}: {_RANGES[index]}")


def _field_of(message: str) -> str:
    for name in _FIELDS:
        if name in message:
            return name
    return "expression"


def iso(moment: datetime) -> str:
    """``2026-11-22T02:00:00+01:00`` (seconds precision, with offset)."""
    return moment.isoformat(timespec="seconds")


def utc_key(moment: datetime) -> str:
    """The slot key: the instant in UTC, ``2026-11-22T01:00:00Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
