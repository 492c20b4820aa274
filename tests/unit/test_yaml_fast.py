"""``yamlfast.read`` builds exactly what PyYAML's SafeLoader (and CSafeLoader) builds, or refuses
(``NotPlain``) so that libyaml reads the text: never a different value, never a value where
PyYAML reports an error. Hand-written tricky documents, then generated ones (the subset, and the
subset mutated character by character)."""

from __future__ import annotations

import random
import re
import subprocess
import sys

import pytest
import yaml

from orchestra.core import yamlfast, yamlguard, yamlscalars
from orchestra.core.errors import SpecError
from tests.unit.test_yaml_onepass import _same  # (one definition of "the same value, NaN included")

LOADERS = (yaml.SafeLoader, yaml.CSafeLoader)

IN_SUBSET = [
    "a: 1\nb: -2\nc: 0o17\nd: 0x1f\ne: 1_000\nf: 1.5e3\ng: .NaN\nh: -.inf\ni: yes\nj: Off\nk: ~\nl: null\nm:\n",
    "n: 2026-12-01\no: 2026-12-01T02:00:00+01:00\np: '2026-12-01'\nq: \"yes\"\nr: 0b101\ns: 190:20:30\nt: 017\n",
    "u: 1.\nv: .5\nw: +12\nx: 0\ny: 00\nz: 1:30.5\naa: 0x_1F\nbb: 1e3\ncc: y\ndd: n\nee: NULL\nff: Null\n",
    "deep: {a: {b: {c: {d: [[[[1]]]]}}}}\nflow: [a, {b: c}, [d]]\nblock:\n  - x\n  - y: z\n",
    "1: int key\n1.5: float key\ntrue: bool key\nnull: null key\n2026-01-01: date key\non: 2\n",
    "dup: 1\ndup: 2\nother: 3\n", "1: a\ntrue: b\n1.0: c\n", "", "# only a comment\n", "\n\n",
    "entry_points:\n  main:\n    parameters: {p: {type: string, default: \"1\"}}\n"
    "    command: \"cat {inputs.a}/x > {outputs}/y && echo 'p={p}' >> {outputs}/y\"\n    depends_on: [a, b]\n",
    "a:\n- x\n- y\nb:\n  - z\nc: 3\n", "- a\n- b: 1\n  c: 2\n- [x]\n- {y: z}\n", "-   a: 1\n    b: 2\n-  x\n",
    "a: b # a comment\nc: 'q # not a comment' # one\nd: e#f\ne: \"x\"   \nf: [a, b]  # c\n",
    "s: 'it''s'\nt: \"\"\nu: ''\nv: []\nw: {}\nx: [ ]\ny: { }\nz: [a b, c  d]\n",
    "  indented: 1\n  root: 2\n", "a:\n  b:\n    c:\n      d: 1\n  e: 2\nf: 3\n",
    "k: -x\nl: --- not a marker\nm: a:b\nn: a,b]\no: x!y&z*\np: é ü 日本\nq: http://x/y?z=1\n",
    "a: [-1, +2, .5, yes, ~, null, 0x1f, 2026-01-01]\nb: {x: 1, 'y': \"2\", z: [a]}\n",
    "a:\n- b:\n  - c\n", "- a:\n  - x\n  - y\n- b\n", "key: {a: [b, {c: d}], e: f}\n",
]

