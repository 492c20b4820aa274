"""Human output on stderr: one line per event, stage output prefixed, a live status line on a TTY."""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import TextIO

_COLORS = {"FINISHED": "32", "LOADED": "36", "FAILED": "31", "KILLED": "31", "SKIPPED": "33", "RUN": "34"}


class Console:
    """Thread-safe writer; on a terminal keeps a bottom line with stage counts and elapsed time."""

    def __init__(self, stream: TextIO | None = None, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.live = (not quiet) and self.stream.isatty() and os.environ.get("TERM") != "dumb"
        self._lock = threading.Lock()
        self._status = ""
        self._started = time.monotonic()
        self.counts: dict[str, int] = {}
        self.total = 0

    def color(self, text: str, status: str) -> str:
        code = _COLORS.get(status)
        return f"\x1b[{code}m{text}\x1b[0m" if self.live and code else text

    def line(self, text: str) -> None:
        if self.quiet:
            return
        with self._lock:
            if self.live and self._status:
                self.stream.write("\r\x1b[K")
            self.stream.write(text + "\n")
            if self.live:
                self._draw()
            self.stream.flush()

    def stage_line(self, stage: str, text: str) -> None:
        self.line(f"[{stage}] {text}")

    def set_counts(self, counts: dict[str, int]) -> None:
        self.counts = counts
        if self.live:
            with self._lock:
                self._draw()
                self.stream.flush()

    def _draw(self) -> None:
        done = sum(self.counts.get(k, 0) for k in ("FINISHED", "LOADED"))
        parts = [f"{done}/{self.total} done"]
        for key in ("RUNNING", "FAILED", "SKIPPED", "PENDING"):
            if self.counts.get(key):
                parts.append(f"{self.counts[key]} {key.lower()}")
        self._status = f"── {' · '.join(parts)} · {time.monotonic() - self._started:.1f}s"
        self.stream.write("\r\x1b[K" + self._status)

    def close(self) -> None:
        if self.live and self._status:
            with self._lock:
                self.stream.write("\r\x1b[K")
                self.stream.flush()
                self._status = ""
