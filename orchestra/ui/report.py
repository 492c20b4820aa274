"""``orchestra report RUN -o report.html``: the run page as one self-contained HTML file.

The page's scripts (the app, dagre, uPlot), its styles, the run's data and its stage logs (the
last 200 kB of each stream, ``\\r`` frames collapsed) are inlined: the file opens anywhere, with
no server and no network, and can be attached to a ticket or a message.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from orchestra.app import browse
from orchestra.core.errors import BadInputError
from orchestra.ui import assets

LOG_BYTES = 200_000


def build(run_id: str) -> str:
    """The report's HTML for ``run_id`` (a unique prefix is accepted)."""
    run = browse.run_detail(run_id)
    logs: dict[str, dict[str, str]] = {}
    for stage in run["stages"]:
        if stage["has_logs"]:
            logs[stage["name"]] = {stream: browse.stage_log(run["run_id"], stage["name"], stream, LOG_BYTES)
                                   for stream in browse.STREAMS}
    title = f"orchestra run {run['run_name'] or run['run_id'][:8]} ({run['status'].lower()})"
    return assets.inline_page(title, {"run": run, "logs": logs})


def dag_page(view: dict[str, Any]) -> str:
    """A self-contained page drawing only a DAG (``orchestra dag --format html``)."""
    return assets.inline_page(f"orchestra dag {view['title']}", {"run": view, "logs": {}, "dag_only": True})


def write(text: str | bytes, output: str) -> Path:
    """Write ``text`` to ``output`` atomically (a temporary file renamed into place)."""
    path = Path(output).expanduser()
    if path.is_dir():
        raise BadInputError(f"{output} is a directory", where="-o", hint="give a file name such as report.html")
    if not path.parent.is_dir():
        raise BadInputError(f"directory {path.parent} does not exist", where="-o", hint="create it first")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8") if isinstance(text, str) else text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