OUTSIDE_OR_MALFORMED = [
    "anchored: &s scalar\nagain: *s\n", "t: !!str 12\n", "u: ! 12\n", "merge: &m {a: 1}\nuse:\n  <<: *m\n",
    "eq: =\n", "'<<': quoted key\n", "? [a, b]\n: x\n", "a: 1\n---\nb: 2\n", "---\na: 1\n...\n",
    "just text\n", "a: [1, 2\n", "a: *nowhere\n", "a: b\n  c\n", "a: b\n  c: d\n", "a: b: c\n",
    "s: \"tab\\there\"\nf: >\n  folded\nl: |\n  lit\n", "a:\n  b: 1\n c: 2\n", "a: 1\n- b\n",
    "a:\n  - b\n  c: d\n", "a:\tb\n", "a: b\r\nc: d\r\n", "\ufeffa: 1\n", "a: [b,]\n", "a: [b,,c]\n",
    "a: {b}\n", "a: {b: }\n", "a: {b:c}\n", "a: [b: c]\n", "a: [b #c]\n", "a: 'x'y\n", "a: \"x\n  y\"\n",
    "a: -\n", "a: - b\n", "-\n  a: 1\n", "a b: c\n", "%YAML 1.1\n---\na: 1\n", "a: @x\n", "a: `x\n",
    "a: x\nb\n", "a:\n\n  # c\n  b: 1\n   c: 2\n", "- a\nb: 1\n", "a: {b: [c, d}, e]\n", "a: [x]]\n",
    "a: 0b_\n", "- - x\n", "a: \x07\n", "a: b\x85c\n", "a: [a\u2028b]\n", "a: '\n", "a: \"\\\"\"\n",
]


def _compare(text: str) -> bool:
    """Whether the fast reader read ``text``; fails the test when it read it differently."""
    try:
        got = yamlfast.read(text)
    except yamlfast.NotPlain:
        return False
    for loader in LOADERS:
        try:
            expected = yaml.load(text, Loader=loader)
        except Exception as exc:  # noqa: BLE001 - PyYAML refuses it: so must the fast reader
            pytest.fail(f"read {text!r} as {got!r}, {loader.__name__} refuses it: {exc}")
        assert _same(got, expected), f"{text!r}: {got!r} != {loader.__name__}'s {expected!r}"
    return True


@pytest.mark.parametrize("text", IN_SUBSET)
def test_the_subset_reads_as_safe_loader_reads_it(text):
    assert _compare(text), f"{text!r} is in the subset but was refused"


@pytest.mark.parametrize("text", OUTSIDE_OR_MALFORMED)
def test_anything_else_goes_to_libyaml(text):
    assert not _compare(text)
    try:
        expected = yaml.load(text, Loader=yaml.CSafeLoader)
    except yaml.YAMLError as exc:
        with pytest.raises(yaml.YAMLError) as info:
            yamlguard.load(text, "MLproject", SpecError)
        assert str(info.value) == str(exc)  # the message, line and column of libyaml
        return
    except ValueError:
        return  # (``0b_``: PyYAML's own ValueError)
    assert _same(yamlguard.load(text, "MLproject", SpecError), expected)


def test_collections_are_never_shared():
    got = yamlfast.read("a: {p: {type: string}}\nb: {p: {type: string}}\nc: [x]\nd: [x]\n")
    assert got["a"] == got["b"] and got["a"] is not got["b"] and got["a"]["p"] is not got["b"]["p"]
    assert got["c"] is not got["d"]


def test_the_resolvers_are_pyyaml_s():
    theirs = {char: [(tag, (pattern.pattern, pattern.flags & re.X)) for tag, pattern in resolvers]
              for char, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
              if char not in ("", "!", "&", "*")}  # no plain scalar is empty or starts with these
    ours = {char: [(tag, (pattern, flags & re.X)) for tag, (pattern, flags) in resolvers]
            for char, resolvers in yamlscalars.RESOLVERS.items()}
    assert ours == theirs


