"""Human output on stderr: one line per event, stage output prefixed, a live status line on a TTY."""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import TextIO

from orchestra.core.status import StageStatus

_COLORS = {"FINISHED": "32", "LOADED": "36", "FAILED": "31", "KILLED": "31", "SKIPPED": "33", "RUN": "34"}


class Console:
    """Thread-safe writer; on a terminal keeps a bottom line with stage counts, the running
    stages with their durations, and elapsed time (redrawn twice a second)."""

    def __init__(self, stream: TextIO | None = None, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.live = (not quiet) and self.stream.isatty() and os.environ.get("TERM") != "dumb"
        self._lock = threading.Lock()
        self._status = ""
        self._started = time.monotonic()
        self.counts: dict[str, int] = {}
        self.total = 0
        self.running: dict[str, float] = {}  # stage -> monotonic start
        self._ticker: threading.Thread | None = None
        self._closed = threading.Event()

    def _write(self, text: str) -> None:
        # A reader that went away (``orchestra run | head``, a closed terminal) must not kill
        # the pipeline: stage logs are in files anyway, so stop writing and carry on.
        if self.quiet:
            return
        try:
            self.stream.write(text)
        except (OSError, ValueError):
            self.quiet = True

    def _flush(self) -> None:
        if self.quiet:
            return
        try:
            self.stream.flush()
        except (OSError, ValueError):
            self.quiet = True

    def color(self, text: str, status: str) -> str:
        code = _COLORS.get(status)
        return f"\x1b[{code}m{text}\x1b[0m" if self.live and code else text

    def line(self, text: str) -> None:
        if self.quiet:
            return
        with self._lock:
            if self.live and self._status:
                self._write("\r\x1b[K")
            self._write(text + "\n")
            self._status = ""
            if self.live and not self._closed.is_set() and self.total:
                self._draw()
            self._flush()

    def notice(self, text: str) -> None:
        """Something to know or act on (the core.report.Reporter protocol); ``-q`` drops it too."""
        self.line(f"orchestra: notice: {text}")

    def transient(self, text: str) -> None:
        """A line shown only on a terminal and only until the next one ("building …"): a
        failure after it still reads as the one line it is, and logs stay clean."""
        if not self.live or self._closed.is_set():
            return
        with self._lock:
            self._status = text
            self._write("\r\x1b[K" + text)
            self._flush()

    def clear(self) -> None:
        """Remove a transient or status line (before an error message is printed below it)."""
        if self.live and self._status:
            with self._lock:
                self._write("\r\x1b[K")
                self._flush()
                self._status = ""

    def stage_line(self, stage: str, text: str) -> None:
        self.line(f"[{stage}] {text}")

    def set_counts(self, counts: dict[str, int]) -> None:
        self.counts = counts
        if self.live and not self._closed.is_set():
            with self._lock:
                self._draw()
                self._flush()
            if self._ticker is None:
                self._ticker = threading.Thread(target=self._tick, name="console-status", daemon=True)
                self._ticker.start()

    def stage_running(self, stage: str) -> None:
        self.running[stage] = time.monotonic()

    def stage_done(self, stage: str) -> None:
        self.running.pop(stage, None)

    def _tick(self) -> None:
        # Durations of running stages move even when no stage prints anything.
        while not self._closed.wait(0.5):
            with self._lock:
                if not self._closed.is_set():
                    self._draw()
                    self._flush()

    def _draw(self) -> None:
        done = sum(self.counts.get(k, 0) for k in (StageStatus.FINISHED, StageStatus.LOADED))
        parts = [f"{done}/{self.total} done"]
        now = time.monotonic()
        running = sorted(self.running.items(), key=lambda item: item[1])
        if running:
            shown = ", ".join(f"{name} {now - start:.1f}s" for name, start in running[:3])
            more = f" +{len(running) - 3}" if len(running) > 3 else ""
            parts.append(f"running: {shown}{more}")
        for key in (StageStatus.FAILED, StageStatus.SKIPPED, StageStatus.PENDING):
            if self.counts.get(key):
                parts.append(f"{self.counts[key]} {key.lower()}")
        status = f"── {' · '.join(parts)} · {now - self._started:.1f}s"
        width = _width(self.stream)
        self._status = status if len(status) <= width else status[:width - 1] + "…"
        self._write("\r\x1b[K" + self._status)

    def close(self) -> None:
        self._closed.set()
        if self.live and self._status:
            with self._lock:
                self._write("\r\x1b[K")
                self._flush()
                self._status = ""


def _width(stream: TextIO) -> int:
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        columns = 0
    return max(20, columns) if columns else 100  # a pty of unknown size reports 0
