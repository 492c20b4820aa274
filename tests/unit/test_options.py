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
