"""The stage DAG: build it from a ProjectSpec, select targets with their ancestors, render it.

The graph is a frozen value over plain tuples and mappings (stdlib only): building and walking
10,000 stages takes milliseconds and a run never pays networkx's import (~140 ms). networkx is
used where its algorithms earn their import: ``to_networkx()`` for rendering and analysis.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from orchestra.core.errors import SpecError
from orchestra.mlproject.entry import input_refs
from orchestra.mlproject.model import ProjectSpec, StageSpec


@dataclass(frozen=True, slots=True)
class StageGraph:
    """Stages and their edges. ``order`` is a topological order (file order breaks ties)."""

    stages: Mapping[str, StageSpec]
    parents: Mapping[str, tuple[str, ...]]
    children: Mapping[str, tuple[str, ...]]
    order: tuple[str, ...]

    def ancestors(self, name: str, limit: int | None = None) -> set[str]:
        """The stages upstream of ``name``; with ``limit``, the walk stops once it found more."""
        seen: set[str] = set()
        stack = list(self.parents[name])
        while stack:
            node = stack.pop()
            if node not in seen:
                seen.add(node)
                if limit is not None and len(seen) > limit:
                    break
                stack.extend(self.parents[node])
        return seen

    def descendants(self, name: str) -> set[str]:
        seen: set[str] = set()
        stack = list(self.children[name])
        while stack:
            node = stack.pop()
            if node not in seen:
                seen.add(node)
                stack.extend(self.children[node])
        return seen

    def subgraph(self, names: Iterable[str]) -> "StageGraph":
        if names is self.order:
            return self  # (what ``select`` returns when every stage is a target)
        keep = set(names)
        if len(keep) == len(self.order) and all(name in self.stages for name in keep):
            return self  # every stage (a chain's last stage selects them all): nothing to drop
        return StageGraph(
            stages={n: s for n, s in self.stages.items() if n in keep},
            parents={n: tuple(p for p in self.parents[n] if p in keep) for n in self.order if n in keep},
            children={n: tuple(c for c in self.children[n] if c in keep) for n in self.order if n in keep},
            order=tuple(n for n in self.order if n in keep),
        )

    def to_networkx(self):  # -> networkx.DiGraph
        import networkx as nx

        graph = nx.DiGraph()
        for name in self.order:
            graph.add_node(name, spec=self.stages[name])
        for name, parents in self.parents.items():
            for parent in parents:
                graph.add_edge(parent, name)
        return graph


def build(spec: ProjectSpec, extra: Iterable[StageSpec] = ()) -> StageGraph:
    """Build the graph of all entry points (plus implicit ones in ``extra``).

    Raises:
        SpecError: a cycle (spelled out) or an ``{inputs.X}`` whose X is not an ancestor.
    """
    stages: dict[str, StageSpec] = dict(spec.entry_points)
    for stage in extra:
        stages.setdefault(stage.name, stage)
    parents = {name: stage.depends_on for name, stage in stages.items()}
    children: dict[str, list[str]] = {name: [] for name in stages}
    for name, deps in parents.items():
        for dep in deps:
            children[dep].append(name)
    order = _topological_order(stages, parents, spec.display_file)
    graph = StageGraph(stages=stages, parents=parents,
                       children={n: tuple(c) for n, c in children.items()}, order=order)
    _check_inputs(graph, spec.display_file)
    return graph


def _topological_order(stages: Mapping[str, StageSpec], parents: Mapping[str, tuple[str, ...]], where: str) -> tuple[str, ...]:
    # Iterative DFS post-order: ancestors before descendants, file order among equals; the grey
    # set finds cycles and the stack spells the loop out.
    index = {name: i for i, name in enumerate(stages)}
    if _in_file_order(index, parents):
        return tuple(stages)  # what the walk below returns then, without walking
    order: list[str] = []
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    for root in stages:
        if state.get(root):
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        path: list[str] = [root]
        state[root] = 1
        while stack:
            node, i = stack[-1]
            deps = parents[node]
            if len(deps) > 1:
                deps = sorted(deps, key=index.__getitem__)
            if i < len(deps):
                stack[-1] = (node, i + 1)
                dep = deps[i]
                mark = state.get(dep)
                if mark == 1:
                    loop = path[path.index(dep):] + [dep]
                    loop.reverse()  # print in execution direction: a → b → a
                    raise SpecError(f"dependency cycle: {' → '.join(loop)}",
                                    where=f"{where}: entry_points.{node}.depends_on",
                                    hint="remove one of these depends_on edges")
                if mark is None:
                    state[dep] = 1
                    stack.append((dep, 0))
                    path.append(dep)
            else:
                stack.pop()
                path.pop()
                state[node] = 2
                order.append(node)
    return tuple(order)


def _in_file_order(index: Mapping[str, int], parents: Mapping[str, tuple[str, ...]]) -> bool:
    """Whether every stage comes after all its parents in the file (a generated file's usual
    order): the post-order walk then visits the stages in file order."""
    count = len(index)
    for name, deps in parents.items():
        at = index[name]
        for dep in deps:
            if index.get(dep, count) >= at:
                return False
    return True


def _is_ancestor(graph: StageGraph, other: str, name: str, rank: Mapping[str, int],
                 below: dict[str, set[str]]) -> bool:
    """Whether ``other`` is upstream of ``name``: a walk up from ``name`` that skips every stage
    ordered before ``other`` (none of those can be downstream of it) — a parent is one step, a
    chain's far reference as many as stages between; past 256 steps, the descendants of
    ``other``, computed once (``below``) for every stage that refers to it."""
    if other in graph.parents[name]:
        return True
    floor = rank.get(other)
    if floor is None:
        return False
    if other in below:
        return name in below[other]
    seen: set[str] = set()
    stack = [p for p in graph.parents[name] if rank[p] > floor]
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        if len(seen) > 256:
            below[other] = graph.descendants(other)
            return name in below[other]
        for parent in graph.parents[node]:
            if parent == other:
                return True
            if rank[parent] > floor:
                stack.append(parent)
    return False


def _check_inputs(graph: StageGraph, where: str) -> None:
    rank = {name: i for i, name in enumerate(graph.order)}
    below: dict[str, set[str]] = {}
    for name, stage in graph.stages.items():
        if stage.implicit or stage.problem is not None or "{inputs." not in stage.command:
            continue
        needed = input_refs(stage.command, where)
        if not needed:
            continue
        for other in needed:
            if not _is_ancestor(graph, other, name, rank, below):
                known = other in graph.stages
                raise SpecError(
                    f"{{inputs.{other}}} refers to " + (f"stage '{other}', which is not upstream of '{name}'" if known
                                                        else f"unknown stage '{other}'"),
                    where=f"{where}: entry_points.{name}.command",
                    hint=f"add '{other}' to entry_points.{name}.depends_on" if known else f"stages: {', '.join(graph.stages)}",
                )


def check_runnable(graph: StageGraph) -> None:
    """Raise the problem of the first stage that cannot run (MLflow fails on it only when it runs it,
    so an entry point without a command is fine as long as it is not selected)."""
    for name in graph.order:
        problem = graph.stages[name].problem
        if problem is not None:
            raise problem.error()


def select(graph: StageGraph, targets: Iterable[str]) -> tuple[str, ...]:
    """The targets and all their ancestors, in topological order."""
    stack = list(targets)
    if len(stack) == len(graph.order) and graph.stages.keys() == set(stack):
        return graph.order  # every stage (a pipeline's default targets)
    keep: set[str] = set()
    while stack:  # one walk for all targets: linear in the graph, however many targets
        node = stack.pop()
        if node not in keep:
            keep.add(node)
            stack.extend(graph.parents[node])
    return tuple(name for name in graph.order if name in keep)


def render(graph: StageGraph, fmt: str = "ascii") -> str:
    """Render as ``ascii`` (layers), ``dot`` (Graphviz) or ``mermaid``."""
    if fmt == "dot":
        lines = ["digraph pipeline {", "  rankdir=LR;"]
        lines += [f'  "{n}";' for n in graph.order]
        lines += [f'  "{p}" -> "{n}";' for n in graph.order for p in graph.parents[n]]
        return "\n".join(lines + ["}"])
    if fmt == "mermaid":
        ids = {n: f"s{i}" for i, n in enumerate(graph.order)}
        lines = ["flowchart LR"]
        lines += [f'  {ids[n]}["{n}"]' for n in graph.order]
        lines += [f"  {ids[p]} --> {ids[n]}" for n in graph.order for p in graph.parents[n]]
        return "\n".join(lines)
    import networkx as nx

    lines = []
    for depth, layer in enumerate(nx.topological_generations(graph.to_networkx())):
        for name in sorted(layer, key=graph.order.index):
            deps = graph.parents[name]
            arrow = f"  ← {', '.join(deps)}" if deps else ""
            lines.append(f"{'  ' * depth}{'└─ ' if depth else ''}{name}{arrow}")
    return "\n".join(lines)
