"""Limits on YAML read from projects and configuration, checked before anything is built.

A few hundred bytes of nested aliases expand to billions of nodes (the "billion laughs"), and
a deeply nested document exhausts the stack. ``check`` walks the parser's events once — nothing
is constructed — and refuses a document over the size limit (``ORCHESTRA_MAX_YAML_BYTES``,
default 16 MiB), with more than 1,000 aliases, with aliases that expand to more than 200,000
nodes, or nested deeper than 100 levels. ``load`` applies the same limits while it builds the
values in that one pass over libyaml's events (no node graph, no second parse); a document in the
plain subset ``yamlfast`` reads (no anchors, aliases or tags, nested at most 50 levels) is under
all but the size limit by construction, checked first.
"""

from __future__ import annotations

from orchestra.core import settings, yamlfast
from orchestra.core.yamlscalars import Scalars

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MAX_ALIASES = 1000
MAX_NODES = 200_000
MAX_DEPTH = 100
SIZE_VARIABLE = "ORCHESTRA_MAX_YAML_BYTES"


def max_bytes() -> int:
    """The largest YAML file read (``ORCHESTRA_MAX_YAML_BYTES``)."""
    return settings.current().max_yaml_bytes


def _check_size(text: str, where: str, error: type[Exception]) -> None:
    limit = max_bytes()
    if len(text) * 4 <= limit:
        return  # at most 4 bytes a character: under the limit whatever the encoding
    size = len(text.encode("utf-8", errors="replace"))
    if size > limit:
        raise error(f"the YAML file is {size} bytes, over the limit of {limit}{_mib(limit)}", where=where,
                    hint=f"set {SIZE_VARIABLE} to a larger number of bytes to read it")


def _mib(count: int) -> str:
    return f" ({count >> 20} MiB)" if count % (1 << 20) == 0 else ""


def check(text: str, where: str, error: type[Exception]) -> None:
    """Raise ``error(message, where=where)`` (one line) when ``text`` is over a limit.

    Malformed YAML is left for the caller's own parse to report."""
    import yaml

    _check_size(text, where, error)
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
    for event in events:
        if isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > MAX_ALIASES:
                raise _too_many_aliases(where, error)
            nodes = weights.get(event.anchor, 1)
            expanded += nodes
        elif isinstance(event, yaml.ScalarEvent):
            nodes = 1
            if event.anchor:
                weights[event.anchor] = 1
        elif isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            stack.append([1, event.anchor])
            if len(stack) > MAX_DEPTH:
                raise _too_deep(where, error)
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
            raise _too_wide(where, error)


_HINT = "write the values out instead of nesting anchors and aliases"


def _too_many_aliases(where: str, error: type[Exception]) -> Exception:
    return error(f"the YAML uses more than {MAX_ALIASES} aliases", where=where, hint=_HINT)


def _too_wide(where: str, error: type[Exception]) -> Exception:
    return error(f"the YAML's aliases expand to more than {MAX_NODES} nodes", where=where, hint=_HINT)


def _too_deep(where: str, error: type[Exception]) -> Exception:
    return error(f"the YAML nests deeper than {MAX_DEPTH} levels", where=where)


def load(text: str, where: str, error: type[Exception]) -> Any:
    """The values of a one-document YAML text, exactly as PyYAML's SafeLoader builds them, within
    the limits of ``check`` (over one: ``error``, one line; malformed: ``yaml.YAMLError``).

    The plain subset MLproject files are written in is read by ``yamlfast`` without libyaml.
    Other plain trees (mappings, sequences, scalars, aliases of finished nodes) are built here from the
    parser's events in one pass: composing a node graph first costs a Python resolver call per
    scalar and most of the time of a large MLproject. Anything else (merge keys, explicit tags,
    recursive anchors, unhashable keys, several documents) goes through ``check`` and PyYAML's
    own loader, which also reports malformed YAML.
    """
    _check_size(text, where, error)
    try:
        return yamlfast.read(text)  # the plain subset, without an object per event
    except yamlfast.NotPlain:
        pass
    import yaml

    loader_class = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loader = loader_class(text)
    try:
        return _build(loader.get_event, where, error)
    except (_NotPlain, yaml.YAMLError):
        pass
    finally:
        loader.dispose()
    check(text, where, error)
    return yaml.load(text, Loader=loader_class)  # noqa: S506 - a SafeLoader


class _NotPlain(Exception):
    """The document needs PyYAML's full loader."""


_STR, _MAP, _SEQ = "tag:yaml.org,2002:str", "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"
_PLAIN_TAGS = {None, "!"}


def _build(next_event: Any, where: str, error: type[Exception]) -> Any:
    """One pass over the events: values built, limits counted as ``_walk`` counts them."""
    import yaml

    scalar_event, alias_event, end_events = yaml.ScalarEvent, yaml.AliasEvent, (yaml.MappingEndEvent, yaml.SequenceEndEvent)
    start_events, stream_end, document_start = (yaml.MappingStartEvent, yaml.SequenceStartEvent), yaml.StreamEndEvent, yaml.DocumentStartEvent
    scalars = Scalars(_NotPlain)
    built: dict[str, tuple[Any, int]] = {}  # anchor → its value and the number of nodes it stands for
    stack: list[list[Any]] = []  # per open collection: [container, nodes so far, anchor, pending key or _NO_KEY]
    documents = aliases = expanded = 0
    root = None
    while True:
        event = next_event()
        kind = type(event)
        if kind is scalar_event:
            if event.tag in _PLAIN_TAGS:
                value = scalars(event.value) if event.implicit[0] else event.value
            elif event.tag == _STR:
                value = event.value
            else:
                raise _NotPlain  # an explicit tag: !!binary, !!int "3", a custom one
            nodes, anchor = 1, event.anchor
        elif kind is alias_event:
            aliases += 1
            if aliases > MAX_ALIASES:
                raise _too_many_aliases(where, error)
            if event.anchor not in built:
                raise _NotPlain  # undefined, or recursive (inside its own anchor)
            value, nodes = built[event.anchor]
            anchor = None
            expanded += nodes
            if expanded > MAX_NODES:
                raise _too_wide(where, error)
        elif kind in start_events:
            if event.tag not in _PLAIN_TAGS and event.tag != (_MAP if kind is yaml.MappingStartEvent else _SEQ):
                raise _NotPlain  # !!set, !!omap, !!pairs, a custom tag
            stack.append([{} if kind is yaml.MappingStartEvent else [], 1, event.anchor, _NO_KEY])
            if len(stack) > MAX_DEPTH:
                raise _too_deep(where, error)
            continue
        elif kind in end_events:
            value, nodes, anchor, _key = stack.pop()
        elif kind is document_start:
            documents += 1
            if documents > 1:
                raise _NotPlain  # several documents: PyYAML's error
            continue
        elif kind is stream_end:
            return root
        else:
            continue
        if anchor is not None:
            if anchor in built:
                raise _NotPlain  # a duplicate anchor: PyYAML's error
            built[anchor] = (value, nodes)
        if not stack:
            root = value
            continue
        frame = stack[-1]
        frame[1] += nodes
        container = frame[0]
        if type(container) is list:
            container.append(value)
        elif frame[3] is _NO_KEY:
            frame[3] = value
        else:
            try:
                container[frame[3]] = value
            except TypeError:  # an unhashable key: PyYAML's error
                raise _NotPlain from None
            frame[3] = _NO_KEY


_NO_KEY = object()
