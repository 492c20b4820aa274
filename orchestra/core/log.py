"""orchestra's loggers, with the standard ``logging`` module imported only when something logs.

A plain run logs nothing, and ``logging`` (with ``string`` and ``traceback``) is ~3 ms of its
fixed cost. ``get(name)`` returns a stand-in that imports ``logging`` and applies the CLI's
configuration (:func:`configure`) on its first call; from then on it is the real logger's method.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_debug = False
_pending = False  # configure() was called and its handler is not installed yet


def configure(debug: bool) -> None:
    """What ``orchestra --debug`` sets: applied now if ``logging`` is loaded, else on first use."""
    global _debug, _pending
    _debug, _pending = debug, True
    if debug or "logging" in sys.modules:
        _apply()


def _apply() -> None:
    global _pending
    if not _pending:
        return
    _pending = False
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("orchestra: %(levelname)s: %(message)s"))
    logger = logging.getLogger("orchestra")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG if _debug else logging.WARNING)
    logger.propagate = False


class Logger:
    """A ``logging.Logger`` named ``name``, created when first used."""

    __slots__ = ("_name", "_real")

    def __init__(self, name: str) -> None:
        self._name = name
        self._real: Any = None

    def __getattr__(self, attr: str) -> Any:
        if self._real is None:
            import logging

            _apply()
            self._real = logging.getLogger(self._name)
        return getattr(self._real, attr)


def get(name: str) -> Logger:
    return Logger(name)
