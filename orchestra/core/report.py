"""Where user-facing messages go: one :class:`Reporter` per command.

Code below the application layer never prints. It is handed a Reporter (the run's console, or
:data:`STDERR` for commands without one) and calls ``line``/``notice``; the console decides
about colour, the live status line and ``-q``.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # a protocol for type checkers only: `typing` stays off a run's path
    from typing import Protocol

    class Reporter(Protocol):
        """Receives the lines a command shows the user."""

        def line(self, text: str) -> None:
            """A line of progress or a summary (dropped with ``-q``)."""

        def notice(self, text: str) -> None:
            """Something the user should know or act on (``orchestra: notice: …``; ``-q`` drops it too)."""


class StderrReporter:
    """The reporter of commands without a console: plain lines on stderr."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet

    def line(self, text: str) -> None:
        if not self.quiet:
            _write(text)

    def notice(self, text: str) -> None:
        if not self.quiet:
            _write(f"orchestra: notice: {text}")


class NullReporter:
    """Swallows everything (tests, and library callers that want silence)."""

    def line(self, text: str) -> None:
        pass

    def notice(self, text: str) -> None:
        pass


def _write(text: str) -> None:
    try:
        print(text, file=sys.stderr, flush=True)
    except (BrokenPipeError, ValueError):  # a reader that went away never breaks a run
        pass


STDERR = StderrReporter()
