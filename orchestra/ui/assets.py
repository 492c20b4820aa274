"""The shipped scripts and styles (``orchestra/ui/static``), linked by the app, inlined by the report.

Everything the pages need is in the package, so the UI and a report work with no network: the
layered graph layout (dagre) and the charts (uPlot) are vendored from npm with their licenses
(``static/vendor/VERSIONS``).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

STATIC = Path(__file__).parent / "static"
STYLES = ("vendor/uPlot.min.css", "style.css")
SCRIPTS = ("vendor/dagre.min.js", "vendor/uPlot.iife.min.js", "app.js")
_SHIPPED = frozenset(STYLES + SCRIPTS)

_SHELL = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="data:,">
{styles}
</head><body>
<header class="top"><a class="brand" href="{home}">orchestra</a>{nav}</header>
<main id="app"><p class="muted">Loading…</p></main>
{data}
{scripts}
</body></html>
"""
_NAV = ('<nav><a href="#/runs">Runs</a><a href="#/schedules">Schedules</a>'
        '<a href="#/webhooks">Webhooks</a></nav>')


def static(name: str) -> bytes | None:
    """A shipped file by its name under ``static/`` (only the files the pages use)."""
    return (STATIC / name).read_bytes() if name in _SHIPPED else None


@lru_cache(maxsize=1)
def page() -> str:
    """The app's single page, linking the shipped files."""
    return _SHELL.format(
        title="orchestra", home="#/runs", nav=_NAV, data="",
        styles="\n".join(f'<link rel="stylesheet" href="/static/{name}">' for name in STYLES),
        scripts="\n".join(f'<script src="/static/{name}"></script>' for name in SCRIPTS))


def _inline_json(value: Any) -> str:
    # "</" would end the script element; the escapes keep it inert inside JSON strings.
    return json.dumps(value, default=str).replace("</", "<\\/").replace("<!--", "<\\!--")


def _inline_text(name: str) -> str:
    return (STATIC / name).read_text(encoding="utf-8").replace("</script", "<\\/script")


def inline_page(title: str, data: Any) -> str:
    """One self-contained page: every style, script and the data inlined (the report)."""
    return _SHELL.format(
        title=title.replace("&", "&amp;").replace("<", "&lt;"), home="#", nav="",
        styles="\n".join(f"<style>\n{(STATIC / name).read_text(encoding='utf-8')}\n</style>" for name in STYLES),
        data=f'<script id="orchestra-report" type="application/json">{_inline_json(data)}</script>',
        scripts="\n".join(f"<script>\n{_inline_text(name)}\n</script>" for name in SCRIPTS))
