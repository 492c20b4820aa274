"""orchestra becomes the subreaper of what its stages detach, without importing ``ctypes``."""

from __future__ import annotations

import subprocess
import sys

import pytest

CHECK = """
import sys
from orchestra.execution import descendants
before = 'ctypes' in sys.modules
enabled = descendants.become_subreaper()
after = 'ctypes' in sys.modules
import ctypes  # only now, to ask the kernel with the usual library
flag = ctypes.c_int(-1)
ctypes.CDLL(None, use_errno=True).prctl(37, ctypes.byref(flag), 0, 0, 0)  # PR_GET_CHILD_SUBREAPER
print(before, enabled, after, flag.value)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_CHILD_SUBREAPER is Linux's")
def test_become_subreaper_sets_the_flag_without_the_ctypes_package():
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True", "False", "1"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_CHILD_SUBREAPER is Linux's")
def test_an_orphan_of_a_subreaper_becomes_its_child():
    """The flag does what the stage sweep relies on: a grandchild whose parent exits is re-parented
    to this process, not to init."""
    code = """
import os, time
from orchestra.execution import descendants
assert descendants.become_subreaper()
pid = os.fork()
if pid == 0:  # the child forks a grandchild and exits at once
    if os.fork() == 0:
        time.sleep(30); os._exit(0)
    os._exit(0)
os.waitpid(pid, 0)
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    kids = open(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read().split()
    if kids:
        for kid in kids:
            os.kill(int(kid), 9); os.waitpid(int(kid), 0)
        print("adopted"); break
    time.sleep(0.01)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "adopted"
