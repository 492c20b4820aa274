"""``mlflow run -b orchestra``'s ``--backend-config`` and arguments as RunOptions (no mlflow needed)."""

from __future__ import annotations

import json

import jsonschema
import pytest

from orchestra.app.mlflow_backend.config import TOKEN_TAG, BackendRequest, check_config, run_options
from orchestra.core.errors import BadInputError
from orchestra.core.layout import SCHEMAS_DIR


def request(**config) -> BackendRequest:
    return BackendRequest(uri="/p", entry_point="train", params={"alpha": "0.3"}, version=None, config=config,
                          tracking_uri="http://127.0.0.1:5000", experiment="exp", experiment_id="7", token="t0k",
                          targets=("train",))


def test_config_keys_become_run_options():
    options = run_options(request(jobs=2, keep_going=True, no_cache=True, force=["train"], load_from="abcdef12",
                                  load_stages=["prep"], load_steps=["load_data"], hooks=["h.yaml"],
                                  mlflow_artifacts=True, ENV_MANAGER="local", STORAGE_DIR="/tmp/s", SYNCHRONOUS=True,
                                  DOCKER_ARGS={"gpus": "all"}))
    assert options.execution.jobs == 2 and options.execution.keep_going and options.execution.env_manager == "local"
    assert options.cache.no_cache and options.cache.force == ("train",) and options.cache.load_steps == ("load_data",)
    assert options.selection.params == ("alpha=0.3",) and options.selection.entry_points == ("train",)
    assert options.selection.storage_dir == "/tmp/s" and options.execution.docker_args == (("gpus", "all"),)
    assert options.recording.experiment_id == "7" and options.recording.tags == {TOKEN_TAG: "t0k"}
    assert options.notification.hooks_uris == ("h.yaml",) and options.recording.mlflow_artifacts


@pytest.mark.parametrize("config, message", [
    ({"jobz": 2}, "unknown key 'jobz'"),
    ({"jobs": "2"}, "'jobs' must be integer"),
    ({"jobs": 0}, "'jobs' must be at least 1"),
    ({"force": "train"}, "'force' must be array"),
    ({"force": [1]}, "'force' must be a list of strings"),
    ({"no_cache": "yes"}, "'no_cache' must be boolean"),
])
def test_bad_config_is_one_line_exit_2(config, message):
    with pytest.raises(BadInputError) as caught:
        check_config(config)
    assert message in str(caught.value) and caught.value.exit_code == 2 and "\n" not in str(caught.value)


def test_load_steps_without_load_from_is_refused_like_the_cli():
    with pytest.raises(BadInputError, match="--load-steps needs --load-from"):
        run_options(request(load_steps=["x"]))


def test_request_round_trips_and_the_schema_is_a_schema():
    original = request(jobs=1)
    assert BackendRequest.from_json(original.to_json()) == original
    schema = json.loads((SCHEMAS_DIR / "mlflow-backend-config.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate({"jobs": 2, "force": ["a"], "ENV_MANAGER": None}, schema)
