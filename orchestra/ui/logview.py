"""``orchestra logs RUN [STAGE] [-f] [--stdout|--stderr]``: a stage's log as a person reads it.

Lines are marked with their stream (``out |`` / ``err |``) when both are shown, and ``\\r``
progress frames are collapsed to the last one. The log files keep no timestamps, so a finished
stage's streams print one after the other (stdout first); with ``-f`` lines print as they
arrive, interleaved in the order they were read, until the stage (every stage, without STAGE)
has ended.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, TextIO

from orchestra.app import browse
from orchestra.core.textlog import last_frame

_ACTIVE = ("PENDING", "RUNNING")
_MARK = {"stdout": "out | ", "stderr": "err | "}


def show(run_id: str, stage: str | None, stream: str | None, *, follow: bool, out: TextIO,
         note: Callable[[str], None] = print, poll_s: float = 0.2) -> int:
    """Print (or follow) the logs (``note`` says where a loaded stage's log is); returns the exit code (0)."""
    run = browse.run_detail(run_id)
    names = [s["name"] for s in run["stages"]]
    if stage is not None and stage not in names:
        browse.log_path(run["run_id"], stage, "stdout")  # raises: no such stage, naming the stages
    stages = [stage] if stage else names
    if stage is not None:
        record = next(s for s in run["stages"] if s["name"] == stage)
        if record["status"] == "LOADED" and record["loaded_from"]:
            source = record["loaded_from"]
            note(f"orchestra: stage {stage} was loaded, not run; its log: "
                 f"orchestra logs {source['run_id'][:8]} {source['stage']}")
    streams = (stream,) if stream else browse.STREAMS
    prefix_stage = stage is None

    def mark(name: str, which: str) -> str:
        return (f"[{name}] " if prefix_stage else "") + ("" if stream else _MARK[which])

    if not follow:
        for name in stages:
            for which in streams:
                text = browse.stage_log(run["run_id"], name, which, max_bytes=1 << 62)
                for line in text.splitlines():
                    out.write(mark(name, which) + line + "\n")
        out.flush()
        return 0
    tails = {(name, which): _Tail() for name in stages for which in streams}
    while True:
        wrote = False
        for (name, which), tail in tails.items():
            path = tail.path or browse.log_path(run["run_id"], name, which)
            tail.path = path
            for line in tail.read_lines():
                out.write(mark(name, which) + line + "\n")
                wrote = True
        if wrote:
            out.flush()
            continue
        statuses = {s["name"]: s["status"] for s in browse.run_detail(run["run_id"])["stages"]}
        if not any(statuses.get(name) in _ACTIVE for name in stages):
            for (name, which), tail in tails.items():  # what was written after the last read
                tail.path = tail.path or browse.log_path(run["run_id"], name, which)
                for line in tail.read_lines(final=True):
                    out.write(mark(name, which) + line + "\n")
            out.flush()
            return 0
        time.sleep(poll_s)


class _Tail:
    """Reads the new complete lines of a growing file (a partial last line waits for its end)."""

    def __init__(self) -> None:
        self.path: Path | None = None
        self.offset = 0
        self.partial = b""

    def read_lines(self, final: bool = False) -> list[str]:
        if self.path is None or not self.path.is_file():
            return []
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            data = handle.read()
        self.offset += len(data)
        data = self.partial + data
        *lines, self.partial = data.split(b"\n")
        if final and self.partial:
            lines.append(self.partial)
            self.partial = b""
        return [last_frame(line.decode("utf-8", errors="replace").rstrip("\r")) for line in lines]
