"""The YAML limits: size, aliases, expansion and depth refused with one line; ordinary YAML passes."""

from __future__ import annotations

import pytest

from orchestra.core import yamlguard
from orchestra.core.errors import SpecError


def _refused(text: str) -> str:
    with pytest.raises(SpecError) as info:
        yamlguard.check(text, "MLproject", SpecError)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_ordinary_documents_pass() -> None:
    yamlguard.check("a: &x {b: 1}\nc: *x\nd: [*x, *x]\n", "MLproject", SpecError)
    yamlguard.check("entry_points:\n  main: {command: 'true'}\n", "MLproject", SpecError)
    yamlguard.check("key: [unclosed\n", "MLproject", SpecError)  # malformed: the caller's parse reports it


def test_over_the_size_limit_is_refused_and_the_message_names_the_knob(monkeypatch) -> None:
    big = "a: b\n" + "#" * (16 * 1024 * 1024)  # the default limit: 16 MiB
    message = _refused(big)
    assert "over the limit of 16777216 (16 MiB)" in message and "ORCHESTRA_MAX_YAML_BYTES" in message
    monkeypatch.setenv("ORCHESTRA_MAX_YAML_BYTES", str(32 << 20))  # a generated project: raise it
    yamlguard.check(big, "MLproject", SpecError)
    assert yamlguard.load(big, "MLproject", SpecError) == {"a": "b"}
    monkeypatch.setenv("ORCHESTRA_MAX_YAML_BYTES", "1000")
    assert "over the limit of 1000" in _refused("a: " + "b" * 1000 + "\n")
    with pytest.raises(SpecError, match="ORCHESTRA_MAX_YAML_BYTES"):
        yamlguard.load("a: " + "b" * 1000 + "\n", "MLproject", SpecError)


def test_nested_aliases_that_expand_too_far_are_refused() -> None:
    bomb = "a: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(6))
    assert "expand to more than" in _refused(bomb)


def test_too_many_aliases_are_refused() -> None:
    text = "a: &a x\nb: [" + ",".join(["*a"] * 1001) + "]\n"
    assert "more than 1000 aliases" in _refused(text)


def test_too_deep_is_refused() -> None:
    assert "nests deeper than 100" in _refused("a: " + "[" * 101 + "]" * 101 + "\n")
    yamlguard.check("a: " + "[" * 99 + "]" * 99 + "\n", "MLproject", SpecError)
