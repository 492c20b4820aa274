"""Human output on stderr: one line per event, stage output prefixed, a live area on a TTY.

On a terminal the bottom of the screen is a live area, redrawn twice a second: one line per
running stage (its name, elapsed time and the last line it printed — a ``\\r`` progress bar shows
as its latest frame) above the summary line (stage counts, elapsed time). Finished lines scroll
above it. Piped, output stays plain lines: progress frames are not printed, only the line a bar
ends with. Colour follows ``--color auto|always|never`` and ``NO_COLOR``.
"""

from __future__ import annotations

import os
import sys
import threading
import time

from orchestra.core.status import StageStatus
from orchestra.core.textlog import last_frame

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

_COLORS = {"FINISHED": "32", "LOADED": "36", "FAILED": "31", "KILLED": "31", "SKIPPED": "33", "RUN": "34",
           "DIM": "2"}
COLOR_MODES = ("auto", "always", "never")
_MAX_STAGE_LINES = 8


def use_color(mode: str, stream: TextIO) -> bool:
    """``always``/``never`` as said; ``auto``: a terminal, unless ``NO_COLOR`` is set (no-color.org)."""
    if mode == "always":
        return True
    if mode == "never" or os.environ.get("NO_COLOR"):
        return False
    return _isatty(stream) and os.environ.get("TERM") != "dumb"


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Console:
    """Thread-safe writer with the live area described in the module docstring."""

    def __init__(self, stream: TextIO | None = None, quiet: bool = False, color: str = "auto") -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.live = (not quiet) and _isatty(self.stream) and os.environ.get("TERM") != "dumb"
        self.colored = use_color(color, self.stream)
        self._lock = threading.Lock()
        self._drawn = 0  # lines of the live area on screen (the cursor is on its last one)
        self._status = ""
        self._started = time.monotonic()
        self.counts: dict[str, int] = {}
        self.total = 0
        self.running: dict[str, float] = {}  # stage -> monotonic start
        self.last_output: dict[str, str] = {}  # stage -> the last line (or frame) it printed
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
        return f"\x1b[{code}m{text}\x1b[0m" if self.colored and code else text

    def _erase(self) -> None:
        """Remove the live area (or a transient line) from the screen."""
        if self._drawn > 1:
            self._write("\r\x1b[K" + "\x1b[1A\x1b[K" * (self._drawn - 1))
        elif self._drawn or self._status:
            self._write("\r\x1b[K")
        self._drawn = 0
        self._status = ""

    def line(self, text: str) -> None:
        if self.quiet:
            return
        with self._lock:
            if self.live:
                self._erase()
            self._write(text + "\n")
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
            self._erase()
            self._status = text
            self._write(text)
            self._flush()

    def clear(self) -> None:
        """Remove a transient line or the live area (before an error message is printed below it)."""
        if self.live and (self._status or self._drawn):
            with self._lock:
                self._erase()
                self._flush()

    def stage_line(self, stage: str, text: str) -> None:
        self.line(f"[{stage}] {text}")

    def stage_output(self, stage: str, text: str) -> None:
        """A line a stage printed; text ending in ``\\r`` is a progress frame (shown live, never scrolled)."""
        if text.endswith("\r"):
            self.last_output[stage] = last_frame(text)
            return  # the live area shows it at the next redraw (at most 0.5 s away)
        text = last_frame(text)
        self.last_output[stage] = text
        self.stage_line(stage, text)

    def set_counts(self, counts: dict[str, int]) -> None:
        self.counts = counts
        if self.live and not self._closed.is_set():
            with self._lock:
                self._erase()
                self._draw()
                self._flush()
            if self._ticker is None:
                self._ticker = threading.Thread(target=self._tick, name="console-status", daemon=True)
                self._ticker.start()

    def stage_running(self, stage: str) -> None:
        self.running[stage] = time.monotonic()

    def stage_done(self, stage: str) -> None:
        self.running.pop(stage, None)
        self.last_output.pop(stage, None)

    def _tick(self) -> None:
        # Durations of running stages move even when no stage prints anything.
        while not self._closed.wait(0.5):
            with self._lock:
                if not self._closed.is_set():
                    self._erase()
                    self._draw()
                    self._flush()

    def _draw(self) -> None:
        width = _width(self.stream)
        now = time.monotonic()
        running = sorted(self.running.items(), key=lambda item: item[1])
        lines = []
        name_width = min(24, max((len(name) for name, _ in running), default=0))
        for name, start in running[:_MAX_STAGE_LINES]:
            head = f"  {name:<{name_width}} {now - start:6.1f}s  "
            tail = self.last_output.get(name, "")
            lines.append(_fit(head + tail, width))
        if len(running) > _MAX_STAGE_LINES:
            lines.append(f"  … {len(running) - _MAX_STAGE_LINES} more running")
        done = sum(self.counts.get(k, 0) for k in (StageStatus.FINISHED, StageStatus.LOADED))
        parts = [f"{done}/{self.total} done"]
        if running:
            parts.append(f"{len(running)} running")
        for key in (StageStatus.FAILED, StageStatus.SKIPPED, StageStatus.PENDING):
            if self.counts.get(key):
                parts.append(f"{self.counts[key]} {key.lower()}")
        self._status = _fit(f"── {' · '.join(parts)} · {now - self._started:.1f}s", width)
        shown = [self.color(line, "DIM") for line in lines] + [self._status]
        self._write("\n".join(shown))
        self._drawn = len(shown)

    def close(self) -> None:
        self._closed.set()
        if self.live and (self._status or self._drawn):
            with self._lock:
                self._erase()
                self._flush()


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def _width(stream: TextIO) -> int:
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        columns = 0
    return max(20, columns) if columns else 100  # a pty of unknown size reports 0