def test_numbers_are_built_as_pyyaml_builds_them():
    """Ints and floats are built here (PyYAML is imported only for dates): every plain scalar
    PyYAML types as a number, from a generator of digits, signs, underscores and the like."""
    rng = random.Random(7)
    pieces = ["0", "1", "7", "9", "_", "-", "+", ".", ":", "x", "b", "e", "E", "a", "f", "inf", "nan", "5"]
    texts = {"".join(rng.choice(pieces) for _ in range(rng.randrange(1, 7))) for _ in range(20000)}
    texts |= {".inf", "-.Inf", "+.INF", ".NaN", "0", "-0", "+0", "0b1_0", "-0x_1f", "017", "-017", "1:30", "-1:30:59.5",
              "190:20:30", "1_000", "1.5e+3", "6.8523015e+5", "685.230_15e+03", "0.", "-0.0", "00"}
    scalars, constructor = yamlscalars.Scalars(yamlfast.NotPlain), yaml.constructor.SafeConstructor()
    checked = 0
    for text in sorted(texts):
        tag = yaml.SafeLoader(text).resolve(yaml.ScalarNode, text, (True, False))
        if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float"):
            continue
        try:
            expected = constructor.construct_object(yaml.ScalarNode(tag, text))
        except ValueError:
            with pytest.raises(yamlfast.NotPlain):
                scalars(text)
            continue
        got = scalars(text)
        assert type(got) is type(expected) and (got == expected or (got != got and expected != expected)), text
        checked += 1
    assert checked > 300


# --- generated documents ------------------------------------------------------------------

SCALARS = ["a", "x y", "yes", "No", "ON", "off", "true", "FALSE", "y", "n", "~", "null", "Null", "0", "-1", "+7",
           "017", "0o17", "0x1F", "0b101", "1_000", "1.5", "-.5", "1e3", "1.0e+3", ".inf", "-.Inf", ".NaN",
           "190:20:30", "1:30.5", "2026-12-01", "2001-12-14t21:59:43.10-05:00", "2001-12-14 21:59:43.10 -5",
           "a#b", "-x", "a:b", "é", "s0", "echo {p}", "a/b.c", "<", "=x", "x=", "0.", "._", "1__2", "0x", "+"]
FLOW_SCALARS = [text for text in SCALARS if not set(text) & set("#:{")]  # (refused there: libyaml reads them)
KEYS = ["a", "b", "name", "1", "on", "null", "2026-01-01", "x.y", "s_1", "k-2", "0x1f", "1.5", "yes", "a/b"]


def _scalar(rng: random.Random, flow: bool) -> str:
    text = rng.choice(SCALARS)
    style = rng.random()
    if flow and text not in FLOW_SCALARS:
        style = 0
    if style < 0.15:
        return "'" + text.replace("'", "''") + "'"
    if style < 0.3:
        return '"' + text + '"'
    if flow and text in ("x y",) and rng.random() < 0.5:
        return "x   y"
    return text


def _flow(rng: random.Random, depth: int) -> str:
    if depth > 2 or rng.random() < 0.5:
        return _scalar(rng, True)
    items = [_flow(rng, depth + 1) for _ in range(rng.randrange(4))]
    if rng.random() < 0.5:
        return "[" + ", ".join(items) + "]"
    return "{" + ", ".join(f"{rng.choice(KEYS)}: {item}" for item in items) + "}"


def _value(rng: random.Random) -> str:
    text = _flow(rng, 0) if rng.random() < 0.6 else _scalar(rng, False)
    if rng.random() < 0.2:
        text += rng.choice(["  # note", " #", "   "])
    return text


def _block(rng: random.Random, indent: int, depth: int, lines: list[str]) -> None:
    pad = " " * indent
    if depth < 4 and rng.random() < 0.3:  # a sequence
        for _ in range(rng.randrange(1, 4)):
            if depth < 3 and rng.random() < 0.3:
                key, value = rng.choice(KEYS), _value(rng)
                lines.append(f"{pad}- {key}: {value}")
                if rng.random() < 0.5:
                    lines.append(f"{pad}  {rng.choice(KEYS)}: {_value(rng)}")
            else:
                lines.append(f"{pad}- {_value(rng)}")
        return
    for _ in range(rng.randrange(1, 5)):
        key = rng.choice(KEYS)
        roll = rng.random()
        if depth < 4 and roll < 0.35:
            lines.append(f"{pad}{key}:")
            if rng.random() < 0.2:
                lines.append(f"{pad}  # a comment line")
            step = rng.choice([2, 4]) if rng.random() < 0.8 else 0
            if step == 0:  # a sequence at its key's indent
                lines += [f"{pad}- {_value(rng)}" for _ in range(rng.randrange(1, 3))]
            else:
                _block(rng, indent + step, depth + 1, lines)
        elif roll < 0.4:
            lines.append(f"{pad}{key}:")
        else:
            lines.append(f"{pad}{key}: {_value(rng)}")
        if rng.random() < 0.1:
            lines.append("")


