"""URL → answer for ``orchestra ui``: the page shell, the shipped assets, and the JSON API.

``/`` is the single page (the browser routes ``#/runs``, ``#/run/ID``, ``#/compare/A,B,C``, ``#/sweep/ID``,
``#/schedules``, ``#/webhooks``); ``/static/NAME`` one of the shipped files; ``/api/…`` the data,
all read through :mod:`orchestra.app.browse` and :mod:`orchestra.app.browse_more`.
"""

from __future__ import annotations

import mimetypes
import re
from typing import Callable
from urllib.parse import quote, unquote

from orchestra.app import browse, browse_more
from orchestra.core.errors import BadInputError
from orchestra.ui import assets
from orchestra.ui.reply import Reply, json_reply

_NOT_FOUND = json_reply({"error": "not found"}, 404)


def _int(query: dict[str, str], key: str, default: int, high: int) -> int:
    text = query.get(key)
    if text is None or text == "":
        return default
    if not text.isdigit():
        raise BadInputError(f"{key} must be a non-negative integer, got {text!r}", where=key)
    return min(int(text), high)


def _runs(query: dict[str, str]) -> Reply:
    return json_reply(browse.runs_table(query.get("filter", ""), query.get("sort") or "start_time",
                                        query.get("desc", "1") != "0", _int(query, "offset", 0, 10**9),
                                        _int(query, "limit", 200, 5000)))


def _run(run_id: str, query: dict[str, str]) -> Reply:
    return json_reply(browse.run_detail(run_id))


def _log(run_id: str, stage: str, query: dict[str, str]) -> Reply:
    stream = query.get("stream", "stdout")
    return json_reply({"stage": stage, "stream": stream, "text": browse.stage_log(run_id, stage, stream)})


def _artifact(run_id: str, stage: str, query: dict[str, str]) -> Reply:
    rel = query.get("path", "")
    path = browse.artifact_path(run_id, stage, rel)
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    name = quote(path.name)
    return Reply(200, kind, path.read_bytes(), (("Content-Disposition", f"attachment; filename*=UTF-8''{name}"),))


def _compare(query: dict[str, str]) -> Reply:
    ids = [part for part in query.get("ids", "").split(",") if part]
    return json_reply(browse.compare(ids))


def _sweep(sweep_id: str, query: dict[str, str]) -> Reply:
    from orchestra.app import sweep  # only the sweep page needs it

    return json_reply(sweep.summary(sweep_id))


_API: tuple[tuple[re.Pattern[str], Callable[..., Reply]], ...] = (
    (re.compile(r"/api/runs"), lambda q: _runs(q)),
    (re.compile(r"/api/runs/([0-9a-f]+)"), _run),
    (re.compile(r"/api/runs/([0-9a-f]+)/stages/([^/]+)/log"), _log),
    (re.compile(r"/api/runs/([0-9a-f]+)/stages/([^/]+)/artifact"), _artifact),
    (re.compile(r"/api/compare"), lambda q: _compare(q)),
    (re.compile(r"/api/sweeps/([0-9a-zA-Z_-]+)"), _sweep),
    (re.compile(r"/api/schedules"), lambda q: json_reply(browse_more.schedules())),
    (re.compile(r"/api/webhooks"), lambda q: json_reply(browse_more.webhooks(_int(q, "limit", 200, 5000)))),
)


def dispatch(path: str, query: dict[str, str]) -> Reply:
    """The answer to ``GET path?query``."""
    if path in ("/", "/index.html"):
        return Reply(200, "text/html; charset=utf-8", assets.page().encode())
    if path.startswith("/static/"):
        data = assets.static(path[len("/static/"):])
        if data is None:
            return _NOT_FOUND
        kind = mimetypes.guess_type(path)[0] or "application/octet-stream"
        return Reply(200, kind + ("; charset=utf-8" if kind.startswith(("text/", "application/javascript")) else ""),
                     data)
    for pattern, handler in _API:
        match = pattern.fullmatch(path)
        if match:
            return handler(*(unquote(g) for g in match.groups()), query)
    return _NOT_FOUND
