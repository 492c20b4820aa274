"""A reader for the plain subset of YAML that MLproject files are written in, line by line.

libyaml hands every token to Python as an event object: for a generated MLproject of 10,000
stages that alone is most of the time of planning it. ``read`` handles, with str methods and a
few regexes over lines, block mappings and sequences (a sequence's item may open a compact
mapping), plain and quoted one-line scalars, one-line flow sequences and mappings, and
comments, and builds exactly what ``yaml.SafeLoader`` builds (YAML 1.1 types: bools
``yes``/``off``, ints ``0o17``/``0x1f``/``1_000``, floats, nulls, timestamps). On anything else —
anchors, aliases, tags, multi-line or block scalars, escapes, complex keys, tabs, documents
markers, directives, deep nesting, a line it does not recognise — it raises ``NotPlain`` and the
caller reads the text with libyaml (``yamlguard.load``), which also explains malformed YAML.
"""

from __future__ import annotations

import re

from orchestra.core.yamlscalars import Scalars

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MAX_DEPTH = 50  # deeper documents go through libyaml, which applies the nesting limit


class NotPlain(Exception):
    """The text is outside the subset: read it with libyaml."""


# Outside the subset wherever it appears: a tab, a carriage return and the other line breaks YAML
# knows, a byte-order mark, control characters (which PyYAML refuses).
# (Compiled by re.search at the first text that is not ASCII: its ranges cost ~0.5 ms to compile.)
_UNUSUAL = "[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufeff\ufffe\uffff]"
_PRINTABLE_ASCII = bytes([10, *range(0x20, 0x7F)])
_KEY = re.compile(r"([A-Za-z0-9_][\w.\-/]*):(?: +|$)")
# Any line: its indentation, the key when it is ``name: value`` (else None), the rest.
_LINE = re.compile(r"^( *)(?:([A-Za-z0-9_][\w.\-/]*):(?: +|$))?(.*)$", re.M)
# A plain scalar may not start with an indicator ('-' only before a character that ends nothing).
_PLAIN_START = frozenset("-?:,[]{}#&*!|>'\"%@` ")
_COMMENT = re.compile(r"(?: +(?:#.*)?)?")
_FLOW_PLAIN = re.compile(r"(?:[^\s\-?:,\[\]{}#&*!|>'\"%@`]|-[^\s?:,\[\]{}#])[^?:,\[\]{}#]*")
_DOUBLE = re.compile(r'"([^"\\]*)"')
_SINGLE = re.compile(r"'((?:[^']|'')*)'")
_SPACES = re.compile(" *")
# A double-quoted value without escapes; a flow sequence of plain scalars that start with a letter,
# digit or underscore; either followed by a comment or nothing.
_SIMPLE_QUOTED = re.compile(r'"([^"\\]*)"(?: +(?:#.*)?)?')
_SIMPLE_SEQUENCE = re.compile(r'\[ *(\w[\w.\-/]*(?: *, *\w[\w.\-/]*)*) *\](?: +(?:#.*)?)?')
_NOT_SIMPLE = re.compile(r"[\[\]{}'\"#:?]")

def read(text: str) -> Any:
    """The value of ``text`` as ``yaml.safe_load`` builds it; ``NotPlain`` outside the subset."""
    if text.isascii():  # (deleting the allowed bytes is several times faster than the search)
        if text.encode("ascii").translate(None, _PRINTABLE_ASCII):
            raise NotPlain
    elif re.search(_UNUSUAL, text):
        raise NotPlain
    return _Reader(text).document()


