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
