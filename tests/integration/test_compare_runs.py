"""Comparing runs: ``runs list`` columns, filter, sort, csv and JSON; ``runs compare`` of three runs;
``api.runs_frame``. Real runs of the quickstart project; every ``--json`` is validated against its schema."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import jsonschema
import pytest

from orchestra.core.layout import SCHEMAS_DIR

QUICKSTART = Path(__file__).resolve().parents[2] / "example_projects" / "quickstart"


def _schema(name: str) -> dict:
    return json.loads((SCHEMAS_DIR / name).read_text())


@pytest.fixture
def three_runs(cli, tmp_path):
    root = tmp_path / "quickstart"
    shutil.copytree(QUICKSTART, root)
    ids = []
    for alpha, name in (("0.1", "small"), ("0.5", "mid"), ("2.0", "big")):
        done = cli("run", str(root), "--env-manager", "local", "-P", f"alpha={alpha}", "-P", "epochs=50",
                   "--run-name", name, "--json", "-q")
        assert done.code == 0, done.err
        ids.append(json.loads(done.out)["run_id"])
    return ids


def test_runs_list_columns_filter_sort_formats(cli, three_runs):
    small, mid, big = three_runs
    table = cli("runs", "list", "--columns", "params.alpha,metrics.evaluate.rmse", "--sort", "params.alpha")
    assert table.code == 0, table.err
    lines = table.out.splitlines()
    assert lines[0].split()[:2] == ["run_id", "name"] and "params.alpha" in lines[0]
    assert [line.split()[1] for line in lines[1:]] == ["small", "mid", "big"]  # numeric sort of a param
    descending = cli("runs", "list", "--sort=-params.alpha", "--limit", "2").out.splitlines()
    assert [line.split()[1] for line in descending[1:]] == ["big", "mid"]

    listed = json.loads(cli("runs", "list", "--json", "--columns", "params.alpha,metrics.evaluate.rmse",
                            "--filter", "params.alpha != '0.1' and metrics.evaluate.rmse > 0").out)
    jsonschema.validate(listed, _schema("runs-list.schema.json"))
    assert {r["run_id"] for r in listed} == {mid, big}
    assert all(isinstance(r["columns"]["metrics.evaluate.rmse"], float) for r in listed)
    assert {r["run_name"] for r in listed} == {"mid", "big"}

    rows = list(csv.DictReader(io.StringIO(cli("runs", "list", "--format", "csv", "--columns", "params.alpha",
                                               "--filter", "run_name = 'mid'").out)))
    assert len(rows) == 1 and rows[0]["run_id"] == mid and rows[0]["params.alpha"] == "0.5"

    bad = cli("runs", "list", "--filter", "metrics.evaluate.rmse < 'x'")
    assert bad.code == 2 and "Traceback" not in bad.err and "--filter" in bad.err and len(bad.err.splitlines()) == 1
    bad = cli("runs", "list", "--columns", "metrics.rmse")
    assert bad.code == 2 and "STAGE.KEY" in bad.err
    bad = cli("runs", "list", "--sort", "nonsense")
    assert bad.code == 2 and "cannot sort" in bad.err


def test_runs_compare_three(cli, three_runs):
    small, mid, big = three_runs
    text = cli("runs", "compare", small, mid, big[:8])
    assert text.code == 0, text.err
    assert "param alpha" in text.out and "same params: epochs=50" in text.out
    assert "0.2149787484539411" not in text.out  # rounded for reading
    assert "loaded from run " + small[:8] in text.out  # prepare of the second run
    data = json.loads(cli("runs", "compare", small, mid, big, "--json").out)
    jsonschema.validate(data, _schema("runs-compare.schema.json"))
    assert data["params"]["alpha"] == ["0.1", "0.5", "2.0"]
    rmse = data["metrics"]["evaluate.rmse"]
    assert rmse["deltas"][0] == 0 and rmse["deltas"][2] == rmse["values"][2] - rmse["values"][0]
    assert [entry["status"] for entry in data["stages"]["prepare"]] == ["FINISHED", "LOADED", "LOADED"]
    assert data["stages"]["train"][1]["why"] == "param alpha 0.1 → 0.5"
    diff = json.loads(cli("runs", "diff", small, mid, "--json").out)
    jsonschema.validate(diff, _schema("runs-compare.schema.json"))
    assert len(diff["runs"]) == 2
    assert cli("runs", "diff", small).code == 2


def test_runs_frame(three_runs):
    from orchestra.app import api

    small, mid, big = three_runs
    frame = api.runs_frame()
    assert list(frame["run_id"]) == [big, mid, small]  # newest first
    assert {"params.alpha", "metrics.evaluate.rmse", "tags.mlflow.runName"} <= set(frame.columns)
    assert frame["metrics.evaluate.rmse"].dtype == float
    some = api.runs_frame(filter="params.alpha = '0.5'", columns=["params.alpha", "metrics.evaluate.rmse"])
    assert list(some["run_id"]) == [mid]
    assert [c for c in some.columns if "." in c] == ["params.alpha", "metrics.evaluate.rmse"]
