"""``{inputs.X}`` must name an upstream stage: checked near, far and across branches, in time
linear in practice (a 5,000-stage chain whose every stage reads the first one's outputs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestra.core.errors import SpecError
from orchestra.mlproject import graph as graphmod
from orchestra.mlproject.model import ProjectSpec, StageSpec


def _spec(stages: list[tuple[str, str, tuple[str, ...]]]) -> ProjectSpec:
    return ProjectSpec(name="p", root=Path("/nonexistent"), spec_file=Path("/nonexistent/MLproject"), entry_points={n: StageSpec(name=n, command=c, depends_on=d) for n, c, d in stages})


def test_far_and_near_ancestors_are_upstream():
    n = 5000
    stages = [("s0", "true", ())] + [
        (f"s{i}", f"cat {{inputs.s0}}/a {{inputs.s{max(0, i - 2)}}}/b {{inputs.s{i - 1}}}/c", (f"s{i - 1}",))
        for i in range(1, n)]
    graph = graphmod.build(_spec(stages))
    assert len(graph.order) == n


def test_a_sibling_is_not_upstream():
    stages = [("root", "true", ()), ("left", "true", ("root",)), ("right", "cat {inputs.left}", ("root",)),
              ("join", "cat {inputs.root} {inputs.left} {inputs.right}", ("left", "right"))]
    with pytest.raises(SpecError, match="not upstream of 'right'"):
        graphmod.build(_spec(stages))
    stages[2] = ("right", "cat {inputs.root}", ("root",))
    graphmod.build(_spec(stages))


def test_a_far_sibling_is_not_upstream_either():
    chain = [("a0", "true", ())] + [(f"a{i}", "true", (f"a{i - 1}",)) for i in range(1, 600)]
    other = [("b0", "true", ()), ("b1", "true", ("b0",))]
    bad = [("z", "cat {inputs.b0}", ("a599",))]
    with pytest.raises(SpecError, match="not upstream of 'z'"):
        graphmod.build(_spec(chain + other + bad))
    graphmod.build(_spec(chain + other + [("z", "cat {inputs.a0}", ("a599",))]))
