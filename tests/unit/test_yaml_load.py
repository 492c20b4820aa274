"""The fast YAML construction builds exactly what PyYAML's SafeLoader builds, errors included."""

from __future__ import annotations

import pytest
import yaml

from orchestra.core.errors import SpecError
from orchestra.mlproject.load import _parse_yaml

DOCUMENTS = [
    "entry_points:\n  main: {command: 'python train.py {alpha}'}\n",
    "a: 1\nb: 1.5\nc: true\nd: null\ne: ~\nf:\ng: '1'\nh: 0x1f\ni: 1e3\nj: .inf\nk: 2026-12-01\nl: 2026-12-01 02:00:00Z\n",
    "list: [1, two, {three: 3}]\nnested: {a: {b: {c: [x, y]}}}\nempty_map: {}\nempty_list: []\n",
    "base: &base {type: float, default: 0.5}\nalpha: *base\nbeta: *base\n",
    "defaults: &d {retries: 1, timeout: 5}\ntrain:\n  <<: *d\n  command: go\n",
    "dup: 1\ndup: 2\n",
    "? [a, b]\n: unhashable key is an error\n",
    "set: !!set {a, b}\n",
    "pairs: !!omap [{a: 1}, {b: 2}]\n",
    "multi: line\n  continued\nfolded: >\n  one\n  two\nliteral: |\n  x\n  y\n",
    "'quoted key': \"v\\tw\"\n123: numeric key\ntrue: bool key\n",
    "",
    "# only a comment\n",
]


@pytest.mark.parametrize("text", DOCUMENTS)
def test_same_values_as_safe_loader(text):
    try:
        expected = yaml.load(text, Loader=yaml.CSafeLoader)
    except yaml.YAMLError:
        with pytest.raises(SpecError, match="malformed YAML"):
            _parse_yaml(text, "MLproject")
        return
    if not isinstance(expected, (dict, type(None))):
        with pytest.raises(SpecError, match="expected a mapping"):
            _parse_yaml(text, "MLproject")
        return
    got = _parse_yaml(text, "MLproject")
    assert got == (expected or {})
    assert [type(v) for v in got.values()] == [type(v) for v in (expected or {}).values()]


@pytest.mark.parametrize("text, needle", [
    ("a: [1, 2\n", "malformed YAML at line 2"),
    ("a: 1\n---\nb: 2\n", "malformed YAML"),
    ("- a\n- b\n", "expected a mapping at the top level"),
    ("a: *nowhere\n", "malformed YAML"),
])
def test_errors_name_the_problem(text, needle):
    with pytest.raises(SpecError, match=needle):
        _parse_yaml(text, "MLproject")


def test_recursive_anchor_falls_back_to_pyyaml():
    text = "a: &x [1, *x]\n"
    data = _parse_yaml(text, "MLproject")
    assert data["a"][0] == 1 and data["a"][1] is data["a"]
