"""The runs filter grammar: a subset of MLflow's search syntax, shared by the UI and the CLI.

``metrics.rmse < 0.5 and params.alpha = '0.3' and tags.team LIKE 'ml%' and attributes.status = 'FINISHED'``

- entities: ``metrics.KEY`` (``m.``), ``params.KEY`` (``p.``), ``tags.KEY`` (``t.``) and
  ``attributes.KEY`` (``a.``; also bare ``status``, ``run_id``, ``run_name``, ``experiment``,
  ``start_time``, ``end_time``). A key with dots or spaces is quoted with backticks or double
  quotes: ``metrics.`train.loss` < 1``.
- operators: ``=``, ``!=``, ``<``, ``<=``, ``>``, ``>=``, ``LIKE`` (``%`` any run of characters,
  ``_`` one character; case-sensitive as in MLflow, ``ILIKE`` ignores case).
- values: numbers for metrics (and the time attributes), quoted strings otherwise; clauses are
  joined with ``and`` (case-insensitive). ``or`` and parentheses are not part of the subset.

:func:`parse` turns the text into frozen :class:`Clause` values (a bad filter is a one-line
:class:`~orchestra.core.errors.BadInputError`); :func:`matches` evaluates them against a run's
flat mappings, so any reader of the run store can apply them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from orchestra.core.errors import BadInputError

OPERATORS = ("<=", ">=", "!=", "=", "<", ">", "LIKE", "ILIKE")
_ENTITIES = {"metrics": "metrics", "metric": "metrics", "m": "metrics", "params": "params", "param": "params",
             "p": "params", "tags": "tags", "tag": "tags", "t": "tags", "attributes": "attributes",
             "attribute": "attributes", "attr": "attributes", "a": "attributes", "run": "attributes"}
_ATTRIBUTES = ("status", "run_id", "run_name", "experiment", "start_time", "end_time", "project_uri")
_NUMERIC_ATTRIBUTES = ("start_time", "end_time")
_TOKEN = re.compile(r"""\s*(?:
    (?P<op><=|>=|!=|=|<|>)
  | (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<tick>`[^`]*`)
  | (?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.]))
  | (?P<word>[A-Za-z_][\w\-]*)
  | (?P<dot>\.)
  | (?P<bad>\S)
)""", re.VERBOSE)
_HINT = ("e.g. \"metrics.rmse < 0.5 and params.alpha = '0.3'\"; entities metrics. params. tags. attributes., "
         "operators = != < <= > >= LIKE ILIKE, clauses joined with 'and'")


@dataclass(frozen=True, slots=True)
class Clause:
    """One comparison: ``entity`` (metrics, params, tags, attributes), ``key``, ``op``, ``value``."""

    entity: str
    key: str
    op: str
    value: str | float


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup or "bad"
        token = match.group(kind)
        if kind == "bad":
            raise _error(text, f"unexpected character {token!r}")
        out.append((kind, token))
    return out


def _error(text: str, problem: str) -> BadInputError:
    return BadInputError(f"bad filter {text!r}: {problem}", where="--filter", hint=_HINT)


def _unquote(token: str) -> str:
    body = token[1:-1]
    return re.sub(r"\\(.)", r"\1", body) if token[0] in "'\"" else body


def parse(text: str) -> tuple[Clause, ...]:
    """The clauses of ``text`` (empty for an empty filter).

    Raises:
        BadInputError: the filter is not in the grammar (one line with the allowed forms).
    """
    tokens = _tokens(text or "")
    clauses: list[Clause] = []
    pos = 0
    while pos < len(tokens):
        if clauses:
            kind, token = tokens[pos]
            if kind != "word" or token.lower() != "and":
                raise _error(text, f"expected 'and' before {token!r}" if kind != "word" or token.lower() != "or"
                             else "'or' is not supported (join clauses with 'and')")
            pos += 1
        clause, pos = _clause(text, tokens, pos)
        clauses.append(clause)
    return tuple(clauses)


def _clause(text: str, tokens: list[tuple[str, str]], pos: int) -> tuple[Clause, int]:
    def take() -> tuple[str, str]:
        nonlocal pos
        if pos >= len(tokens):
            raise _error(text, "unexpected end")
        pos += 1
        return tokens[pos - 1]

    kind, first = take()
    if kind not in ("word", "tick", "str"):
        raise _error(text, f"expected an entity such as metrics.KEY, got {first!r}")
    if kind == "word" and pos < len(tokens) and tokens[pos][0] == "dot":
        entity = _ENTITIES.get(first.lower())
        if entity is None:
            raise _error(text, f"unknown entity {first!r}")
        pos += 1
        kind, key = take()
        if kind not in ("word", "tick", "str", "num"):
            raise _error(text, f"expected a key after {first}., got {key!r}")
        key = _unquote(key) if kind in ("tick", "str") else key
        while kind == "word" and pos + 1 < len(tokens) and tokens[pos][0] == "dot" and tokens[pos + 1][0] == "word":
            key += "." + tokens[pos + 1][1]  # metrics.train.loss: a stage-prefixed metric
            pos += 2
    elif kind == "word" and first.lower() in _ATTRIBUTES:
        entity, key = "attributes", first.lower()
    else:
        raise _error(text, f"unknown entity {first!r}")
    if entity == "attributes" and key not in _ATTRIBUTES:
        raise _error(text, f"unknown attribute {key!r} (attributes: {', '.join(_ATTRIBUTES)})")
    kind, op = take()
    op = op.upper() if kind == "word" else op
    if op not in OPERATORS:
        raise _error(text, f"expected an operator after {key!r}, got {op!r}")
    kind, raw = take()
    numeric = entity == "metrics" or key in _NUMERIC_ATTRIBUTES
    if op in ("LIKE", "ILIKE"):
        if numeric or kind != "str":
            raise _error(text, f"{op} takes a quoted string and works on params, tags and text attributes")
        return Clause(entity, key, op, _unquote(raw)), pos
    if numeric:
        if kind != "num":
            raise _error(text, f"{entity}.{key} compares with a number, got {raw!r}")
        return Clause(entity, key, op, float(raw)), pos
    if kind != "str":
        raise _error(text, f"{entity}.{key} compares with a quoted string, got {raw!r}")
    return Clause(entity, key, op, _unquote(raw)), pos


def _like(pattern: str, flags: int) -> re.Pattern[str]:
    parts = [".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern]
    return re.compile("".join(parts) + r"\Z", flags | re.DOTALL)


def matches(clauses: tuple[Clause, ...], entities: Mapping[str, Mapping[str, Any]]) -> bool:
    """Whether a run with these ``{"metrics": …, "params": …, "tags": …, "attributes": …}`` passes.

    A clause on a key the run does not have fails (as in MLflow), except ``!=``, which holds.
    """
    for clause in clauses:
        value = entities.get(clause.entity, {}).get(clause.key)
        if not _compare(clause, value):
            return False
    return True


def _compare(clause: Clause, value: Any) -> bool:
    op, want = clause.op, clause.value
    if value is None:
        return op == "!="
    if op in ("LIKE", "ILIKE"):
        return bool(_like(str(want), re.IGNORECASE if op == "ILIKE" else 0).match(str(value)))
    if isinstance(want, float):
        try:
            have: Any = float(value)
        except (TypeError, ValueError):
            return False
    else:
        have = str(value)
    return {"=": have == want, "!=": have != want, "<": have < want, "<=": have <= want,
            ">": have > want, ">=": have >= want}[op]
