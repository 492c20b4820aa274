"""The CLI's own start: argparse is imported without gettext, and nobody else sees the stand-in."""

from __future__ import annotations

import subprocess
import sys


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_argparse_comes_without_gettext_and_gettext_stays_the_real_one():
    out = _run("import sys\nfrom orchestra.cli import build_parser\n"
               "before = 'gettext' in sys.modules\n"
               "import gettext\n"
               "print(before, hasattr(gettext, 'translation'), gettext.__file__.endswith('gettext.py'))")
    assert out == "False True True"


def test_argparse_messages_are_whole_without_gettext():
    out = subprocess.run([sys.executable, "-m", "orchestra", "run", "--jobs", "x", "."], capture_output=True, text=True)
    assert out.returncode == 2
    assert "orchestra: error: argument -j/--jobs: invalid int value: 'x'" in out.stderr


def test_a_program_that_imported_gettext_first_keeps_it():
    out = _run("import gettext, sys\nfrom orchestra.cli import build_parser\nimport argparse\n"
               "print(argparse._ is gettext.gettext)")
    assert out == "True"
