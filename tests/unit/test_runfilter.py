"""The runs filter grammar (MLflow's search subset) and the \\r-collapsing of logs."""

from __future__ import annotations

import pytest

from orchestra.core.errors import BadInputError
from orchestra.core.runfilter import Clause, matches, parse
from orchestra.core.textlog import collapse_cr, last_frame

RUN = {"metrics": {"evaluate.rmse": 0.42, "loss": 3.0}, "params": {"alpha": "0.5", "name": "ridge-v2"},
       "tags": {"team": "ml-core"}, "attributes": {"status": "FINISHED", "run_name": "nightly", "start_time": 100.0}}


def test_parse_every_entity_and_operator():
    clauses = parse("metrics.`evaluate.rmse` <= 0.5 and params.alpha = '0.5' AND tags.team LIKE 'ml%' "
                    "and attributes.status != 'FAILED' and run_name ILIKE 'NIGHT%' and m.loss > 2e0")
    assert clauses == (Clause("metrics", "evaluate.rmse", "<=", 0.5), Clause("params", "alpha", "=", "0.5"),
                       Clause("tags", "team", "LIKE", "ml%"), Clause("attributes", "status", "!=", "FAILED"),
                       Clause("attributes", "run_name", "ILIKE", "NIGHT%"), Clause("metrics", "loss", ">", 2.0))
    assert matches(clauses, RUN)


def test_dotted_metric_keys_without_quotes():
    assert parse("metrics.evaluate.rmse < 1") == (Clause("metrics", "evaluate.rmse", "<", 1.0),)


@pytest.mark.parametrize(("text", "expected"), [
    ("metrics.evaluate.rmse < 0.4", False), ("metrics.evaluate.rmse >= 0.42", True),
    ("params.alpha != '0.5'", False), ("params.missing != 'x'", True), ("params.missing = 'x'", False),
    ("params.name LIKE 'ridge-v_'", True), ("params.name LIKE 'Ridge%'", False), ("params.name ILIKE 'Ridge%'", True),
    ("tags.team = 'ml-core' and metrics.loss < 3", False), ("start_time > 99", True), ("", True),
])
def test_matches(text, expected):
    assert matches(parse(text), RUN) is expected


@pytest.mark.parametrize(("text", "problem"), [
    ("metrics.rmse <", "unexpected end"), ("metrics.rmse < 'x'", "compares with a number"),
    ("params.alpha = 5", "quoted string"), ("metrics.rmse < 1 or params.a = 'b'", "'or' is not supported"),
    ("foo.bar = 'x'", "unknown entity"), ("attributes.color = 'red'", "unknown attribute"),
    ("metrics.rmse ~ 1", "unexpected character"), ("metrics.rmse LIKE '1%'", "LIKE takes"),
    ("params.a = 'x' params.b = 'y'", "expected 'and'"),
])
def test_bad_filters_are_one_line_bad_input(text, problem):
    with pytest.raises(BadInputError) as info:
        parse(text)
    message = str(info.value)
    assert problem in message and "\n" not in message and info.value.exit_code == 2


def test_progress_frames_collapse_to_the_last_one():
    assert last_frame("10%\r50%\r100%") == "100%"
    assert last_frame("done\r") == "done"
    assert collapse_cr("start\n[#   ] 10%\r[##  ] 50%\r[####] 100%\nend\r\n") == "start\n[####] 100%\nend\n"
    assert collapse_cr("plain\ntext") == "plain\ntext"


def _store_with_runs(tmp_path, monkeypatch):
    """Four runs written straight into a run store (no pipeline needed to test the SQL)."""
    import json
    import sqlite3

    from orchestra.store import runs

    monkeypatch.setenv("ORCHESTRA_HOME", str(tmp_path))
    conn = runs.db()
    rows = [("a" * 32, "Ridge-v1", {"alpha": "0.5"}, {"rmse": 0.4}, 10.0), ("b" * 32, "ridge-v2", {"alpha": "10"}, {"rmse": 0.2}, 20.0),
            ("c" * 32, "lasso", {"alpha": "2"}, {}, 30.0), ("d" * 32, "odd_*name", {}, {"rmse": 0.9}, 40.0)]
    for run_id, name, params, metrics, start in rows:
        conn.execute("INSERT INTO runs (run_id, experiment, status, start_time, params, tags) VALUES (?, 'E', ?, ?, ?, ?)",
                     (run_id, "FAILED" if name == "lasso" else "FINISHED", start, json.dumps(params),
                      json.dumps({"mlflow.runName": name})))
        conn.execute("INSERT INTO stages (run_id, name, status, metrics) VALUES (?, 'evaluate', 'FINISHED', ?)",
                     (run_id, json.dumps(metrics)))
    ro = sqlite3.connect(f"file:{tmp_path}/runs.sqlite?mode=ro", uri=True)
    ro.row_factory = sqlite3.Row
    return ro


@pytest.mark.parametrize(("text", "sort", "descending", "expected"), [
    ("", "start_time", True, ["odd_*name", "lasso", "ridge-v2", "Ridge-v1"]),
    ("", "metrics.evaluate.rmse", False, ["ridge-v2", "Ridge-v1", "odd_*name", "lasso"]),  # no value: last
    ("", "params.alpha", True, ["ridge-v2", "lasso", "Ridge-v1", "odd_*name"]),  # 10 > 2 > 0.5: numbers as numbers
    ("run_name LIKE 'ridge%'", "start_time", True, ["ridge-v2"]),  # LIKE is case-sensitive
    ("run_name ILIKE 'ridge%'", "start_time", True, ["ridge-v2", "Ridge-v1"]),
    ("run_name LIKE 'odd_*%'", "start_time", True, ["odd_*name"]),  # GLOB's * is literal in a LIKE pattern
    ("run_name LIKE 'odd_?%'", "start_time", True, []),
    ("metrics.evaluate.rmse != 0.4", "start_time", True, ["odd_*name", "lasso", "ridge-v2"]),  # missing counts as !=
    ("metrics.evaluate.rmse < 0.5 and params.alpha = '10'", "start_time", True, ["ridge-v2"]),
    ("status = 'FAILED'", "run_name", False, ["lasso"]),
])
def test_the_sql_of_a_filter_and_a_sort(tmp_path, monkeypatch, text, sort, descending, expected):
    from orchestra.store.runquery import select_runs

    conn = _store_with_runs(tmp_path, monkeypatch)
    page = select_runs(conn, parse(text), sort, descending)
    import json

    assert [json.loads(row["tags"])["mlflow.runName"] for row in page.rows] == expected
    assert (page.total, page.matched) == (4, len(expected))


def test_a_metric_needs_its_stage_and_a_sort_key_must_exist(tmp_path, monkeypatch):
    from orchestra.store.runquery import select_runs

    conn = _store_with_runs(tmp_path, monkeypatch)
    with pytest.raises(BadInputError, match="needs its stage"):
        select_runs(conn, parse("metrics.rmse < 1"))
    with pytest.raises(BadInputError, match="cannot sort by"):
        select_runs(conn, (), "colour")
