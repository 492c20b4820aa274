"""What ``orchestra schedule …`` calls: plain values in, plain values out."""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from orchestra import source
from orchestra.app.schedule import model, store
from orchestra.app.schedule.model import Schedule
from orchestra.core.errors import BadInputError, SourceError
from orchestra.mlproject import load
from orchestra.source.project import strip_credentials


def normalize_uri(uri: str) -> str:
    """A local directory becomes its absolute path (the run process starts elsewhere); URLs stay.

    Raises:
        SourceError: a plain path that is not a directory.
    """
    text = uri.strip()
    base = text.split("#", 1)[0]
    if not text:
        raise SourceError("empty project URI", hint="a directory or a git URL")
    if "://" in base or _looks_like_scp(base):
        return text
    path = Path(base).expanduser()
    if not path.is_dir():
        raise SourceError(f"no such project directory: {base}", where="URI", hint="a local directory or a git URL")
    suffix = text[len(base):]
    return str(path.resolve()) + suffix


def _looks_like_scp(base: str) -> bool:
    head = base.split("/", 1)[0]
    return ":" in head and len(head.split(":", 1)[0]) > 1


def add(name: str, uri: str, cron_text: str, *, replace: bool = False, now: float | None = None,
        **fields: Any) -> tuple[Schedule, str]:
    """Validate and store a schedule; returns it and ``added``/``updated``/``unchanged``."""
    uri = _without_credentials(normalize_uri(uri), fields.get("credentials_env"))
    schedule = model.build(name, uri, cron_text, **fields)
    if schedule.hooks_uris:  # an unreadable hooks source is exit 2 now, not a silent gap at 2 a.m.
        from orchestra.integrations.hooks import config as hooks_config

        hooks_config.load(None, schedule.hooks_uris, environ={})
    return schedule, store.put(schedule, now=time.time() if now is None else now, replace=replace)


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _without_credentials(uri: str, credentials_env: str | None) -> str:
    """The URI to store: credentials in it are refused unless an environment variable will
    carry them at fire time (then they are dropped here)."""
    if credentials_env is not None and not _ENV_NAME.match(credentials_env):
        raise BadInputError(f"--credentials-env {credentials_env!r} is not an environment variable name",
                            hint="letters, digits and '_', not starting with a digit")
    stripped = strip_credentials(uri)
    if stripped != uri and credentials_env is None:
        raise BadInputError(f"the URI {stripped} carries credentials, and schedules never store them", where="URI",
                            hint="export USER:PASSWORD in a variable of the scheduler's environment and give "
                                 "--credentials-env NAME")
    return stripped


def sync(uri: str, version: str | None = None, *, now: float | None = None) -> list[tuple[str, str]]:
    """Register the MLproject's ``schedules:`` section; returns (name, change) pairs.

    Schedules this project registered earlier and no longer declares are removed; a name taken by
    a schedule from elsewhere is an error (nothing is changed then).

    Raises:
        SpecError / CronError / BadInputError: a bad entry, named by file and key path.
    """
    project = source.fetch(normalize_uri(uri), version)
    try:
        spec = load.load(project.path)
        where = spec.display_file
        stored_uri = project.uri if not project.is_remote else strip_credentials(uri.strip())
        tag = f"mlproject:{stored_uri}"
        wanted = []
        for name, entry in (spec.schedules or {}).items():
            schedule = model.from_mlproject(str(name), entry, stored_uri, where=where)
            for target in schedule.entry_points:
                if target not in spec.entry_points and load.implicit_stage(project.path, target) is None:
                    raise BadInputError(f"unknown entry point '{target}'", where=f"{where}: schedules.{name}.entry_points",
                                        hint="entry points: " + ", ".join(spec.entry_points))
            if version and not schedule.version:
                schedule = model.build(schedule.name, schedule.uri, schedule.cron, timezone=schedule.timezone,
                                       **{**_fields(schedule), "version": version})
            wanted.append(schedule)
    finally:
        project.cleanup()
    existing = {s.schedule.name: s for s in store.all_schedules()}
    for schedule in wanted:
        other = existing.get(schedule.name)
        if other is not None and other.schedule.source != tag:
            raise BadInputError(f"schedule '{schedule.name}' already exists from {other.schedule.source}",
                                where=f"{where}: schedules.{schedule.name}",
                                hint="rename it in the MLproject or 'orchestra schedule remove' the other one")
    stamp = time.time() if now is None else now
    changes = [(s.name, store.put(s, now=stamp, replace=True)) for s in wanted]
    names = {s.name for s in wanted}
    for name, stored in existing.items():
        if stored.schedule.source == tag and name not in names:
            store.remove(name)
            changes.append((name, "removed"))
    return changes


def _fields(schedule: Schedule) -> dict[str, Any]:
    data = schedule.to_json()
    for key in ("name", "uri", "cron", "timezone"):
        data.pop(key)
    return data


def parse_at(text: str | None) -> datetime:
    """``--at`` (ISO-8601; a time without offset is UTC) or the real now."""
    if text is None:
        return datetime.now(timezone.utc)
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise BadInputError(f"--at {text!r} is not an ISO-8601 time", hint="e.g. 2026-11-22T02:00:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def next_times(name: str, n: int, after: datetime | None = None) -> tuple[Schedule, list[datetime]]:
    stored = store.get(name)
    start = after or datetime.now(timezone.utc)
    return stored.schedule, stored.schedule.expr.next_times(start, n)


def history(name: str, limit: int = 20) -> list[dict[str, Any]]:
    """Firings newest first; a running slot's run id is looked up by its tags."""
    if name not in {s.schedule.name for s in store.all_schedules()} and not store.firings(name, 1):
        store.get(name)  # raises with the list of names
    rows = store.firings(name, limit)
    for row in rows:
        if row["state"] == "launched" and not row["run_id"]:
            found = store.find_run(name, row["scheduled_local"])
            if found:
                row["run_id"], row["run_status"] = found
    return rows


def summary(now: datetime | None = None) -> list[dict[str, Any]]:
    """One dict per schedule for ``schedule list``."""
    moment = now or datetime.now(timezone.utc)
    result = []
    for stored in store.all_schedules():
        s = stored.schedule
        upcoming = s.expr.next_times(moment, 1)
        last = store.last_firing(s.name)
        result.append({
            "name": s.name, "cron": s.cron, "timezone": s.timezone, "uri": strip_credentials(s.uri), "paused": stored.paused,
            "next": upcoming[0].isoformat() if upcoming and not stored.paused else None,
            "last_slot": last["scheduled_local"] if last else None, "last_state": last["state"] if last else None,
            "overlap": s.overlap, "catchup": s.catchup, "jitter": s.jitter, "source": s.source,
            "digest": stored.digest, "definition": s.to_json(),
        })
    return result


def run_due(at: datetime, *, wait: bool, names: Sequence[str] | None = None):
    """One tick at ``at`` with real run processes; optionally wait for the runs it launched."""
    from orchestra.app.schedule.launch import ProcessLauncher
    from orchestra.app.schedule.tick import tick

    launcher = ProcessLauncher()
    report = tick(at, launcher, names=names)
    return report, launcher
