"""What the web UI's tests share: a demo pipeline, a real ``orchestra ui`` process, a headless Chromium.

The browser is Debian's ``chromium`` driven by its ``chromedriver`` through Selenium; the driver
path is given explicitly so Selenium Manager never tries to download one.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

from tests.conftest import REPO_ROOT, write_project

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
STATUS_COLORS = {"FINISHED": "#2f9e44", "LOADED": "#1c7ed6", "FAILED": "#e03131", "SKIPPED": "#adb5bd",
                 "RUNNING": "#f59f00", "PENDING": "#e9ecef", "KILLED": "#862e9c"}

# prepare → train → evaluate → publish, and flaky (fails its first attempt, then passes) beside
# train. prepare prints a \r progress bar; train logs a loss history; evaluate logs rmse from alpha
# and fails with -P fail=yes (publish is then skipped).
DEMO = r"""
name: uidemo
entry_points:
  prepare:
    command: "echo preparing; for p in 10 50 100; do printf '\r[%-10s] %3d%%' $(printf '#%.0s' $(seq 1 $((p / 10)))) $p; done; echo; echo prepared > {outputs}/data.txt"
    outputs: [data.txt]
  train:
    depends_on: [prepare]
    parameters: {alpha: {type: float, default: 0.5}}
    command: "python3 train_stage.py {alpha} && echo model > {outputs}/model.txt"
  flaky:
    depends_on: [prepare]
    parameters: {flagdir: {type: string, default: /tmp}}
    retries: 1
    command: "if [ -e {flagdir}/flaky-$ORCHESTRA_RUN_ID ]; then echo recovered; else touch {flagdir}/flaky-$ORCHESTRA_RUN_ID; echo boom >&2; sleep 0.3; exit 3; fi"
  evaluate:
    depends_on: [train, flaky]
    parameters: {fail: {type: string, default: "no"}, alpha: {type: float, default: 0.5}}
    command: "python3 evaluate_stage.py {alpha} && test {fail} = no"
  publish:
    depends_on: [evaluate]
    command: "echo published"
"""

DEMO_FILES = {
    "train_stage.py": """
        import json, os, sys, time
        alpha = float(sys.argv[1])
        with open(os.environ["ORCHESTRA_METRICS_FILE"], "a") as f:
            for i in range(8):
                f.write(json.dumps({"type": "metric", "key": "loss", "value": (1 + alpha) / (i + 1), "step": i,
                                    "timestamp": time.time()}) + "\\n")
        print("trained")
    """,
    "evaluate_stage.py": """
        import json, os, sys
        with open(os.environ["ORCHESTRA_METRICS_FILE"], "a") as f:
            f.write(json.dumps({"type": "metric", "key": "rmse", "value": 0.2 + float(sys.argv[1]) / 2}) + "\\n")
        print("rmse written")
    """,
}

GATED = """
name: gated
entry_points:
  first:
    command: "echo first"
  wait:
    depends_on: [first]
    parameters: {gate: {type: string, default: /nonexistent}}
    command: "echo waiting; while [ ! -e {gate} ]; do sleep 0.1; done; echo opened"
"""


def cli(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ORCHESTRA_HOME": str(home), "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run([sys.executable, "-m", "orchestra", *args], env=env, capture_output=True, text=True,
                          timeout=180)
    if check:
        assert proc.returncode in (0, 1), proc.stderr
    return proc


def run_id_of(output: str) -> str:
    match = re.search(r"orchestra: run ([0-9a-f]{32})", output)
    assert match, output
    return match.group(1)


def populate(home: Path, root: Path) -> dict[str, str]:
    """Three runs of the demo: alpha 0.1 (with a retried stage), 0.5 (loads prepare), 0.9 failing."""
    project = write_project(root / "uidemo", DEMO, DEMO_FILES)
    flags = root / "flags"
    flags.mkdir(exist_ok=True)
    ids = {}
    for name, extra in (("low", ["-P", "alpha=0.1"]), ("mid", ["-P", "alpha=0.5"]),
                        ("failing", ["-P", "alpha=0.9", "-P", "fail=yes"])):
        proc = cli(home, "run", str(project), "-P", f"flagdir={flags}", *extra, "--run-name", name)
        ids[name] = run_id_of(proc.stderr)
    return ids


class UIProcess:
    """``orchestra ui --port 0`` over ``home`` in a subprocess; ``url`` is what it printed."""

    def __init__(self, home: Path, *extra: str) -> None:
        env = {**os.environ, "ORCHESTRA_HOME": str(home), "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([sys.executable, "-m", "orchestra", "ui", "--port", "0", *extra], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = re.search(r"(http://\S+)", line)
        assert match, f"orchestra ui printed {line!r}; stderr: {self.proc.stderr.read() if not match else ''}"
        self.url = match.group(1)
        self.base = self.url.split("/?")[0].rstrip("/")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def chrome(download_dir: Path | None = None):
    """A headless Chromium (Selenium with the system chromedriver)."""
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("chromium and chromedriver are not installed (.ci/run installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
                "--disable-gpu"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


def wait_for(predicate: Callable[[], object], timeout: float = 60.0, what: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except Exception as exc:  # noqa: BLE001 - an element not there yet
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def screenshot(driver, tmp_path: Path, name: str) -> Path:
    """Keep a screenshot under the test's tmp dir; with ORCHESTRA_UI_SCREENSHOTS=DIR also there."""
    path = tmp_path / f"{name}.png"
    driver.save_screenshot(str(path))
    extra = os.environ.get("ORCHESTRA_UI_SCREENSHOTS")
    if extra:
        shutil.copy(path, Path(extra) / f"ui-{name}.png")
    return path
