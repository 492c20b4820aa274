"""The web UI and the HTML report in a real headless Chromium, over a store written by real runs.

Three runs of a demo pipeline (one with a retried stage, one loading a stage, one failing) are
served by a real ``orchestra ui`` process; the browser sorts, opens, compares and follows a live
run; the report is opened from a file with the network switched off. Screenshots of each page
are kept under the test's tmp dir (``ORCHESTRA_UI_SCREENSHOTS=DIR`` copies them there too).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.request

import pytest

from tests.conftest import REPO_ROOT, write_project
from tests.integration import ui_rig
from tests.integration.ui_rig import STATUS_COLORS, chrome, screenshot, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    home = tmp_path_factory.mktemp("uihome")
    ids = ui_rig.populate(home, tmp_path_factory.mktemp("uiproj"))
    return home, ids


@pytest.fixture(scope="module")
def server(store):
    ui = ui_rig.UIProcess(store[0])
    yield ui
    ui.stop()


@pytest.fixture(scope="module")
def browser():
    driver = chrome()
    yield driver
    driver.quit()


def _by(css):
    from selenium.webdriver.common.by import By

    return By.CSS_SELECTOR, css


def _nodes(browser):
    return {g.get_attribute("data-stage"): (g.get_attribute("data-status"),
                                            g.find_element(*_by("rect")).get_attribute("fill"))
            for g in browser.find_elements(*_by("svg.dag g.node"))}


def test_runs_page_sorts_by_a_metric(server, browser, store, tmp_path):
    _home, ids = store
    browser.get(server.url + "#/runs")
    wait_for(lambda: len(browser.find_elements(*_by("#runs-table tbody tr"))) == 3, what="three runs")
    header = wait_for(lambda: browser.find_element(*_by('th[data-sort="metrics.evaluate.rmse"]')), what="rmse column")
    header.click()  # descending first
    wait_for(lambda: "desc" in browser.find_element(*_by('th[data-sort="metrics.evaluate.rmse"]')).get_attribute("class"))
    wait_for(lambda: [tr.get_attribute("data-run-id") for tr in browser.find_elements(*_by("#runs-table tbody tr"))]
             == [ids["failing"], ids["mid"], ids["low"]], what="rows by rmse, descending")
    browser.find_element(*_by('th[data-sort="metrics.evaluate.rmse"]')).click()
    wait_for(lambda: [tr.get_attribute("data-run-id") for tr in browser.find_elements(*_by("#runs-table tbody tr"))]
             == [ids["low"], ids["mid"], ids["failing"]], what="rows by rmse, ascending")
    names = [a.text for a in browser.find_elements(*_by("#runs-table tbody tr td:nth-child(2) a"))]
    assert names == ["low", "mid", "failing"]
    screenshot(browser, tmp_path, "runs")


def _filter(browser, text: str) -> None:
    """Type ``text`` into the filter box, found again if the page re-rendered it meanwhile (a stale
    element under a loaded machine)."""
    def typed() -> bool:
        box = browser.find_element(*_by("#filter"))
        box.clear()
        box.send_keys(text)
        return True

    wait_for(typed, what="the filter box")


def test_runs_page_filters_with_the_shared_grammar(server, browser, store):
    _home, ids = store
    browser.get(server.url + "#/runs")
    wait_for(lambda: len(browser.find_elements(*_by("#runs-table tbody tr"))) == 3, what="three runs")
    _filter(browser, "metrics.evaluate.rmse < 0.5 and params.alpha != '0.5'\n")
    wait_for(lambda: [tr.get_attribute("data-run-id") for tr in browser.find_elements(*_by("#runs-table tbody tr"))]
             == [ids["low"]], what="only the low run")
    browser.get(server.url + "#/runs?sort=start_time&desc=0&limit=2")  # pages of two, oldest first
    rows = lambda: [tr.get_attribute("data-run-id") for tr in browser.find_elements(*_by("#runs-table tbody tr"))]
    wait_for(lambda: rows()[:2] == [ids["low"], ids["mid"]], what="the first page")
    browser.find_element(*_by("#next-page")).click()
    wait_for(lambda: rows() and rows()[0] == ids["failing"], what="the second page")
    assert browser.find_element(*_by("#prev-page")).is_enabled()
    _filter(browser, "metrics.evaluate.rmse <\n")
    assert "bad filter" in wait_for(lambda: browser.find_element(*_by(".error")).text, what="the filter's error")


def test_run_page_shows_the_dag_timeline_and_a_log(server, browser, store, tmp_path):
    _home, ids = store
    browser.get(server.url + "#/runs")
    link = wait_for(lambda: next(a for a in browser.find_elements(*_by("#runs-table a")) if a.text == "failing"),
                    what="the failing run's link")
    link.click()
    wait_for(lambda: len(_nodes(browser)) == 5, what="five DAG nodes")
    nodes = _nodes(browser)
    expected = {"prepare": "LOADED", "train": "FINISHED", "flaky": "LOADED", "evaluate": "FAILED", "publish": "SKIPPED"}
    assert {name: status for name, (status, _fill) in nodes.items()} == expected
    assert {name: fill for name, (_status, fill) in nodes.items()} == {n: STATUS_COLORS[s] for n, s in expected.items()}
    loaded = browser.find_element(*_by('svg.dag g.node[data-stage="prepare"]')).text
    assert f"loaded from {ids['low'][:8]}" in loaded
    assert len(browser.find_elements(*_by("svg.dag path.edge"))) == 5
    bars = browser.find_elements(*_by("svg.timeline rect.bar"))
    assert {b.get_attribute("data-stage") for b in bars} >= {"prepare", "train", "flaky", "evaluate"}
    screenshot(browser, tmp_path, "run-failed")
    browser.get(f"{server.url}#/run/{ids['low']}")  # prepare ran there (it is loaded in the others)
    wait_for(lambda: browser.find_element(*_by('button[data-log="prepare:stdout"]')), what="log button").click()
    text = wait_for(lambda: browser.find_element(*_by("#log-text")).text, what="the log text")
    assert "[##########] 100%" in text and "10%" not in text, text  # the \r bar's last frame only
    screenshot(browser, tmp_path, "run")


def test_a_retried_stage_shows_each_attempt_in_the_timeline(server, browser, store):
    _home, ids = store
    browser.get(f"{server.url}#/run/{ids['low']}")
    wait_for(lambda: browser.find_elements(*_by('svg.timeline rect.bar.retry[data-stage="flaky"]')), what="retry bar")
    flaky = browser.find_elements(*_by('svg.timeline rect.bar[data-stage="flaky"]'))
    assert [b.get_attribute("data-status") for b in flaky] == ["FAILED", "FINISHED"]
    charts = wait_for(lambda: browser.find_elements(*_by('.chart[data-metric="train.loss"] canvas')), what="loss chart")
    assert charts


def test_compare_three_runs(server, browser, store, tmp_path):
    _home, ids = store
    browser.get(server.url + "#/runs")
    wait_for(lambda: len(browser.find_elements(*_by("#runs-table tbody tr"))) == 3, what="three runs")
    for box in browser.find_elements(*_by("#runs-table tbody input[type=checkbox]")):
        box.click()
    browser.find_element(*_by("#compare")).click()
    wait_for(lambda: "#/compare/" in browser.current_url, what="the compare page")
    rows = wait_for(lambda: browser.find_elements(*_by("#compare-params tr.differs")), what="differing params")
    assert {r.find_element(*_by("th")).text for r in rows} == {"alpha", "fail"}
    charts = wait_for(lambda: browser.find_elements(*_by("#compare-charts .chart")), what="charts")
    assert {c.get_attribute("data-metric") for c in charts} >= {"train.loss", "evaluate.rmse"}
    screenshot(browser, tmp_path, "compare")


def test_schedules_and_webhooks_pages_show_fire_times_and_deliveries(server, browser, store, tmp_path):
    """A real schedule definition, and a run whose webhook goes to a real receiver on loopback."""
    import json

    from tests.hooks_receiver import Receiver

    home, _ids = store
    project = write_project(tmp_path / "hooked", "entry_points:\n  main:\n    command: 'echo hooked'\n")
    added = ui_rig.cli(home, "schedule", "add", "nightly", str(project), "--cron", "30 2 * * *", "--tz", "Europe/Berlin")
    assert added.returncode == 0, added.stderr
    with Receiver() as receiver:
        hooks = tmp_path / "hooks.json"
        hooks.write_text(json.dumps({"run_ended": [{"url": receiver.url, "name": "team-hook"}]}))
        ran = ui_rig.cli(home, "run", str(project), "--hooks", str(hooks), "--run-name", "hooked")
        assert ran.returncode == 0, ran.stderr
        receiver.wait_for(1, timeout=60)
    browser.get(server.url + "#/schedules")
    text = wait_for(lambda: browser.find_element(*_by("main .card")).text, what="the schedule's card")
    assert "nightly" in text and "30 2 * * * (Europe/Berlin)" in text and "02:30:00+01:00" in text
    screenshot(browser, tmp_path, "schedules")
    browser.get(server.url + "#/webhooks")
    row = wait_for(lambda: browser.find_element(*_by("main table tbody tr")), what="a delivery row")
    assert "team-hook" in row.text and "run_ended" in row.text and "delivered" in row.text and "#1 200" in row.text
    screenshot(browser, tmp_path, "webhooks")


def test_a_running_stage_turns_finished_without_a_reload(server, browser, store, tmp_path):
    home, _ids = store
    project = write_project(tmp_path / "gated", ui_rig.GATED)
    gate = tmp_path / "gate"
    env = {**os.environ, "ORCHESTRA_HOME": str(home), "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "orchestra", "run", str(project), "-P", f"gate={gate}",
                             "--run-name", "live"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        run_id = wait_for(lambda: _running_run(server), what="the live run in the store")
        browser.get(f"{server.url}#/run/{run_id}")
        wait_for(lambda: _nodes(browser).get("wait", ("",))[0] == "RUNNING", what="wait RUNNING")
        browser.execute_script("window.__noReload = 1")
        screenshot(browser, tmp_path, "run-live")
        gate.touch()
        wait_for(lambda: _nodes(browser).get("wait", ("",))[0] == "FINISHED", what="wait FINISHED")
        assert browser.execute_script("return window.__noReload") == 1
        wait_for(lambda: browser.find_element(*_by("#run-status .badge")).get_attribute("data-status") == "FINISHED",
                 what="the run FINISHED")
        assert proc.wait(60) == 0
    finally:
        gate.touch()
        proc.wait(60)


def _running_run(server) -> str | None:
    import json

    with urllib.request.urlopen(f"{server.base}/api/runs?filter=status+%3D+%27RUNNING%27") as answer:
        rows = json.load(answer)["rows"]
    return rows[0]["run_id"] if rows else None


def test_the_report_opens_offline_and_draws_the_same_graph(store, browser, tmp_path):
    home, ids = store
    out = tmp_path / "report.html"
    proc = ui_rig.cli(home, "report", ids["failing"][:10], "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    html = out.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*https?://""", html, re.IGNORECASE)
    assert not re.search(r"""(@import|url\()\s*["']?https?://""", html, re.IGNORECASE)
    assert "<script src=" not in html and "<link rel=\"stylesheet\"" not in html  # everything inlined
    browser.set_network_conditions(offline=True, latency=0, download_throughput=0, upload_throughput=0)
    try:
        browser.get(out.as_uri())
        wait_for(lambda: len(_nodes(browser)) == 5, what="five DAG nodes in the report")
        assert {n: s for n, (s, _f) in _nodes(browser).items()} == {
            "prepare": "LOADED", "train": "FINISHED", "flaky": "LOADED", "evaluate": "FAILED", "publish": "SKIPPED"}
        browser.find_element(*_by('button[data-log="evaluate:stdout"]')).click()
        assert "rmse written" in wait_for(lambda: browser.find_element(*_by("#log-text")).text, what="inlined log")
        screenshot(browser, tmp_path, "report")
    finally:
        browser.delete_network_conditions()


