"""Read-only views of the schedules and the webhook deliveries for the web UI.

Both read their SQLite files through :mod:`orchestra.store.readonly` (``mode=ro``): the UI never
takes the scheduler's claim lock or the outbox's, and a missing file is an empty page.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from orchestra.app.schedule.model import Schedule
from orchestra.store import readonly


def schedules(upcoming: int = 5, history: int = 20) -> list[dict[str, Any]]:
    """Each schedule: its definition, the next fire times (none while paused) and recent firings."""
    now = datetime.now(timezone.utc)
    out = []
    for row in readonly.query("schedules", "SELECT * FROM schedules ORDER BY name"):
        try:
            schedule = Schedule.from_json(json.loads(row["definition"]))
            next_times = [] if row["paused"] else [t.isoformat() for t in schedule.expr.next_times(now, upcoming)]
            cron, zone, uri = schedule.cron, schedule.timezone, schedule.uri
        except Exception as exc:  # noqa: BLE001 - a definition from another orchestra version still lists
            next_times, cron, zone, uri = [f"unreadable definition: {exc}"], "?", "?", "?"
        firings = readonly.query(
            "schedules", "SELECT scheduled_local, state, reason, launched_at, ended_at, run_id, run_status"
            " FROM firings WHERE schedule = ? ORDER BY id DESC LIMIT ?", (row["name"], history))
        out.append({"name": row["name"], "cron": cron, "timezone": zone, "uri": uri, "paused": bool(row["paused"]),
                    "next": next_times, "history": [dict(f) for f in firings]})
    return out


def webhooks(limit: int = 200) -> dict[str, Any]:
    """The newest webhook deliveries with their attempts, and the receivers disabled by HTTP 410."""
    deliveries = readonly.query(
        "hooks", "SELECT id, destination, subject, kind, state, attempts, last_status, last_error, created_at,"
        " updated_at, ref FROM messages ORDER BY id DESC LIMIT ?", (limit,))
    ids = [row["id"] for row in deliveries]
    attempts: dict[int, list[dict[str, Any]]] = {}
    if ids:
        for row in readonly.query("hooks", "SELECT delivery_id, attempt, at, status_code, error, latency_ms"  # noqa: S608
                                  f" FROM attempts WHERE delivery_id IN ({readonly.placeholders(ids)})"
                                  " ORDER BY delivery_id, attempt", ids):
            attempts.setdefault(row["delivery_id"], []).append(dict(row))
    events = {}
    refs = [row["ref"] for row in deliveries]
    if refs:
        for row in readonly.query("hooks", "SELECT id, run_id, stage, status FROM events"  # noqa: S608
                                  f" WHERE id IN ({readonly.placeholders(refs)})", refs):
            events[row["id"]] = dict(row)
    rows = []
    for row in deliveries:
        item = dict(row)
        item["attempt_log"] = attempts.get(row["id"], [])
        item["event"] = events.get(row["ref"])
        rows.append(item)
    disabled = [dict(row) for row in readonly.query("hooks", "SELECT url, name, disabled_at, reason FROM disabled_hooks")]
    return {"deliveries": rows, "disabled": disabled}
