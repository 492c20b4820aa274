"""RunOptions check themselves: api callers (the scheduler, a notebook) get the CLI's exit-2 errors."""

from __future__ import annotations

import pytest

from orchestra.core import options as o
from orchestra.core.errors import BadInputError


@pytest.mark.parametrize("build, message", [
    (lambda: o.ExecutionOptions(jobs=0), "-j 0: must be at least 1"),
    (lambda: o.ExecutionOptions(executor="dask://nohost"), "--executor dask://nohost: expected dask://HOST:PORT"),
    (lambda: o.ExecutionOptions(executor="k8s"), "--executor k8s: unknown executor"),
    (lambda: o.ExecutionOptions(env_manager="pipenv"), "--env-manager pipenv: unknown"),
    (lambda: o.CacheOptions(load_stages=("a",)), "--load-stages needs --load-from RUN_ID"),
    (lambda: o.RecordingOptions(tracking_uri="http://h:notaport"), "is not a valid URL"),
])
def test_bad_values_are_one_line_exit_2_errors(build, message):
    with pytest.raises(BadInputError) as caught:
        build()
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert caught.value.exit_code == 2


def test_good_values_pass_and_the_executor_is_parsed():
    assert o.ExecutionOptions(jobs=2, executor="dask://127.0.0.1:8786").jobs == 2
    assert o.parse_executor("dask://127.0.0.1:8786") == ("dask", "tcp://127.0.0.1:8786")
    assert o.parse_executor("local") == ("local", None)
    assert o.RunOptions().execution.executor == "local"
    # A store URI is not an error: the run is kept locally and says how to mirror it.
    assert o.RecordingOptions(tracking_uri="sqlite:///x.db").tracking_uri == "sqlite:///x.db"


@pytest.mark.parametrize("build, message", [
    (lambda: o.ExecutionOptions(backend="databricks"), "-b/--backend databricks: not a backend orchestra runs"),
    (lambda: o.ExecutionOptions(backend_config={"jbos": 2}), "-c/--backend-config: unknown key 'jbos'"),
    (lambda: o.ExecutionOptions(backend_config={"jobs": "2"}), "-c/--backend-config: jobs: expected a number"),
    (lambda: o.ExecutionOptions(backend_config={"jobs": 0}), "jobs: must be at least 1"),
    (lambda: o.ExecutionOptions(backend_config={"executor": "k8s"}), "--executor k8s: unknown executor"),
])
def test_mlflow_run_flags_refuse_what_they_cannot_do(build, message):
    with pytest.raises(BadInputError) as caught:
        build()
    assert message in str(caught.value) and caught.value.exit_code == 2


def test_backend_config_applies_orchestras_keys_unless_the_flag_is_given():
    config = {"jobs": 3, "keep_going": True, "executor": "dask://127.0.0.1:8786", "SYNCHRONOUS": True,
              "docker_auth": {"username": "u"}}
    applied = o.ExecutionOptions(backend_config=config)
    assert (applied.jobs, applied.keep_going, applied.executor) == (3, True, "dask://127.0.0.1:8786")
    assert o.ExecutionOptions(jobs=1, backend_config=config).jobs == 1
    assert "--executor dask://HOST:PORT" in str(pytest.raises(BadInputError, o.ExecutionOptions, backend="kubernetes").value)


def test_mlflow_local_backend_run_id_key_is_run_id():
    options = o.RunOptions(execution=o.ExecutionOptions(backend_config={"_mlflow_local_backend_run_id": "abc"}))
    assert options.recording.parent_run_id == "abc"
    given = o.RunOptions(execution=o.ExecutionOptions(backend_config={"_mlflow_local_backend_run_id": "abc"}),
                         recording=o.RecordingOptions(parent_run_id="xyz"))
    assert given.recording.parent_run_id == "xyz"


def test_backend_config_is_a_json_file_or_string(tmp_path):
    from orchestra.cli.run import backend_config

    (tmp_path / "c.json").write_text('{"jobs": 2}')
    assert backend_config(str(tmp_path / "c.json")) == {"jobs": 2}
    assert backend_config('{"keep_going": true}') == {"keep_going": True}
    for bad, message in ((str(tmp_path / "missing.json"), "no such file"), ("{jobs", "not JSON"), ("[1]", "a JSON object")):
        with pytest.raises(BadInputError, match=message):
            backend_config(bad)


@pytest.mark.parametrize("flags, environ, expected", [
    ({}, {}, ("Default", None)),
    ({}, {"MLFLOW_EXPERIMENT_NAME": "wine"}, ("wine", None)),
    ({}, {"MLFLOW_EXPERIMENT_ID": "7"}, ("Default", "7")),
    ({"experiment": "beer"}, {"MLFLOW_EXPERIMENT_ID": "7", "MLFLOW_EXPERIMENT_NAME": "wine"}, ("beer", None)),
    ({"experiment_id": "3"}, {"MLFLOW_EXPERIMENT_ID": "7"}, ("Default", "3")),
])
def test_experiment_flags_and_mlflows_variables(flags, environ, expected):
    import argparse

    from orchestra.cli.run import experiment_of

    args = argparse.Namespace(**{"experiment": None, "experiment_id": None, **flags})
    assert experiment_of(args, environ) == expected