def test_dag_html_draws_a_project_and_a_run_offline(store, browser, tmp_path):
    home, ids = store
    project = write_project(tmp_path / "p", ui_rig.DEMO, ui_rig.DEMO_FILES)
    for target, statuses in ((str(project), {"NONE"}), (ids["failing"], {"LOADED", "FINISHED", "FAILED", "SKIPPED"})):
        out = tmp_path / "dag.html"
        assert ui_rig.cli(home, "dag", target, "--format", "html", "-o", str(out)).returncode == 0
        browser.set_network_conditions(offline=True, latency=0, download_throughput=0, upload_throughput=0)
        try:
            browser.get(out.as_uri())
            wait_for(lambda: len(_nodes(browser)) == 5, what="five nodes")
            assert {status for status, _fill in _nodes(browser).values()} == statuses
            assert len(browser.find_elements(*_by("svg.dag path.edge"))) == 5
        finally:
            browser.delete_network_conditions()


def test_a_missing_run_is_a_one_line_error(store, tmp_path):
    home, _ids = store
    proc = ui_rig.cli(home, "report", "abcdef123456", "-o", str(tmp_path / "r.html"), check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "no run" in proc.stderr
    assert not (tmp_path / "r.html").exists()


def test_a_sweep_page_shows_its_members_and_the_chart(browser, tmp_path):
    """A real 3-member sweep of the quickstart (its own store): the runs page links the sweep,
    whose page lists the members with their swept values and plots evaluate's metric against alpha."""
    home = tmp_path / "sweephome"
    proc = ui_rig.cli(home, "run", str(REPO_ROOT / "example_projects" / "quickstart"), "--sweep",
                      "alpha=0.1,0.5,0.9", "-P", "epochs=20", "--env-manager", "local")
    assert proc.returncode == 0, proc.stderr
    sweep_id = re.search(r"orchestra: sweep ([0-9a-f]+)", proc.stderr).group(1)
    ui = ui_rig.UIProcess(home)
    try:
        browser.get(ui.url + "#/runs")
        link = wait_for(lambda: browser.find_elements(*_by("#runs-table a.sweep-link")), what="sweep links")
        assert len(link) == 3
        link[0].click()
        wait_for(lambda: len(browser.find_elements(*_by("#sweep-members tbody tr"))) == 3, what="three members")
        assert sweep_id in browser.find_element(*_by("h1")).text
        alphas = sorted(tr.find_element(*_by("td.param")).text
                        for tr in browser.find_elements(*_by("#sweep-members tbody tr")))
        assert alphas == ["0.1", "0.5", "0.9"]
        assert [b.text for b in browser.find_elements(*_by("#sweep-members .badge"))] == ["finished"] * 3
        metric = browser.find_element(*_by("#sweep-metric")).get_attribute("value")
        assert metric.startswith("evaluate.")
        assert all(td.text not in ("", "—") for td in browser.find_elements(*_by("#sweep-members td.metric")))
        wait_for(lambda: browser.find_elements(*_by("#sweep-chart .uplot canvas")), what="the sweep chart")
        screenshot(browser, tmp_path, "sweep")
        member = browser.find_element(*_by("#sweep-members tbody tr td a")).get_attribute("href")
        browser.get(member)
        back = wait_for(lambda: browser.find_element(*_by("#run-sweep")), what="the run page's sweep link")
        assert back.text == sweep_id
        back.click()
        wait_for(lambda: len(browser.find_elements(*_by("#sweep-members tbody tr"))) == 3, what="the sweep again")
    finally:
        ui.stop()
