"""The run store's logged models: written with a stage's update, read by a stage loaded from it, and
a store written before the table existed opens and reads back with no models."""

from __future__ import annotations

import sqlite3

from orchestra.core.layout import home_path
from orchestra.core.records import LoadedFrom, StageUpdate
from orchestra.core.status import StageStatus
from orchestra.store import db
from orchestra.store import runs as runstore


def _run(stages):
    run_id = runstore.new_run_id()
    runstore.create_run(run_id, experiment="e", project_uri="p", targets=list(stages), params={}, tags={},
                        stages=stages)
    return run_id


def test_models_are_stored_with_the_stage_and_a_loaded_stage_reads_its_sources():
    model = {"model_id": "m-1", "name": "ridge", "files": "mlflow-models/m-1/", "params": {"alpha": "0.5"}}
    first = _run(["train"])
    runstore.update_stage(first, "train", StageUpdate(status=StageStatus.FINISHED, models=(model,)))
    second = _run(["train"])
    runstore.update_stage(second, "train", StageUpdate(status=StageStatus.LOADED, loaded_from=LoadedFrom(first, "train")))
    assert runstore.get_run(first).stage("train").models == (model,)
    assert runstore.get_run(second).stage("train").models == (model,)
    assert runstore.get_run(second).to_json()["stages"][0]["models"] == [model]
    runstore.delete_runs([first])
    assert not runstore.db().execute("SELECT COUNT(*) FROM models WHERE run_id = ?", (first,)).fetchone()[0]


def test_a_store_from_before_the_models_table_still_reads():
    run_id = _run(["a"])
    runstore.db().execute("DROP TABLE models")
    runstore.db().execute("PRAGMA user_version=0")  # what the orchestra of then left (it set no version)
    db.reset_connections()
    conn = sqlite3.connect(home_path() / "runs.sqlite")
    assert not conn.execute("SELECT name FROM sqlite_master WHERE name = 'models'").fetchall()
    conn.close()
    assert runstore.get_run(run_id).stage("a").models == ()  # the table is back, empty
