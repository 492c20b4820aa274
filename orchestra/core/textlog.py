"""Text of stage logs as a person reads it: ``\\r`` progress frames collapsed to the last one.

A progress bar (tqdm and friends) redraws one line with ``\\r``; a log file keeps every frame.
Shown in a browser, a report or ``orchestra logs``, each line keeps only what a terminal would
show at the end: the text after its last ``\\r``.
"""

from __future__ import annotations


def last_frame(line: str) -> str:
    """What a terminal shows for ``line`` (no ``\\n`` in it): the text after its last ``\\r``.

    A trailing ``\\r`` (a bar that returns the cursor before the next frame) is ignored.
    """
    body = line.rstrip("\r")
    return body[body.rfind("\r") + 1:]


def collapse_cr(text: str) -> str:
    """``text`` with every line reduced to its last ``\\r`` frame (``\\r\\n`` counts as a newline)."""
    if "\r" not in text:
        return text
    return "\n".join(last_frame(line) for line in text.replace("\r\n", "\n").split("\n"))