def _document(rng: random.Random) -> str:
    lines: list[str] = []
    _block(rng, 0, 0, lines)
    return "\n".join(lines) + "\n"


def test_generated_documents_read_as_safe_loader_reads_them():
    rng = random.Random(20261205)
    read = 0
    for _ in range(1500):
        read += _compare(_document(rng))
    assert read == 1500  # every generated document is in the subset: none needed libyaml


MUTATIONS = [" ", "  ", "-", ":", "#", "'", '"', "[", "]", "{", "}", ",", "\n", "&", "*", "!", "|", ">", "?", "%",
             "\t", "x", "- ", ": ", " #"]


def test_mutated_documents_never_read_differently():
    rng = random.Random(5)
    for _ in range(3000):
        text = _document(rng)
        for _ in range(rng.randrange(1, 3)):
            at, roll, lines = rng.randrange(len(text) + 1), rng.random(), text.split("\n")
            line = rng.randrange(len(lines))
            if roll < 0.3:
                text = text[:at] + text[at + 1:]
            elif roll < 0.4:  # a line twice
                text = "\n".join(lines[:line] + [lines[line]] + lines[line:])
            elif roll < 0.5:  # a line indented otherwise
                lines[line] = " " * rng.randrange(6) + lines[line].lstrip(" ")
                text = "\n".join(lines)
            else:
                text = text[:at] + rng.choice(MUTATIONS) + text[at:]
        _compare(text)


def test_a_generated_mlproject_needs_no_pyyaml(tmp_path):
    text = "name: big\nentry_points:\n  s0:\n    command: \"true\"\n" + "".join(
        f"  s{i}:\n    parameters: {{p: {{type: string, default: \"1\"}}}}\n"
        f"    command: \"cat {{inputs.s{i - 1}}}/me.txt > {{outputs}}/me.txt\"\n    depends_on: [s{i - 1}]\n"
        f"    retries: {i % 3}\n    timeout: 1.5e+3\n"  # (numbers are built without PyYAML too)
        for i in range(1, 300))
    (tmp_path / "MLproject").write_text(text)
    code = ("import sys; from orchestra.mlproject import load; spec = load.load(sys.argv[1]); "
            "print(len(spec.entry_points), 'yaml' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, "ORCHESTRA_HOME": str(tmp_path / "home")}).stdout
    assert out.split() == ["300", "False"]


@pytest.mark.parametrize("text", [
    "".join(f"{'  ' * i}k{i}:\n" for i in range(101)) + "  " * 101 + "x: 1\n",  # block mappings
    "a: " + "[" * 101 + "]" * 101 + "\n",  # flow sequences
])
def test_deep_documents_go_to_libyaml_and_its_depth_limit(text):
    with pytest.raises(yamlfast.NotPlain):
        yamlfast.read(text)
    with pytest.raises(SpecError, match="nests deeper than 100"):
        yamlguard.load(text, "MLproject", SpecError)


def test_the_size_limit_holds_before_the_fast_reader(monkeypatch):
    monkeypatch.setenv("ORCHESTRA_MAX_YAML_BYTES", "1000")
    text = "a: 1\n" * 300  # in the subset, 1,500 bytes
    with pytest.raises(SpecError, match="over the limit of 1000"):
        yamlguard.load(text, "MLproject", SpecError)
