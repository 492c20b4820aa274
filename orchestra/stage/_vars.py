"""``log_vars``: log the calling function's arguments as params (mlflowhelper's ``log_vars``)."""

from __future__ import annotations

import sys
from types import FrameType
from typing import Any, Iterable

_CO_VARARGS, _CO_VARKEYWORDS = 0x04, 0x08


def arguments(frame: FrameType, varargs_prefix: str = "vararg_") -> dict[str, Any]:
    """The arguments of the function running in ``frame``: named ones (keyword-only included) in
    order, then ``*args`` as ``vararg_0, vararg_1, …``, then each ``**kwargs`` item by its name —
    what mlflowhelper logs (``inspect.getargvalues`` without importing inspect)."""
    code = frame.f_code
    values = frame.f_locals
    count = code.co_argcount + code.co_kwonlyargcount
    names = code.co_varnames
    found = {name: values[name] for name in names[:count] if name in values}
    varargs = varkw = None
    if code.co_flags & _CO_VARARGS:
        varargs = names[count]
        count += 1
    if code.co_flags & _CO_VARKEYWORDS:
        varkw = names[count]
    if varkw is not None:
        found.update(values.get(varkw) or {})
    if varargs is not None:
        for index, value in enumerate(values.get(varargs) or ()):
            found[f"{varargs_prefix}{index}"] = value
    return found


def log_vars(exclude: Iterable[str] = (), prefix: str = "", *, depth: int = 1) -> dict[str, Any]:
    from orchestra.stage._tracking import append

    frame = sys._getframe(depth)
    try:
        found = arguments(frame)
    finally:
        del frame
    skip = set(exclude)
    logged = {f"{prefix}{name}": value for name, value in found.items() if name not in skip}
    for key, value in logged.items():
        append({"type": "param", "key": key, "value": str(value)})
    return logged
