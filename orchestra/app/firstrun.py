"""The first run in an ORCHESTRA_HOME says where runs are kept and how to look at them, once.

It is said to a person: on a terminal only (a run whose output goes to a pipe or a log file, as
in scripts and CI, says nothing and leaves the marker unwritten, and so does ``-q``), so the first
run someone watches tells. A marker file in the home remembers that it was said.
"""

from __future__ import annotations

from orchestra.app.console import Console
from orchestra.core.layout import orchestra_home

MARKER = ".first-run-told"


def tell(console: Console, run_id: str) -> None:
    """Print the note when this home has never shown it (and remember that it did)."""
    if console.quiet or not console.live:
        return
    home = orchestra_home()
    try:
        with open(home / MARKER, "x", encoding="utf-8") as marker:  # exclusive: one of two parallel runs tells
            marker.write("the first run's note was shown\n")
    except FileExistsError:
        return
    except OSError:
        return  # an unwritable home already failed louder; the note is not worth a second error
    console.line(f"orchestra: runs are kept in {home} (set ORCHESTRA_HOME to move them); to see this one: "
                 f"orchestra runs show {run_id[:8]}, all of them in a browser: orchestra ui")
