"""What the verbs print for ``--json``."""

from __future__ import annotations

import json
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def print_json(value: Any) -> None:
    """``value`` as indented JSON on stdout, one trailing newline (values JSON lacks as text)."""
    json.dump(value, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
