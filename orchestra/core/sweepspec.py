"""Sweep members from ``--sweep KEY=V1,V2`` / ``--sweep KEY=LO:HI:STEP`` and ``--sweep-file``.

A member is a tuple of ``(KEY, VALUE)`` pairs given to the run as ``-P KEY=VALUE``; ``KEY`` is a
param name or ``STAGE.KEY`` as with ``-P``. Several ``--sweep`` give their cartesian product;
a sweep file is a YAML list of explicit combinations (mappings), multiplied by the ``--sweep``
axes when both are given. ``LO:HI:STEP`` counts in decimal (``0:1:0.25`` is 0, 0.25, 0.5, 0.75, 1:
``HI`` is included when it falls on a step).
"""

from __future__ import annotations

import itertools
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Sequence

from orchestra.core import yamlguard
from orchestra.core.errors import BadInputError

Member = tuple[tuple[str, str], ...]
MAX_RANGE = 100_000
_HINT = "e.g. --sweep alpha=0.1,0.5,1.0 or --sweep train.l1=0:1:0.25 (LO:HI:STEP)"


def _range(key: str, text: str) -> list[str]:
    try:
        lo, hi, step = (Decimal(part.strip()) for part in text.split(":"))
    except (InvalidOperation, ValueError):
        raise BadInputError(f"--sweep {key}={text}: a range is LO:HI:STEP with three numbers", where="--sweep",
                            hint=_HINT) from None
    if step <= 0 or hi < lo:
        raise BadInputError(f"--sweep {key}={text}: needs LO <= HI and STEP > 0", where="--sweep", hint=_HINT)
    count = int((hi - lo) / step) + 1
    if count > MAX_RANGE:
        raise BadInputError(f"--sweep {key}={text}: {count} values (at most {MAX_RANGE})", where="--sweep",
                            hint="use a larger STEP")
    values = [lo + step * i for i in range(count)]
    integral = all(v == v.to_integral_value() for v in (lo, step))
    return [str(int(v)) if integral else _plain(v) for v in values]


def _plain(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text if text not in ("-0",) else "0"


def parse_axis(text: str) -> tuple[str, list[str]]:
    """``KEY=V1,V2`` or ``KEY=LO:HI:STEP`` as (key, values).

    Raises:
        BadInputError: no ``=``, an empty key or value list, a bad range, a repeated value.
    """
    key, sep, rest = text.partition("=")
    key = key.strip()
    if not sep or not key or not rest.strip():
        raise BadInputError(f"--sweep {text!r}: expected KEY=V1,V2,… or KEY=LO:HI:STEP", where="--sweep", hint=_HINT)
    values = _range(key, rest) if rest.count(":") == 2 and "," not in rest else [v.strip() for v in rest.split(",")]
    if any(not v for v in values):
        raise BadInputError(f"--sweep {text!r}: an empty value", where="--sweep", hint=_HINT)
    if len(set(values)) != len(values):
        raise BadInputError(f"--sweep {text!r}: a value is repeated", where="--sweep", hint="give each value once")
    return key, values


def read_file(path: str) -> list[dict[str, str]]:
    """The combinations of a sweep file: a YAML list of mappings ``{KEY: VALUE}`` (read within the
    YAML limits of every configuration file).

    Raises:
        BadInputError: unreadable, not YAML, over the limits, or not a list of flat mappings.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"cannot read sweep file {path}: {exc}", where="--sweep-file",
                            hint="give a YAML file with a list of combinations") from None
    yamlguard.check(text, path, BadInputError)
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BadInputError(f"sweep file {path} is not YAML: {str(exc).splitlines()[0]}", where=path,
                            hint="a list of mappings, e.g. - {alpha: 0.1, epochs: 10}") from None
    if not isinstance(data, list) or not data:
        raise BadInputError(f"sweep file {path}: expected a non-empty list of combinations", where=path,
                            hint="- {alpha: 0.1, epochs: 10}\n- {alpha: 0.5, epochs: 20}")
    out = []
    for index, item in enumerate(data):
        if not isinstance(item, dict) or not item or any(isinstance(v, (dict, list)) or v is None for v in item.values()):
            raise BadInputError(f"sweep file {path}: item [{index}] must map param names to plain values",
                                where=f"{path}: [{index}]", hint="e.g. - {alpha: 0.1, train.l1: 0.5}")
        out.append({str(k): _text(v) for k, v in item.items()})
    return out


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def members(axes: Sequence[str], combos: Sequence[dict[str, str]] = ()) -> list[Member]:
    """Every member: the file's combinations (or one empty one) times the product of the axes.

    Raises:
        BadInputError: a key swept twice, or both in the file and on an axis.
    """
    parsed = [parse_axis(text) for text in axes]
    keys = [key for key, _ in parsed]
    if len(set(keys)) != len(keys):
        raise BadInputError("--sweep: a key is swept twice", where="--sweep", hint="merge the values into one --sweep")
    for combo in combos:
        both = set(combo) & set(keys)
        if both:
            raise BadInputError(f"--sweep {sorted(both)[0]}: also set in the sweep file", where="--sweep",
                                hint="sweep each key in one place")
    base = [tuple(combo.items()) for combo in combos] or [()]
    product = itertools.product(*[[(key, value) for value in values] for key, values in parsed])
    crossed = list(product)
    return [tuple(first) + tuple(rest) for first in base for rest in crossed]
