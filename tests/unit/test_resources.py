"""Resource requests → worker labels, sizes, and the before-the-run satisfiability check."""

from __future__ import annotations

import pytest

from orchestra.execution import executors
from orchestra.mlproject import resources
from orchestra.core.errors import BadInputError, SpecError


@pytest.mark.parametrize("value, expected", [
    ("4GB", 4e9), ("4 gb", 4e9), ("512MiB", 512 * 2**20), ("1.5g", 1.5e9), (".5TiB", 2**39), ("100", 100.0),
    (2048, 2048.0), (0, 0.0), ("3kb", 3000.0),
])
def test_parse_memory(value, expected):
    assert resources.parse_memory(value) == expected


@pytest.mark.parametrize("value", ["lots", "4 GBs", "GB", "-1GB", -5, True, "4e9", ""])
def test_parse_memory_refuses_non_sizes(value):
    with pytest.raises(SpecError) as info:
        resources.parse_memory(value, "MLproject: entry_points.t.resources.memory")
    assert str(info.value).startswith("MLproject: entry_points.t.resources.memory: memory ")


def test_labels_map_known_names_and_drop_zero():
    assert resources.labels({"cpus": 2, "gpus": 0, "memory": "1GB", "tpu": 1}) == {"CPU": 2.0, "MEMORY": 1e9, "tpu": 1.0}


def test_check_satisfiable_needs_one_worker_with_everything():
    offers = {"tcp://a:1": {"GPU": 1.0}, "tcp://b:1": {"CPU": 8.0, "MEMORY": 16e9}}
    resources.check_satisfiable({"x": {"gpus": 1}, "y": {"cpus": 4, "memory": "8GB"}, "z": {}}, offers, cluster="c")
    with pytest.raises(BadInputError) as info:
        # GPU on a, CPU on b: no single worker has both.
        resources.check_satisfiable({"both": {"gpus": 1, "cpus": 1}}, offers, cluster="tcp://s:1")
    text = str(info.value)
    assert "stage 'both' needs CPU=1,GPU=1 but no worker of tcp://s:1 offers it" in text
    assert "tcp://a:1: GPU=1; tcp://b:1: CPU=8,MEMORY=1.6e+10" in text
    assert info.value.exit_code == 2


def test_validate_names_the_key():
    with pytest.raises(SpecError, match=r"at\.resources\.gpus: resource gpus='two'"):
        resources.validate({"gpus": "two"}, "at.resources")


@pytest.mark.parametrize("spec, expected", [
    ("local", ("local", None)), ("", ("local", None)), ("dask://127.0.0.1:8786", ("dask", "tcp://127.0.0.1:8786")),
    ("dask://sched.example:1", ("dask", "tcp://sched.example:1")), ("dask://[::1]:8786", ("dask", "tcp://[::1]:8786")),
])
def test_executor_parse(spec, expected):
    assert executors.parse(spec) == expected


@pytest.mark.parametrize("spec", ["dask://host", "dask://host:x", "dask://:1", "k8s://ns", "dask://h:1?x=1"])
def test_executor_parse_refuses(spec):
    with pytest.raises(BadInputError, match="--executor"):
        executors.parse(spec)
