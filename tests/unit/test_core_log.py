"""orchestra's loggers import ``logging`` on first use and still carry the CLI's configuration."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import sys
from orchestra.core import log
log.configure(debug={debug})
assert {debug} or "logging" not in sys.modules  # nothing logged yet: not imported (--debug: at once)
first = log.get("orchestra.somewhere")
first.debug("quiet unless --debug")
first.warning("careful: %s", "x")
assert "logging" in sys.modules
later = log.get("orchestra.elsewhere")  # made after logging was loaded
later.warning("again")
"""


def _stderr(debug: bool) -> list[str]:
    out = subprocess.run([sys.executable, "-c", CODE.format(debug=debug)], capture_output=True, text=True,
                         timeout=60, check=True)
    return out.stderr.splitlines()


def test_a_warning_is_one_formatted_line_and_debug_needs_the_flag():
    assert _stderr(False) == ["orchestra: WARNING: careful: x", "orchestra: WARNING: again"]
    assert _stderr(True) == ["orchestra: DEBUG: quiet unless --debug", "orchestra: WARNING: careful: x",
                             "orchestra: WARNING: again"]
