"""The cyclic garbage collector, paused through a command's start and resumed with its start frozen.

Importing ~100 modules and planning a run make some 150,000 container objects, nearly all of them
kept for the whole command (modules, classes, functions, the plan) and very few cycles to free:
the collector walked them some 17 times before the first stage started (~3 ms of a one-stage
run). :func:`pause` (the program, ``orchestra/__main__.py``, before anything else is imported)
switches it off; :func:`resume` (the session, once a run is about to start its stages; the CLI for
every other command, once it is parsed) moves everything made so far out of its sight
(``gc.freeze``) and switches it back on, so later collections walk only what is made after.
Code that never paused it (tests, the API in a notebook) is left alone by :func:`resume`.
"""

from __future__ import annotations

import gc

_paused = False


def pause() -> None:
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def resume() -> None:
    """Collect again from here on (only if :func:`pause` switched the collector off)."""
    global _paused
    if _paused:
        _paused = False
        gc.freeze()  # what exists now lives as long as the command (its few cycles stay until exit)
        gc.set_threshold(10_000, 10, 10)  # (a run makes many long-lived objects and few cycles)
        gc.enable()
