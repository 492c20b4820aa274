"""A yes/no JSON Schema check for the keywords orchestra's own schemas use.

Importing jsonschema costs ~90 ms (it builds attrs classes at import), more than a tenth of a
cold 200-stage run, and validating a 10,000-stage MLproject with it takes over a second. This
module answers only "valid or not" for the subset of draft 2020-12 that ``schemas/`` uses; a
document it rejects is handed to jsonschema, which finds and explains the error. So jsonschema
stays the judge of every message, and the schema stays the single description of the file.

The schema is compiled once into nested closures (``compile_schema``): a check per keyword,
chosen when compiling, so a 10,000-entry document costs one call per value, not a walk of the
schema's keywords per value. A keyword this module does not know compiles to "invalid" (never a
silent pass), and ``tests/unit/test_fastschema.py`` checks it agrees with jsonschema.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    Check = Callable[[Any], bool]

_TYPES: dict[str, Check] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer()),
}
# Types decided by the value's exact Python type alone (what YAML and JSON build).
_EXACT = {"object": (dict,), "array": (list,), "string": (str,), "boolean": (bool,), "null": (type(None),)}
# Keywords that never change validity.
_ANNOTATIONS = frozenset({"$schema", "$id", "title", "description", "default", "$defs", "$comment", "examples"})


def _always(_value: Any) -> bool:
    return True


def _never(_value: Any) -> bool:
    return False


class _Compiler:
    """Compiles the subschemas of one root; ``$ref`` targets once each (recursion allowed)."""

    def __init__(self, root: Mapping[str, Any]) -> None:
        self.root = root
        self.refs: dict[str, Check] = {}

    def compile(self, schema: Any) -> Check:
        if schema is True or schema == {}:
            return _always
        if schema is False or not isinstance(schema, dict):
            return _never
        checks = []
        for keyword, value in schema.items():
            if keyword in _ANNOTATIONS:
                continue
            make = _KEYWORDS.get(keyword)
            if make is None:
                return _never  # jsonschema decides
            checks.append(make(self, value, schema))
        if not checks:
            return _always
        if len(checks) == 1:
            return checks[0]
        if len(checks) == 2:
            first, second = checks
            return lambda v: first(v) and second(v)

        def every(v: Any) -> bool:
            for check in checks:
                if not check(v):
                    return False
            return True
        return every

    def ref(self, target: str) -> Check:
        if target in self.refs:
            return lambda v: self.refs[target](v)  # still compiling (a recursive schema)
        node: Any = self.root
        if not target.startswith("#/"):
            return _never
        for part in target[2:].split("/"):
            if not isinstance(node, dict) or part not in node:
                return _never
            node = node[part]
        self.refs[target] = _never  # placeholder while compiling
        compiled = self.refs[target] = self.compile(node)
        return compiled


def _type(c: _Compiler, value: Any, schema: Mapping[str, Any]) -> Check:
    names = [n for n in (value if isinstance(value, list) else [value]) if n in _TYPES]
    if all(name in _EXACT for name in names):
        exact = frozenset(t for name in names for t in _EXACT[name])
        return lambda v: type(v) in exact or (not type(v) in _BUILTINS and any(_TYPES[n](v) for n in names))
    checks = [_TYPES[name] for name in names]
    return lambda v: any(check(v) for check in checks)


_BUILTINS = frozenset({dict, list, str, bool, int, float, type(None)})


def _properties(c: _Compiler, value: Mapping[str, Any], schema: Mapping[str, Any]) -> Check:
    subs = {key: check for key, sub in value.items() if (check := c.compile(sub)) is not _always}

    def check(v: Any) -> bool:  # over the instance's keys: an entry point uses few of its 13
        if not isinstance(v, dict):
            return True
        for key, item in v.items():
            sub = subs.get(key)
            if sub is not None and not sub(item):
                return False
        return True
    return check


def _additional(c: _Compiler, value: Any, schema: Mapping[str, Any]) -> Check:
    if "patternProperties" in schema:
        return _never  # not used by our schemas: let jsonschema decide
    known = frozenset(schema.get("properties", {}))
    sub = c.compile(value)

    def check(v: Any) -> bool:
        if not isinstance(v, dict):
            return True
        for key, item in v.items():
            if key not in known and not sub(item):
                return False
        return True
    return check


def _required(c: _Compiler, value: list[str], schema: Mapping[str, Any]) -> Check:
    return lambda v: not isinstance(v, dict) or all(key in v for key in value)


def _property_names(c: _Compiler, value: Any, schema: Mapping[str, Any]) -> Check:
    sub = c.compile(value)

    def check(v: Any) -> bool:
        if isinstance(v, dict):
            for key in v:
                if not sub(key):
                    return False
        return True
    return check


def _items(c: _Compiler, value: Any, schema: Mapping[str, Any]) -> Check:
    sub = c.compile(value)

    def check(v: Any) -> bool:
        if isinstance(v, list):
            for item in v:
                if not sub(item):
                    return False
        return True
    return check


def _unique(c: _Compiler, value: bool, schema: Mapping[str, Any]) -> Check:
    def check(v: Any) -> bool:
        if not value or not isinstance(v, list) or len(v) < 2:
            return True
        try:
            return len({(type(item).__name__, item) for item in v}) == len(v)
        except TypeError:  # unhashable items (objects, arrays): let jsonschema decide
            return False
    return check


def _same(a: Any, b: Any) -> bool:
    # JSON equality: true is not 1.
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def _enum(c: _Compiler, value: list[Any], schema: Mapping[str, Any]) -> Check:
    return lambda v: any(_same(v, option) for option in value)


def _const(c: _Compiler, value: Any, schema: Mapping[str, Any]) -> Check:
    return lambda v: _same(v, value)


def _numeric(test: Callable[[Any, Any], bool]) -> Callable[[_Compiler, Any, Mapping[str, Any]], Check]:
    def make(c: _Compiler, value: Any, schema: Mapping[str, Any]) -> Check:
        return lambda v: isinstance(v, bool) or not isinstance(v, (int, float)) or test(v, value)
    return make


def _min_length(c: _Compiler, value: int, schema: Mapping[str, Any]) -> Check:
    return lambda v: not isinstance(v, str) or len(v) >= value


def _one_of(c: _Compiler, value: list[Any], schema: Mapping[str, Any]) -> Check:
    subs = [c.compile(sub) for sub in value]

    def check(v: Any) -> bool:
        found = False
        for sub in subs:
            if sub(v):
                if found:
                    return False
                found = True
        return found
    return check


def _any_of(c: _Compiler, value: list[Any], schema: Mapping[str, Any]) -> Check:
    subs = [c.compile(sub) for sub in value]
    return lambda v: any(sub(v) for sub in subs)


def _ref(c: _Compiler, value: str, schema: Mapping[str, Any]) -> Check:
    return c.ref(value)


_KEYWORDS: dict[str, Callable[[_Compiler, Any, Mapping[str, Any]], Check]] = {
    "type": _type,
    "properties": _properties,
    "additionalProperties": _additional,
    "required": _required,
    "propertyNames": _property_names,
    "items": _items,
    "uniqueItems": _unique,
    "enum": _enum,
    "const": _const,
    "minimum": _numeric(lambda x, v: x >= v),
    "maximum": _numeric(lambda x, v: x <= v),
    "exclusiveMinimum": _numeric(lambda x, v: x > v),
    "exclusiveMaximum": _numeric(lambda x, v: x < v),
    "minLength": _min_length,
    "oneOf": _one_of,
    "anyOf": _any_of,
    "$ref": _ref,
}


def compile_schema(schema: Mapping[str, Any]) -> Check:
    """``schema`` as one function: value → True when valid, False when invalid or not decidable here."""
    return _Compiler(schema).compile(schema)


def is_valid(instance: Any, schema: Mapping[str, Any]) -> bool:
    """True when ``instance`` is valid against ``schema``; False when invalid or not decidable here."""
    return compile_schema(schema)(instance)
