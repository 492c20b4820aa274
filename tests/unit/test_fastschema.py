"""The fast yes/no schema check must agree with jsonschema: never pass what jsonschema rejects."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import jsonschema
import pytest

from orchestra.mlproject import fastschema

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
MLPROJECT = json.loads((SCHEMAS / "mlproject.schema.json").read_text())

VALID = {
    "name": "demo",
    "conda_env": "conda.yaml",
    "entry_points": {
        "prep": {"command": "prep {rows}", "parameters": {"rows": {"type": "int", "default": 3}, "a": "float",
                                                           "b": None, "c": {"default": "x"}},
                 "outputs": ["data.csv"], "cache": False, "retries": 2, "timeout": 1.5, "env": "local"},
        "train": {"command": "train", "depends_on": ["prep"], "python_env": "py.yaml",
                  "resources": {"cpus": 2, "gpus": 0, "memory": "4GB"}},
        "eval": {"command": "eval", "depends_on": "train"},
    },
    "hooks": {"run_ended": [{"url": "https://h.example/x", "name": "ci"}]},
    "schedules": {"nightly": {"cron": "0 2 * * *", "timezone": "UTC", "overlap": "skip", "jitter": 0}},
}

# Each mutation: a key path and a replacement value (None-marker deletes).
DELETE = object()
MUTATIONS = [
    (("entry_points", "prep", "command"), DELETE),
    (("entry_points", "prep", "command"), ""),
    (("entry_points", "prep", "command"), 3),
    (("entry_points", "prep", "retries"), -1),
    (("entry_points", "prep", "retries"), 101),
    (("entry_points", "prep", "retries"), 2.0),
    (("entry_points", "prep", "retries"), 2.5),
    (("entry_points", "prep", "retries"), True),
    (("entry_points", "prep", "timeout"), 0),
    (("entry_points", "prep", "timeout"), "5"),
    (("entry_points", "prep", "cache"), "yes"),
    (("entry_points", "prep", "cache"), 1),
    (("entry_points", "prep", "env"), "conda"),
    (("entry_points", "prep", "outputs"), "data.csv"),
    (("entry_points", "prep", "outputs"), [""]),
    (("entry_points", "prep", "parameters", "rows"), "double"),
    (("entry_points", "prep", "parameters", "rows"), {"type": "double"}),
    (("entry_points", "prep", "parameters", "rows"), {"default": [1]}),
    (("entry_points", "prep", "parameters", "rows"), 5),
    (("entry_points", "prep", "parameters"), ["rows"]),
    (("entry_points", "train", "depends_on"), ["prep", "prep"]),
    (("entry_points", "train", "depends_on"), [""]),
    (("entry_points", "train", "depends_on"), 7),
    (("entry_points", "train", "resources", "cpus"), 0),
    (("entry_points", "train", "resources", "memory"), [4]),
    (("entry_points", "train", "resources", "extra"), {"a": 1}),
    (("entry_points", "eval"), "python eval.py"),
    (("entry_points",), []),
    (("entry_points",), None),
    (("name",), 5),
    (("conda_env",), ""),
    (("docker_env",), {"volumes": []}),
    (("docker_env",), {"image": "x"}),
    (("hooks", "run_ended"), {"url": "x"}),
    (("hooks", "run_ended", 0, "url"), DELETE),
    (("schedules", "nightly", "cron"), DELETE),
    (("schedules", "nightly", "overlap"), "never"),
    (("schedules", "nightly", "jitter"), -1),
    (("schedules", "nightly"), "0 2 * * *"),
    (("unknown_key",), {"anything": True}),
    (("entry_points", "prep", "unknown"), 1),
]


def _mutate(doc: dict, path: tuple, value: object) -> dict:
    doc = copy.deepcopy(doc)
    target = doc
    for part in path[:-1]:
        target = target[part]
    if value is DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return doc


def _agree(doc: object, schema: dict) -> None:
    expected = jsonschema.Draft202012Validator(schema).is_valid(doc)
    fast = fastschema.is_valid(doc, schema)
    # The contract: fast never says valid when jsonschema says invalid. For our schemas it
    # should also never fall back on a valid document (that would cost speed, not correctness).
    assert fast == expected, (doc, expected, fast)


def test_valid_document_passes():
    assert fastschema.is_valid(VALID, MLPROJECT)


@pytest.mark.parametrize("path,value", MUTATIONS, ids=lambda x: "/".join(map(str, x)) if isinstance(x, tuple) else None)
def test_mutation_agrees_with_jsonschema(path, value):
    _agree(_mutate(VALID, path, value), MLPROJECT)


def test_random_combinations_agree_with_jsonschema():
    rng = random.Random(1234)
    for _ in range(300):
        doc = VALID
        for path, value in rng.sample(MUTATIONS, rng.randint(1, 4)):
            try:
                doc = _mutate(doc, path, value)
            except (KeyError, TypeError, IndexError):
                continue  # an earlier mutation removed the parent
        _agree(doc, MLPROJECT)


def test_unknown_keyword_is_never_a_silent_pass():
    assert not fastschema.is_valid("x", {"pattern": "^y$"})
    assert not fastschema.is_valid({"a": 1}, {"patternProperties": {"^a": {}}, "additionalProperties": False})


def test_every_keyword_in_our_schemas_is_known():
    known = set(fastschema._KEYWORDS) | fastschema._ANNOTATIONS

    def walk(node: object, in_properties: bool = False) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if not in_properties:
                    assert key in known, key
                walk(value, in_properties=key in ("properties", "$defs") and not in_properties)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(MLPROJECT)
