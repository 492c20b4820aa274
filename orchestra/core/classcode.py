"""The code dataclasses generate for orchestra's classes, compiled once and kept like a ``.pyc``.

Creating a dataclass compiles a small piece of source text for each method it generates
(``__init__``, ``__repr__``, ``__eq__``, and ``__setattr__``/``__delattr__``/``__hash__`` when
frozen), every time the class is created, in every process. A run imports about 60 of
orchestra's dataclasses: some 330 compiles, the largest single part of a run's fixed cost.
The text depends only on the class's fields, so the code object compiled from it can be kept,
as Python keeps a module's bytecode: in the package's ``__pycache__`` directory (wherever
``PYTHONPYCACHEPREFIX`` puts it), one file per interpreter version, tagged with the bytecode
magic number, written atomically, never written when ``PYTHONDONTWRITEBYTECODE`` is set or the
directory is read-only.

How: :func:`install` (called first thing by the CLI, ``orchestra/cli/__init__.py``) gives the ``dataclasses`` module a module-level ``exec`` (its one call site,
in CPython 3.11 to 3.13, resolves the name there before the builtin) that compiles through the
cache for classes defined in ``orchestra`` modules and defers to the builtin for everything
else. The code executed is exactly what the builtin would have compiled from the same text.
It also answers dataclasses' question "is this string annotation a ``ClassVar``, an ``InitVar``
or ``KW_ONLY``?" at once for orchestra's annotations that name none of them (see ``_by_name``).
``ORCHESTRA_NO_CLASS_CODE_CACHE=1`` turns both off.
"""

from __future__ import annotations

import atexit
import builtins
import importlib
import marshal
import os
import sys
from collections.abc import Iterable
from importlib.util import MAGIC_NUMBER, cache_from_source
from types import ModuleType

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

FORMAT = b"orchestra-class-code-1\n"
MAX_ENTRIES = 4096
_cache: dict[str, Any] = {}
_new: dict[str, Any] = {}
_path: str | None = None


def cache_dir() -> str:
    """Where orchestra's code caches live: beside the bytecode of ``orchestra/__init__.py``."""
    init = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "__init__.py")
    return os.path.dirname(cache_from_source(init))


def cache_path() -> str:
    return os.path.join(cache_dir(), f"class-code.{sys.implementation.cache_tag}.bin")


def _read(path: str) -> dict[str, Any]:
    return read_table(path, FORMAT + MAGIC_NUMBER)


def read_table(path: str, header: bytes) -> dict[Any, Any]:
    """The marshalled dict of a code cache file that starts with ``header`` (empty for a missing,
    torn or foreign file: it is ignored and rewritten)."""
    try:
        with open(path, "rb") as fh:
            blob = fh.read()
    except OSError:
        return {}
    if not blob.startswith(header):
        return {}
    try:
        table = marshal.loads(blob[len(header):])
    except (EOFError, ValueError, TypeError):
        return {}
    return table if isinstance(table, dict) else {}


def write_table(path: str, header: bytes, table: dict[Any, Any]) -> None:
    write_file(path, (header, marshal.dumps(table)))


def write_file(path: str, chunks: Iterable[bytes]) -> None:
    """Write a code cache file atomically (a temporary file renamed over it); a read-only install
    goes without, as Python does without ``.pyc`` files."""
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(tmp, "wb") as fh:
            fh.writelines(chunks)
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def _exec(source: Any, globals: dict[str, Any] | None = None, locals: dict[str, Any] | None = None) -> None:  # noqa: A002
    if isinstance(source, str) and globals is not None and str(globals.get("__name__", "")).startswith("orchestra"):
        code = _cache.get(source)
        if code is None:
            code = _cache[source] = _new[source] = compile(source, "<string>", "exec")
        source = code
    builtins.exec(source, globals, locals)


def _save() -> None:
    if not _new or _path is None or sys.dont_write_bytecode:
        return
    table = {**_read(_path), **_new}
    if len(table) > MAX_ENTRIES:  # texts of classes that changed since: keep only this process's
        table = dict(_cache)
    write_table(_path, FORMAT + MAGIC_NUMBER, table)


class _OnFirstUse(ModuleType):
    """Stands for a module in ``dataclasses``'s globals and imports it when first asked for a name."""

    def __getattr__(self, name: str) -> Any:
        return getattr(importlib.import_module(self.__name__), name)


def _import_dataclasses() -> Any:
    """``dataclasses``, without importing ``inspect`` (with ``ast``, ``dis`` and ``tokenize``, ~5 ms)
    until it is used: only for a class without a docstring. The stand-in is seen by ``dataclasses``
    alone: it leaves ``sys.modules`` before anything else can import ``inspect``."""
    if "dataclasses" in sys.modules or "inspect" in sys.modules:
        import dataclasses

        return dataclasses
    sys.modules["inspect"] = _OnFirstUse("inspect")
    try:
        import dataclasses
    finally:
        del sys.modules["inspect"]
    return dataclasses


def _by_name(is_type: Any) -> Any:
    """dataclasses' ``_is_type`` (a regular expression and two module lookups, three times for
    every field: ~0.1 ms of each class created) answering False at once for an annotation of one
    of orchestra's classes that names no marker; everything else is asked as before.

    The markers are the names dataclasses looks for in a string annotation (``x: ClassVar[int]``
    under ``from __future__ import annotations``): ``ClassVar``, ``InitVar``, ``KW_ONLY``.
    orchestra never binds them to another name (tests/architecture/test_lazy_imports.py), so an
    annotation of one of its classes that contains none of them is none of them."""
    def check(annotation: str, cls: type, a_module: Any, a_type: Any, predicate: Any) -> bool:
        if ("ClassVar" not in annotation and "InitVar" not in annotation and "KW_ONLY" not in annotation
                and cls.__module__.startswith("orchestra.")):
            return False
        return bool(is_type(annotation, cls, a_module, a_type, predicate))

    return check


def install() -> None:
    """Route the ``dataclasses`` module's compiles of orchestra's classes through the cache."""
    global _path
    if _path is not None or os.environ.get("ORCHESTRA_NO_CLASS_CODE_CACHE"):
        return
    dataclasses = _import_dataclasses()
    if "exec" in vars(dataclasses):  # someone else already hooked it: leave it alone
        return
    _path = cache_path()
    _cache.update(_read(_path))
    dataclasses.exec = _exec  # type: ignore[attr-defined]
    if callable(getattr(dataclasses, "_is_type", None)):
        dataclasses._is_type = _by_name(dataclasses._is_type)  # type: ignore[attr-defined]
    atexit.register(_save)
