"""Limits on YAML read from projects and configuration, checked before anything is built.

A few hundred bytes of nested aliases expand to billions of nodes (the "billion laughs"), and
a deeply nested document exhausts the stack. ``check`` walks the parser's events once — nothing
is constructed — and refuses a document over 1 MiB, with more than 1,000 aliases, with aliases
that expand to more than 200,000 nodes, or nested deeper than 100 levels.
"""

from __future__ import annotations

from typing import Any

MAX_BYTES = 1024 * 1024
MAX_ALIASES = 1000
MAX_NODES = 200_000
MAX_DEPTH = 100


def check(text: str, where: str, error: type[Exception]) -> None:
    """Raise ``error(message, where=where)`` (one line) when ``text`` is over a limit.

    Malformed YAML is left for the caller's own parse to report."""
    import yaml

    size = len(text.encode("utf-8", errors="replace"))
    if size > MAX_BYTES:
        raise error(f"the YAML file is {size} bytes, over the limit of {MAX_BYTES} (1 MiB)", where=where)
    if not any(c in text for c in "&*[{") and text.count("\n") < MAX_DEPTH:
        return  # no anchors, aliases or flow collections, and too few lines to nest past the limit
    try:
        _walk(yaml.parse(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)), where, error)
    except yaml.YAMLError:
        return


def _walk(events: Any, where: str, error: type[Exception]) -> None:
    import yaml

    weights: dict[str, int] = {}  # anchor → the number of nodes it expands to
    stack: list[list[Any]] = []  # per open collection: [nodes so far, its anchor]
    aliases = expanded = 0  # expanded: the nodes aliases stand for (written-out nodes are bounded by the size)
    hint = "write the values out instead of nesting anchors and aliases"
    for event in events:
        if isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > MAX_ALIASES:
                raise error(f"the YAML uses more than {MAX_ALIASES} aliases", where=where, hint=hint)
            nodes = weights.get(event.anchor, 1)
            expanded += nodes
        elif isinstance(event, yaml.ScalarEvent):
            nodes = 1
            if event.anchor:
                weights[event.anchor] = 1
        elif isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            stack.append([1, event.anchor])
            if len(stack) > MAX_DEPTH:
                raise error(f"the YAML nests deeper than {MAX_DEPTH} levels", where=where)
            continue
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            nodes, anchor = stack.pop()
            if anchor:
                weights[anchor] = nodes
        else:
            continue
        if stack:
            stack[-1][0] += nodes
        if expanded > MAX_NODES:
            raise error(f"the YAML's aliases expand to more than {MAX_NODES} nodes", where=where, hint=hint)
