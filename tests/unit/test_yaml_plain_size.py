"""The alias limit counts what aliases stand for: a large document written out in full (a
10,000-stage pipeline, ~300,000 nodes, no alias) is not mistaken for an alias bomb."""

from __future__ import annotations

import pytest

from orchestra.core import yamlguard
from orchestra.core.errors import SpecError


def test_a_large_plain_document_passes():
    text = "entry_points:\n" + "".join(
        f"  s{i}: {{parameters: {{p: {{type: string, default: '1'}}}}, command: 'true', depends_on: [s{i - 1}]}}\n"
        for i in range(1, 10_000))
    assert len(text) < yamlguard.max_bytes()
    yamlguard.check(text, "MLproject", SpecError)


def test_an_alias_bomb_still_does_not():
    bomb = "a: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8))
    with pytest.raises(SpecError, match="expand to more than"):
        yamlguard.check(bomb, "MLproject", SpecError)
