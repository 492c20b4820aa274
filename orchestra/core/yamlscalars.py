"""Plain YAML scalars typed exactly as PyYAML's SafeLoader types them (YAML 1.1), for the line
reader (``yamlfast``): its implicit resolvers' patterns, and its constructors for bools, nulls,
ints and floats written out here (dates are built by PyYAML's own, imported only for them).
Tests check the patterns are PyYAML's and the constructors give what PyYAML's give."""

from __future__ import annotations

import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# PyYAML's implicit resolvers (yaml/resolver.py), in its order, by the first character they apply
# to; tests check they are PyYAML's own.
_BOOL = ("tag:yaml.org,2002:bool", (r'''^(?:yes|Yes|YES|no|No|NO
                    |true|True|TRUE|false|False|FALSE
                    |on|On|ON|off|Off|OFF)$''', re.X), "yYnNtTfFoO")
_FLOAT = ("tag:yaml.org,2002:float", (r'''^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
                    |\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?
                    |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
                    |[-+]?\.(?:inf|Inf|INF)
                    |\.(?:nan|NaN|NAN))$''', re.X), "-+0123456789.")
_INT = ("tag:yaml.org,2002:int", (r'''^(?:[-+]?0b[0-1_]+
                    |[-+]?0[0-7_]+
                    |[-+]?(?:0|[1-9][0-9_]*)
                    |[-+]?0x[0-9a-fA-F_]+
                    |[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$''', re.X), "-+0123456789")
_MERGE = ("tag:yaml.org,2002:merge", (r'^(?:<<)$', 0), "<")
_NULL = ("tag:yaml.org,2002:null", (r'''^(?: ~
                    |null|Null|NULL
                    | )$''', re.X), "~nN")
_TIMESTAMP = ("tag:yaml.org,2002:timestamp", (r'''^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]
                    |[0-9][0-9][0-9][0-9] -[0-9][0-9]? -[0-9][0-9]?
                     (?:[Tt]|[ \t]+)[0-9][0-9]?
                     :[0-9][0-9] :[0-9][0-9] (?:\.[0-9]*)?
                     (?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$''', re.X), "0123456789")
_VALUE = ("tag:yaml.org,2002:value", (r'^(?:=)$', 0), "=")
# (compiled on first use, by ``re``'s own cache: importing this module compiles none of them)
RESOLVERS: dict[str, list[tuple[str, tuple[str, int]]]] = {}
for _tag, _pattern, _first in (_BOOL, _FLOAT, _INT, _MERGE, _NULL, _TIMESTAMP, _VALUE):
    for _char in _first:
        RESOLVERS.setdefault(_char, []).append((_tag, _pattern))
_EMPTY = [(_NULL[0], _NULL[1])]  # an empty plain scalar: PyYAML's resolver lists "" for null only
_BOOLS = {"yes": True, "no": False, "true": True, "false": False, "on": True, "off": False}


class Scalars:
    """Plain scalars typed as SafeLoader types them, remembered by text (a generated file repeats
    the same few values); ``refused`` is raised for a merge (``<<``) or value (``=``) key, and for
    what PyYAML's constructor itself fails on (``0b_``)."""

    def __init__(self, refused: type[Exception]) -> None:
        self.seen: dict[str, Any] = {}
        self.refused = refused
        self.constructor: Any = None

    def __call__(self, text: str) -> Any:
        try:
            return self.seen[text]
        except KeyError:
            pass
        value: Any = text
        for tag, (pattern, flags) in (RESOLVERS.get(text[0], ()) if text else _EMPTY):
            if re.match(pattern, text, flags):
                value = self._construct(tag, text)
                break
        self.seen[text] = value
        return value

    def _construct(self, tag: str, text: str) -> Any:
        if tag == _BOOL[0]:
            return _BOOLS[text.lower()]
        if tag == _NULL[0]:
            return None
        if tag in (_MERGE[0], _VALUE[0]):
            raise self.refused  # a merge key (<<), a value key (=)
        try:
            if tag == _INT[0]:
                return construct_int(text)
            if tag == _FLOAT[0]:
                return construct_float(text)
        except ValueError:  # (``0b_``: PyYAML's own ValueError)
            raise self.refused from None
        return self._timestamp(tag, text)

    def _timestamp(self, tag: str, text: str) -> Any:
        if self.constructor is None:
            import yaml
            from yaml.constructor import SafeConstructor

            self.node, self.constructor = yaml.ScalarNode, SafeConstructor()
        try:
            return self.constructor.construct_object(self.node(tag, text))
        except Exception:  # noqa: BLE001 - whatever PyYAML does, it does it
            raise self.refused from None




def construct_int(text: str) -> int:
    """PyYAML's ``construct_yaml_int`` (``0b``, ``0x``, a leading ``0`` for octal, ``:`` for base 60)."""
    value = text.replace("_", "")
    sign = -1 if value[0] == "-" else 1
    if value[0] in "+-":
        value = value[1:]
    if value == "0":
        return 0
    if value.startswith("0b"):
        return sign * int(value[2:], 2)
    if value.startswith("0x"):
        return sign * int(value[2:], 16)
    if value[0] == "0":
        return sign * int(value, 8)
    if ":" in value:
        return sign * _base60([int(part) for part in value.split(":")], 0)
    return sign * int(value)


def construct_float(text: str) -> float:
    """PyYAML's ``construct_yaml_float`` (``.inf``, ``.nan``, ``:`` for base 60)."""
    value = text.replace("_", "").lower()
    sign = -1 if value[0] == "-" else 1
    if value[0] in "+-":
        value = value[1:]
    if value == ".inf":
        return sign * _INF
    if value == ".nan":
        return _NAN
    if ":" in value:
        return sign * _base60([float(part) for part in value.split(":")], 0.0)
    return sign * float(value)


def _base60(digits: list[Any], number: Any) -> Any:
    """``1:30:05`` as PyYAML adds it up: from the last part, each worth 60 times the one after."""
    base = 1
    for digit in reversed(digits):
        number += digit * base
        base *= 60
    return number


_INF = 1e300 * 1e300  # (PyYAML's own values: SafeConstructor.inf_value and nan_value)
_NAN = -_INF / _INF
