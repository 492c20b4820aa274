"""Stage resource requests (``resources: {cpus: 2, gpus: 1, memory: 4GB}``) as executor labels.

A request maps onto abstract worker resources, as Dask names them: ``cpus`` → ``CPU``,
``gpus`` → ``GPU``, ``memory`` → ``MEMORY`` (bytes), any other key as written. A worker offers
them with ``dask worker --resources "CPU=4,GPU=1,MEMORY=16e9"``. The local executor ignores
them. Nothing here imports an engine.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from orchestra.core.errors import BadInputError, SpecError

_NAMES = {"cpus": "CPU", "gpus": "GPU", "memory": "MEMORY"}
_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
          "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*([a-zA-Z]*)\s*$")


def parse_memory(value: Any, where: str = "resources.memory") -> float:
    """Bytes of ``value``: a number of bytes or a string like ``4GB``, ``512MiB``, ``1.5g``.

    Raises:
        SpecError: not a size.
    """
    if isinstance(value, bool):
        raise SpecError(f"memory {value!r} is not a size", where=where, hint="e.g. 4GB, 512MiB or a number of bytes")
    if isinstance(value, (int, float)):
        if value < 0:
            raise SpecError(f"memory {value!r} is negative", where=where, hint="e.g. 4GB")
        return float(value)
    match = _MEMORY.match(str(value))
    unit = match.group(2).lower() if match else None
    if not match or unit not in _UNITS:
        raise SpecError(f"memory {value!r} is not a size", where=where,
                        hint="a number with an optional unit: B, KB, MB, GB, TB, KiB, MiB, GiB, TiB")
    return float(match.group(1)) * _UNITS[unit]


def validate(resources: Mapping[str, Any], where: str) -> None:
    """Check a stage's request at load time (the schema already checked the types)."""
    for key, value in resources.items():
        if key == "memory":
            parse_memory(value, f"{where}.memory")
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise SpecError(f"resource {key}={value!r} must be a non-negative number", where=f"{where}.{key}")


def labels(resources: Mapping[str, Any]) -> dict[str, float]:
    """The worker resource labels a request needs, zero amounts left out."""
    out: dict[str, float] = {}
    for key, value in resources.items():
        amount = parse_memory(value) if key == "memory" else float(value)
        if amount > 0:
            out[_NAMES.get(key, key)] = amount
    return out


def describe(wanted: Mapping[str, float]) -> str:
    return ",".join(f"{name}={amount:g}" for name, amount in sorted(wanted.items()))


def check_satisfiable(requests: Mapping[str, Mapping[str, Any]], offers: Mapping[str, Mapping[str, float]],
                      *, cluster: str) -> None:
    """Raise before the run starts if a stage needs more than any single worker offers.

    Args:
        requests: stage name → its ``resources`` mapping.
        offers: worker address → its resource labels.
        cluster: the scheduler address, for the message.

    Raises:
        BadInputError: a stage no worker can ever run (exit 2), naming the stage and the offers.
    """
    for stage, request in requests.items():
        wanted = labels(request)
        if not wanted:
            continue
        if any(all(offer.get(name, 0) >= amount for name, amount in wanted.items()) for offer in offers.values()):
            continue
        shown = "; ".join(f"{addr}: {describe(offer) or 'no resources'}" for addr, offer in sorted(offers.items()))
        raise BadInputError(
            f"stage '{stage}' needs {describe(wanted)} but no worker of {cluster} offers it",
            where=f"MLproject: entry_points.{stage}.resources",
            hint=f"workers: {shown or 'none'}; start one with dask worker --resources \"{describe(wanted)}\"",
        )
