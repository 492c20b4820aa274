"""``yamlguard.load`` builds, in one pass over the parser's events, exactly what PyYAML's
SafeLoader builds (values, types, shared aliases), hands everything else to PyYAML, and applies
the limits of ``yamlguard.check`` while it builds."""

from __future__ import annotations

import pytest
import yaml

from orchestra.core import yamlguard
from orchestra.core.errors import SpecError

DOCUMENTS = [
    "a: 1\nb: -2\nc: 0o17\nd: 0x1f\ne: 1_000\nf: 1.5e3\ng: .NaN\nh: -.inf\ni: yes\nj: Off\nk: ~\nl: null\nm:\n",
    "n: 2026-12-01\no: 2026-12-01T02:00:00+01:00\np: '2026-12-01'\nq: \"yes\"\nr: 0b101\ns: 190:20:30\n",
    "t: !!str 12\nu: ! 12\nv: !!int '12'\nw: !!binary aGk=\nx: !custom 1\n",
    "anchored: &s scalar\nagain: *s\ncoll: &c {a: [1, 2]}\nsame: *c\nlist: [*c, *s]\n",
    "deep: {a: {b: {c: {d: [[[[1]]]]}}}}\nflow: [a, {b: c}, [d]]\nblock:\n  - x\n  - y: z\n",
    "merge: &m {a: 1}\nuse:\n  <<: *m\n  b: 2\n",
    "eq: =\nbang: !\nlt: <\n'<<': quoted merge is a string\n",
    "? [a, b]\n: unhashable\n", "? {a: 1}\n: unhashable\n",
    "dup: 1\ndup: 2\nother: 3\n",
    "a: &x 1\nb: &x 2\nc: *x\n",
    "a: &x [1, *x]\n",
    "a: 1\n---\nb: 2\n", "---\na: 1\n...\n",
    "- a\n- b\n", "just text\n", "", "# comment\n", "a: [1, 2\n", "a: *nowhere\n",
    "1: int key\n1.5: float key\ntrue: bool key\n~: null key\n2026-01-01: date key\n",
    "s: \"tab\\there \\u00e9\"\nf: >\n  folded\n  text\nl: |\n  lit\n  eral\n",
]


def _same(a, b) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b or (a != a and b != b)  # NaN


@pytest.mark.parametrize("text", DOCUMENTS)
def test_same_as_safe_loader(text):
    try:
        expected = yaml.load(text, Loader=yaml.CSafeLoader)
    except yaml.YAMLError as exc:
        with pytest.raises(yaml.YAMLError) as info:
            yamlguard.load(text, "MLproject", SpecError)
        assert str(info.value) == str(exc)
        return
    got = yamlguard.load(text, "MLproject", SpecError)
    if isinstance(expected, dict) and isinstance(expected.get("a"), list) and expected["a"] and expected["a"][-1] is expected["a"]:
        assert got["a"][1] is got["a"]  # recursive: PyYAML builds it
        return
    assert _same(got, expected)


def test_aliases_share_the_value_as_pyyaml_does():
    got = yamlguard.load("coll: &c {a: [1]}\nsame: *c\n", "MLproject", SpecError)
    assert got["same"] is got["coll"]


@pytest.mark.parametrize("text, needle", [
    ("a: " + "[" * 101 + "]" * 101 + "\n", "nests deeper than 100"),
    ("a: &a x\nb: [" + ",".join(["*a"] * 1001) + "]\n", "more than 1000 aliases"),
    ("a: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8)), "expand to more than"),
    ("x: !!set {a}\na: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(  # a document PyYAML builds: checked first
        f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8)), "expand to more than"),
])
def test_limits_hold_while_building(text, needle):
    with pytest.raises(SpecError, match=needle) as info:
        yamlguard.load(text, "MLproject", SpecError)
    assert "\n" not in str(info.value)


def test_a_large_generated_file_loads_in_one_pass(monkeypatch):
    text = "entry_points:\n" + "".join(
        f"  s{i}:\n    parameters: {{p: {{type: string, default: \"1\"}}}}\n    command: \"echo {i}\"\n"
        f"    depends_on: [s{i - 1}]\n    retries: {i % 3}\n" for i in range(1, 5000))
    expected = yaml.load(text, Loader=yaml.CSafeLoader)

    def second_pass(*args, **kwargs):
        raise AssertionError("a plain document must not need check() and PyYAML's loader")

    monkeypatch.setattr(yamlguard, "check", second_pass)
    assert yamlguard.load(text, "MLproject", SpecError) == expected