class _Reader:
    """Block structure by indentation: a stack of open collections, each ``[indent, container,
    indentless]`` (``indentless``: a sequence written at its mapping key's own indent)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.scalar = Scalars(NotPlain)
        self.flows: dict[str, Any] = {}  # a flow collection's text → its value (returned as copies)

    def document(self) -> Any:
        stack: list[list[Any]] = []
        pending: tuple[Any, Any, int] | None = None  # (mapping, key, its indent): a value to come
        root = top = None  # top: the innermost open collection (stack[-1][1]), at top_indent
        top_indent = -1
        seen, scalar, value = self.scalar.seen, self.scalar, self.value
        quoted, sequence, flows = _SIMPLE_QUOTED.fullmatch, _SIMPLE_SEQUENCE.fullmatch, self.flows
        for line in _LINE.finditer(self.text):
            spaces, text, rest = line.groups()  # text: the key of the usual ``  name: value`` line
            indent = len(spaces)
            general = text is None
            if general:
                pass
            elif pending is None and indent == top_indent and type(top) is dict:
                pass  # a sibling of the key before
            elif pending is not None and indent > pending[2]:
                top, top_indent = {}, indent  # the first key of a nested mapping
                pending[0][pending[1]] = top
                pending = None
                stack.append([top_indent, top, False])
                if len(stack) > MAX_DEPTH:
                    raise NotPlain
            elif pending is None and indent < top_indent:
                while indent < stack[-1][0] or (indent == stack[-1][0] and stack[-1][2]):
                    stack.pop()  # back to a key of an enclosing mapping
                    if not stack:
                        raise NotPlain  # under the first line's indent
                top_indent, top = stack[-1][0], stack[-1][1]
                if indent != top_indent or type(top) is not dict:
                    raise NotPlain
            else:
                general = True
            if general:
                body = line.group()[indent:]
                if not body or body[0] == "#":
                    continue
                pending, root = self.structure(stack, pending, root, indent, body, text is not None)
                top_indent, top = stack[-1][0], stack[-1][1]
                if text is None or type(top) is not dict:
                    pending = self.entry(stack, body, top_indent, text is None)
                    top_indent, top = stack[-1][0], stack[-1][1]
                    continue
            name = seen[text] if text in seen else scalar(text)
            if not rest or rest[0] == "#":
                pending = (top, name, top_indent)
                continue
            first = rest[0]
            if first == '"' and rest[-1] == '"' and rest.count('"') == 2 and "\\" not in rest:
                top[name] = rest[1:-1]  # "text" (what _SIMPLE_QUOTED matches, without a comment)
                continue
            if first == "[" and rest[-1] == "]":
                inner = rest[1:-1]
                if inner.isascii() and inner.isidentifier():  # [name], the usual depends_on
                    top[name] = [seen[inner] if inner in seen else scalar(inner)]
                    continue
            if first in _PLAIN_START:
                # "text" and [a, b], the usual quoted and flow values, matched at once
                match = quoted(rest) if first == '"' else sequence(rest) if first == "[" else None
                if match is None and first == "{" and rest in flows:
                    top[name] = _clone(flows[rest])  # (a generated file repeats its flow mappings)
                elif match is None:
                    top[name] = value(rest)
                elif first == '"':
                    top[name] = match.group(1)
                else:
                    top[name] = [seen[item] if item in seen else scalar(item)
                                 for item in match.group(1).replace(" ", "").split(",")]
                continue
            cut = rest.find(" #")  # a plain scalar, inline: the common case
            plain = (rest if cut < 0 else rest[:cut]).rstrip(" ")
            if ": " in plain or plain[-1] == ":":
                raise NotPlain  # a mapping where a scalar was expected: PyYAML's error
            top[name] = seen[plain] if plain in seen else scalar(plain)
        if pending is not None:
            pending[0][pending[1]] = None
        return root

    def structure(self, stack: list[list[Any]], pending: tuple[Any, Any, int] | None, root: Any, indent: int,
                  body: str, is_key: bool) -> tuple[None, Any]:
        """Open and close collections for a line that is not a sibling key of the one before."""
        item = not is_key and body[0] == "-" and (len(body) == 1 or body[1] == " ")
        if pending is not None:
            mapping, name, at = pending
            if indent > at or (indent == at and item):
                child: Any = [] if item else {}
                mapping[name] = child
                stack.append([indent, child, indent == at])
                if len(stack) > MAX_DEPTH:
                    raise NotPlain
            else:
                mapping[name] = None
        elif not stack:
            if root is not None:
                raise NotPlain  # a second top-level node: PyYAML's error
            root = [] if item else {}
            stack.append([indent, root, False])
        top = stack[-1]
        while indent < top[0] or (indent == top[0] and top[2] and not item):
            stack.pop()
            if not stack:
                raise NotPlain  # under the first line's indent
            top = stack[-1]
        if indent != top[0]:
            raise NotPlain  # a continuation line, or an indentation PyYAML would refuse
        return None, root

    def entry(self, stack: list[list[Any]], body: str, indent: int, maybe_item: bool) -> tuple[Any, Any, int] | None:
        """One line's entry into the innermost collection; a mapping key without a value yet is
        returned as pending."""
        container = stack[-1][1]
        if maybe_item and body[0] == "-" and (len(body) == 1 or body[1] == " "):
            if type(container) is not list:
                raise NotPlain
            rest = body[1:].lstrip(" ")
            if not rest or rest[0] == "#":
                raise NotPlain  # an item whose value is on the next lines
            key = _KEY.match(rest)
            if key is None:
                container.append(self.value(rest))
                return None
            mapping: dict[Any, Any] = {}
            container.append(mapping)
            indent += len(body) - len(rest)
            stack.append([indent, mapping, False])
            if len(stack) > MAX_DEPTH:
                raise NotPlain
            return self.pair(mapping, key, rest, indent)
        if type(container) is not dict:
            raise NotPlain
        key = _KEY.match(body)
        if key is None:
            raise NotPlain  # a quoted or complex key, a scalar where a key belongs
        return self.pair(container, key, body, indent)

    def pair(self, mapping: dict[Any, Any], key: re.Match[str], body: str, indent: int) -> tuple[Any, Any, int] | None:
        name = self.scalar(key.group(1))
        rest = body[key.end():]
        if not rest or rest[0] == "#":
            return (mapping, name, indent)
        mapping[name] = self.value(rest)  # (a key here is a scalar: hashable)
        return None

    def value(self, rest: str) -> Any:
        """A scalar or flow collection that fills the rest of a line (a comment may follow)."""
        first = rest[0]
        if first in "[{":
            value = self.flows.get(rest)
            if value is None:
                value = self.flow(rest)
            return _clone(value)
        elif first == '"' or first == "'":
            value, end = _quoted(rest, 0)
        else:
            if first in _PLAIN_START and not (first == "-" and rest[1:2] not in ("", " ")):
                raise NotPlain  # an anchor, alias, tag, block scalar, directive...
            cut = rest.find(" #")
            plain = (rest if cut < 0 else rest[:cut]).rstrip(" ")
            if ": " in plain or plain[-1] == ":":
                raise NotPlain  # a mapping where a scalar was expected: PyYAML's error
            return self.scalar(plain)
        if _COMMENT.fullmatch(rest, end) is None:
            raise NotPlain
        return value

    def flow(self, rest: str) -> Any:
        """A flow collection (and its comment) that fills the rest of a line."""
        end = rest.find("]") if rest[0] == "[" else -1
        inner = rest[1:end]
        if end > 0 and not _NOT_SIMPLE.search(inner) and _COMMENT.fullmatch(rest, end + 1) is not None:
            # A sequence of plain scalars, the usual depends_on: [a, b]
            items = [item.strip(" ") for item in inner.split(",")]
            if items == [""]:
                return []
            for item in items:
                if not item or (item[0] in _PLAIN_START and not (item[0] == "-" and item[1:2] not in ("", " "))):
                    raise NotPlain
            return [self.scalar(item) for item in items]
        value, end = _flow(rest, 0, self.scalar, 0)
        if _COMMENT.fullmatch(rest, end) is None:
            raise NotPlain
        if len(self.flows) < 10_000:
            self.flows[rest] = value
        return value


def _clone(value: Any) -> Any:
    """A copy of a collection of scalars (PyYAML builds a new one for every node)."""
    if type(value) is dict:
        copy = value.copy()
        for key, item in copy.items():
            if type(item) in _COLLECTIONS:
                copy[key] = _clone(item)
        return copy
    if type(value) is list:
        return [_clone(item) if type(item) in _COLLECTIONS else item for item in value]
    return value


_COLLECTIONS = (dict, list)


def _quoted(text: str, pos: int) -> tuple[str, int]:
    if text[pos] == '"':
        match = _DOUBLE.match(text, pos)
        if match is None:
            raise NotPlain  # an escape, or a string that goes on past the line
        return match.group(1), match.end()
    match = _SINGLE.match(text, pos)
    if match is None:
        raise NotPlain
    return match.group(1).replace("''", "'"), match.end()


def _flow(text: str, pos: int, scalar: Any, depth: int) -> tuple[Any, int]:
    """A flow sequence or mapping starting at ``text[pos]``, and where it ends; its entries are
    scalars or flow collections, ``key: value`` pairs in a mapping."""
    if depth > MAX_DEPTH:
        raise NotPlain
    close = "]" if text[pos] == "[" else "}"
    result: Any = [] if close == "]" else {}
    pos = _SPACES.match(text, pos + 1).end()  # type: ignore[union-attr]
    if text[pos:pos + 1] == close:
        return result, pos + 1
    while True:
        item, pos = _flow_node(text, pos, scalar, depth)
        if close == "}":
            if text[pos:pos + 2] != ": ":
                raise NotPlain  # a key without a value, or ':' where PyYAML's and libyaml's readings differ
            pos = _SPACES.match(text, pos + 1).end()  # type: ignore[union-attr]
            if text[pos:pos + 1] in (",", "}", ""):
                raise NotPlain  # an empty value
            value, pos = _flow_node(text, pos, scalar, depth)
            try:
                result[item] = value
            except TypeError:
                raise NotPlain from None
        else:
            result.append(item)
        here = text[pos:pos + 1]
        if here == close:
            return result, pos + 1
        if here != ",":
            raise NotPlain  # unclosed on this line, or something else
        pos = _SPACES.match(text, pos + 1).end()  # type: ignore[union-attr]
        if text[pos:pos + 1] in (close, ",", ""):
            raise NotPlain  # a trailing or doubled comma


def _flow_node(text: str, pos: int, scalar: Any, depth: int) -> tuple[Any, int]:
    """A scalar or collection inside a flow collection, and the position after it and its spaces."""
    first = text[pos:pos + 1]
    if first == "[" or first == "{":
        value, pos = _flow(text, pos, scalar, depth + 1)
    elif first == '"' or first == "'":
        value, pos = _quoted(text, pos)
    else:
        match = _FLOW_PLAIN.match(text, pos)
        if match is None:
            raise NotPlain
        plain = match.group().rstrip(" ")
        value, pos = scalar(plain), pos + len(plain)
    return value, _SPACES.match(text, pos).end()  # type: ignore[union-attr]
