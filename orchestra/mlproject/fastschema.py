"""A yes/no JSON Schema check for the keywords orchestra's own schemas use.

Importing jsonschema costs ~90 ms (it builds attrs classes at import), more than a tenth of a
cold 200-stage run, and validating a 10,000-stage MLproject with it takes over a second. This
module answers only "valid or not" for the subset of draft 2020-12 that ``schemas/`` uses; a
document it rejects is handed to jsonschema, which finds and explains the error. So jsonschema
stays the judge of every message, and the schema stays the single description of the file.

A keyword this module does not know makes :func:`is_valid` return False (never a silent pass),
and ``tests/unit/test_fastschema.py`` checks it agrees with jsonschema.
"""

from __future__ import annotations

from typing import Any, Mapping

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer()),
}
# Keywords that never change validity.
_ANNOTATIONS = frozenset({"$schema", "$id", "title", "description", "default", "$defs", "$comment", "examples"})


def is_valid(instance: Any, schema: Mapping[str, Any], root: Mapping[str, Any] | None = None) -> bool:
    """True when ``instance`` is valid against ``schema``; False when invalid or not decidable here."""
    root = schema if root is None else root
    if schema is True or schema == {}:
        return True
    if schema is False:
        return False
    for keyword, value in schema.items():
        if keyword in _ANNOTATIONS:
            continue
        check = _KEYWORDS.get(keyword)
        if check is None or not check(instance, value, schema, root):
            return False
    return True


def _type(instance: Any, value: Any, schema: Mapping[str, Any], root: Mapping[str, Any]) -> bool:
    names = value if isinstance(value, list) else [value]
    return any(_TYPES[name](instance) for name in names if name in _TYPES)


def _properties(instance: Any, value: Mapping[str, Any], schema: Mapping[str, Any], root: Mapping[str, Any]) -> bool:
    if not isinstance(instance, dict):
        return True
    return all(is_valid(instance[key], sub, root) for key, sub in value.items() if key in instance)


def _additional(instance: Any, value: Any, schema: Mapping[str, Any], root: Mapping[str, Any]) -> bool:
    if not isinstance(instance, dict):
        return True
    known = schema.get("properties", {})
    if "patternProperties" in schema:
        return False  # not used by our schemas: let jsonschema decide
    return all(is_valid(item, value, root) for key, item in instance.items() if key not in known)


def _required(instance: Any, value: list[str], schema: Mapping[str, Any], root: Mapping[str, Any]) -> bool:
    return not isinstance(instance, dict) or all(key in instance for key in value)


def _property_names(instance: Any, value: Any, schema: Mapping[str, Any], root: Mapping[str, Any]) -> bool:
    return not isinstance(instance, dict) or all(is_valid(key, value, root) for key in instance)


def _items(instance: Any, value: Any, schema: Mapping[str, Any], root: Mapping[str, Any]) -> bool:
    return not isinstance(instance, list) or all(is_valid(item, value, root) for item in instance)


def _unique(instance: Any, value: bool, schema: Mapping[str, Any], root: Mapping[str, Any]) -> bool:
    if not value or not isinstance(instance, list):
        return True
    try:
        return len({(type(item).__name__, item) for item in instance}) == len(instance)
    except TypeError:  # unhashable items (objects, arrays): let jsonschema decide
        return False


def _enum(instance: Any, value: list[Any], schema: Mapping[str, Any], root: Mapping[str, Any]) -> bool:
    return any(_same(instance, option) for option in value)


def _const(instance: Any, value: Any, schema: Mapping[str, Any], root: Mapping[str, Any]) -> bool:
    return _same(instance, value)


def _same(a: Any, b: Any) -> bool:
    # JSON equality: true is not 1.
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def _numeric(test: Any) -> Any:
    def check(instance: Any, value: float, schema: Mapping[str, Any], root: Mapping[str, Any]) -> bool:
        if isinstance(instance, bool) or not isinstance(instance, (int, float)):
            return True
        return test(instance, value)
    return check


def _min_length(instance: Any, value: int, schema: Mapping[str, Any], root: Mapping[str, Any]) -> bool:
    return not isinstance(instance, str) or len(instance) >= value


def _one_of(instance: Any, value: list[Any], schema: Mapping[str, Any], root: Mapping[str, Any]) -> bool:
    return sum(1 for sub in value if is_valid(instance, sub, root)) == 1


def _any_of(instance: Any, value: list[Any], schema: Mapping[str, Any], root: Mapping[str, Any]) -> bool:
    return any(is_valid(instance, sub, root) for sub in value)


def _ref(instance: Any, value: str, schema: Mapping[str, Any], root: Mapping[str, Any]) -> bool:
    if not value.startswith("#/"):
        return False
    target: Any = root
    for part in value[2:].split("/"):
        if not isinstance(target, dict) or part not in target:
            return False
        target = target[part]
    return is_valid(instance, target, root)


_KEYWORDS = {
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
