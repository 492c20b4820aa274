"""``orchestra dag`` formats, ``orchestra logs``, ``orchestra ui``'s token and read-only store, over real runs."""

from __future__ import annotations

import json
import re
import sqlite3
import struct
import urllib.error
import urllib.request

import pytest

from tests.integration import ui_rig

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    home = tmp_path_factory.mktemp("uihome")
    ids = ui_rig.populate(home, tmp_path_factory.mktemp("uiproj"))
    return home, ids


def test_dag_svg_of_a_run_colours_each_stage_by_status(store, tmp_path):
    home, ids = store
    out = tmp_path / "dag.svg"
    proc = ui_rig.cli(home, "dag", ids["failing"], "--format", "svg", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    found = re.findall(r'data-stage="([^"]+)" data-status="([A-Z]*)"><rect [^>]*fill="(#[0-9a-f]+)"', text)
    nodes = {name: (status, fill) for name, status, fill in found}
    expected = {"prepare": "LOADED", "train": "FINISHED", "flaky": "LOADED", "evaluate": "FAILED", "publish": "SKIPPED"}
    assert nodes == {name: (status, ui_rig.STATUS_COLORS[status]) for name, status in expected.items()}
    assert text.count("marker-end") == 5  # one arrow per edge
    assert f"loaded from {ids['low'][:8]}" in text


def test_dag_png_without_graphviz(store, tmp_path):
    pytest.importorskip("PIL")
    home, ids = store
    out = tmp_path / "dag.png"
    proc = ui_rig.cli(home, "dag", ids["mid"][:8], "--format", "png", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert width > 600 and height > 80


def test_dag_text_formats_carry_statuses_for_a_run_and_stay_plain_for_a_project(store, tmp_path):
    home, ids = store
    mermaid = ui_rig.cli(home, "dag", ids["failing"], "--format", "mermaid").stdout
    assert "classDef failed fill:#e03131" in mermaid and ":::skipped" in mermaid
    dot = ui_rig.cli(home, "dag", ids["failing"], "--format", "dot").stdout
    assert '"evaluate" [label="evaluate [failed' in dot and '"train" -> "evaluate";' in dot
    ascii_art = ui_rig.cli(home, "dag", ids["failing"]).stdout
    assert "publish [skipped] <- evaluate" in ascii_art
    project = ui_rig.write_project(tmp_path / "p", ui_rig.DEMO, ui_rig.DEMO_FILES)
    plain = ui_rig.cli(home, "dag", str(project), "--format", "mermaid").stdout
    assert "classDef" not in plain and "prepare" in plain
    html = tmp_path / "dag.html"
    assert ui_rig.cli(home, "dag", str(project), "--format", "html", "-o", str(html)).returncode == 0
    assert '"dag_only": true' in html.read_text() and "<script src=" not in html.read_text()


def test_dag_of_an_unknown_run_is_a_one_line_error(store):
    home, _ids = store
    proc = ui_rig.cli(home, "dag", "abcdef1234", "--format", "svg", check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "no run" in proc.stderr


def test_logs_print_both_streams_marked_with_progress_bars_collapsed(store):
    home, ids = store
    out = ui_rig.cli(home, "logs", ids["low"], "prepare").stdout
    assert "out | preparing" in out and "out | [##########] 100%" in out and "10%" not in out
    flaky = ui_rig.cli(home, "logs", ids["low"], "flaky", "--stderr").stdout
    assert flaky == "boom\n"  # only stderr, unmarked; the first attempt's line is kept
    every = ui_rig.cli(home, "logs", ids["low"]).stdout
    assert "[train] out | trained" in every and "[flaky] err | boom" in every
    loaded = ui_rig.cli(home, "logs", ids["mid"], "prepare")
    assert loaded.stdout == "" and f"its log: orchestra logs {ids['low'][:8]} prepare" in loaded.stderr
    bad = ui_rig.cli(home, "logs", ids["low"], "nosuch", check=False)
    assert bad.returncode == 2 and "has no stage 'nosuch'" in bad.stderr and "prepare" in bad.stderr


def test_logs_follow_prints_lines_as_a_stage_writes_them(store, tmp_path):
    import os
    import subprocess
    import sys

    home, _ids = store
    project = ui_rig.write_project(tmp_path / "gated", ui_rig.GATED)
    gate = tmp_path / "gate"
    env = {**os.environ, "ORCHESTRA_HOME": str(home), "PYTHONPATH": str(ui_rig.REPO_ROOT)}
    run = subprocess.Popen([sys.executable, "-m", "orchestra", "run", str(project), "-P", f"gate={gate}"], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        run_id = ui_rig.wait_for(lambda: _running(home), what="the running run")
        follow = subprocess.Popen([sys.executable, "-m", "orchestra", "logs", run_id, "wait", "-f", "--stdout"],
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert follow.stdout is not None
        assert follow.stdout.readline() == "waiting\n"  # printed while the stage still runs
        assert follow.poll() is None
        gate.touch()
        rest, _err = follow.communicate(timeout=60)
        assert rest == "opened\n" and follow.returncode == 0
    finally:
        gate.touch()
        run.wait(60)


def _running(home) -> str | None:
    conn = sqlite3.connect(home / "runs.sqlite")
    try:
        row = conn.execute("SELECT run_id FROM runs WHERE status = 'RUNNING'").fetchone()
        if row and conn.execute("SELECT 1 FROM stages WHERE run_id = ? AND name = 'wait' AND status = 'RUNNING'",
                                (row[0],)).fetchone():
            return row[0]
        return None
    finally:
        conn.close()


def test_ui_on_another_address_requires_the_printed_token(store):
    home, _ids = store
    ui = ui_rig.UIProcess(home, "--host", "0.0.0.0")
    try:
        token = re.search(r"token=([\w-]+)", ui.url).group(1)
        port = ui.base.rsplit(":", 1)[1]
        base = f"http://127.0.0.1:{port}"
        for path in ("/", "/api/runs", "/static/app.js"):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(base + path, timeout=30)
            assert refused.value.code == 403
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(base + "/api/runs?token=wrong", timeout=30)
        with urllib.request.urlopen(f"{base}/api/runs?token={token}", timeout=30) as answer:
            assert json.load(answer)["total"] >= 3
            cookie = answer.headers["Set-Cookie"].split(";")[0]
        request = urllib.request.Request(base + "/api/runs", headers={"Cookie": cookie})
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert answer.status == 200
        request = urllib.request.Request(base + "/api/runs", headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert answer.status == 200
    finally:
        ui.stop()


def test_ui_on_loopback_needs_no_token_and_serves_artifacts_by_manifest_only(store):
    home, ids = store
    ui = ui_rig.UIProcess(home)
    try:
        assert "token" not in ui.url
        url = f"{ui.base}/api/runs/{ids['low']}/stages/prepare/artifact?path=data.txt"
        with urllib.request.urlopen(url, timeout=30) as answer:
            assert answer.read() == b"prepared\n" and "attachment" in answer.headers["Content-Disposition"]
        for rel in ("../../../runs.sqlite", "/etc/passwd", "logs/stdout.log"):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(f"{ui.base}/api/runs/{ids['low']}/stages/prepare/artifact?path={rel}", timeout=30)
            assert refused.value.code == 400
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"{ui.base}/api/runs/{'0' * 32}", timeout=30)
        assert missing.value.code == 404
    finally:
        ui.stop()


def test_the_ui_reads_the_store_read_only(store, monkeypatch):
    from orchestra.store import readonly

    home, _ids = store
    monkeypatch.setenv("ORCHESTRA_HOME", str(home))
    readonly.reset()
    try:
        conn = readonly.connect("runs")
        with pytest.raises(sqlite3.OperationalError, match="readonly|read-only"):
            conn.execute("DELETE FROM runs")
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] >= 3
        assert readonly.connect("nosuchstore") is None
        assert not (home / "nosuchstore.sqlite").exists()
    finally:
        readonly.reset()


def test_run_and_help_never_import_the_ui(tmp_path):
    import os
    import subprocess
    import sys

    project = ui_rig.write_project(tmp_path / "p", "entry_points:\n  main:\n    command: 'echo hi'\n")
    code = ("import sys\nfrom orchestra.cli import main, build_parser\nbuild_parser()\n"
            "help_mods = {m for m in sys.modules if m.startswith(('orchestra.ui', 'grandalf', 'PIL', 'http.server'))}\n"
            f"main(['run', {str(project)!r}, '-q'])\n"
            # a run serves its stages' MLflow endpoint with the standard library's http.server: not the UI's
            "run_mods = {m for m in sys.modules if m.startswith(('orchestra.ui', 'grandalf', 'PIL'))}\n"
            "print(sorted(help_mods), sorted(run_mods))")
    env = {**os.environ, "ORCHESTRA_HOME": str(tmp_path / "home"), "PYTHONPATH": str(ui_rig.REPO_ROOT)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "[] []", out.stderr
