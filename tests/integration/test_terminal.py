"""The terminal output of ``orchestra run`` in a real pseudo-terminal and through a pipe.

A stage draws a tqdm-style bar with ``\\r`` frames (printed by the stage itself, no tqdm needed)
while another stage runs beside it.
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.integration

BAR = r"""
entry_points:
  bar:
    command: "for i in 1 2 3 4 5 6 7 8 9 10; do printf '\r%3d%%|%-10s|' $((i * 10)) $(printf '#%.0s' $(seq 1 $i)); sleep 0.25; done; printf '\n'; echo bar done"
  other:
    command: "echo other begins; sleep 2; echo other ends"
  last:
    depends_on: [bar, other]
    command: "echo all done"
"""


def _project(tmp_path):
    root = tmp_path / "bars"
    root.mkdir(exist_ok=True)
    (root / "MLproject").write_text(BAR)
    return root


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "NO_COLOR"}
    return {**env, "PYTHONPATH": str(REPO_ROOT), "TERM": "xterm", **(extra or {})}


def _run_in_pty(args: list[str], env: dict[str, str], timeout: float = 120) -> tuple[int, str]:
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "orchestra", *args], stdin=slave, stdout=slave, stderr=slave,
                            env=env, close_fds=True)
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child side closed
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
    finally:
        os.close(master)
    return proc.wait(60), b"".join(chunks).decode(errors="replace")


def test_a_tty_shows_one_live_line_per_running_stage_with_the_bars_latest_frame(tmp_path):
    code, screen = _run_in_pty(["run", str(_project(tmp_path))], _env())
    assert code == 0, screen
    # the live area: a line per running stage (name, elapsed, last output), both at once
    live_bar = re.findall(r"  bar\s+\d+\.\ds  +(\d+)%\|(#+) *\|", screen)
    assert live_bar, screen
    assert any(int(pct) in range(20, 100) for pct, _ in live_bar)  # a frame drawn while the bar ran
    assert re.search(r"  other\s+\d+\.\ds  other begins", screen)
    assert "── " in screen and "running" in screen  # the summary line under them
    assert "\x1b[1A\x1b[K" in screen  # the area is redrawn in place (cursor up, erase)
    # what scrolled: the bar's last frame as one line, never an intermediate one
    assert "[bar] 100%|##########|" in screen
    assert not re.search(r"\[bar\] +\d0%\|#{1,9} *\|", screen)
    assert "\x1b[32m" in screen  # colour on a terminal
    assert re.search(r"  bar +\S*ran +\S* +\d+\.\d\ds", screen)  # the summary table


def test_piped_output_is_plain_lines_with_frames_collapsed(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "orchestra", "run", str(_project(tmp_path))], env=_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr
    assert "\r" not in err and "\x1b[" not in err
    assert err.count("[bar] 100%|##########|") == 1 and "[bar]  50%" not in err
    table = err[err.index("  stage "):].splitlines()
    assert [line.split()[:2] for line in table[1:4]] == [["bar", "ran"], ["other", "ran"], ["last", "ran"]]
    assert table[-1].startswith("orchestra: run ") and "FINISHED" in table[-1]


@pytest.mark.parametrize(("flag", "env", "colored"), [
    ([], {"NO_COLOR": "1"}, False), (["--color", "never"], {}, False), (["--color", "always"], {"NO_COLOR": "1"}, True),
])
def test_color_follows_no_color_and_the_flag(tmp_path, flag, env, colored):
    code, screen = _run_in_pty(["run", str(_project(tmp_path)), *flag], _env(env))
    assert code == 0, screen
    assert ("\x1b[32m" in screen) is colored
    piped = subprocess.run([sys.executable, "-m", "orchestra", "run", str(_project(tmp_path)), *flag],
                           env=_env(env), capture_output=True, text=True, timeout=120).stderr
    assert ("\x1b[36m" in piped) is (flag == ["--color", "always"])  # the loaded stages' colour
