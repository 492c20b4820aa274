"""Compiled regular expressions kept across processes, as Python keeps a module's bytecode.

``re.compile`` parses a pattern and generates the matcher's code in Python: 20-250 µs a
pattern on this kind of machine, ~2.5 ms for the ~30 patterns a run compiles (the MLproject
reader's, the standard library's: ``json``, ``argparse``, ``shlex``, …), in every process. The
result depends only on the pattern, its flags and the interpreter, so the arguments ``re`` hands
to the regex engine (``_sre.compile``: the final flags, the code, the groups and their names) are
kept in the package's ``__pycache__`` directory, beside the class-code cache
(``orchestra.core.classcode``), one file per command as the module-code cache
(``pattern-code.<profile>.<tag>.bin``: a command reads only the patterns it compiles), and a pattern found there is built from them directly: the same
call with the same arguments as ``re`` would have made (``Pattern.__eq__`` compares the code;
``tests/unit/test_patterncode.py``).

The file is tied to the exact interpreter (``sys.version``) and regex engine (``_sre.MAGIC``):
another one ignores it and rewrites it. It is written atomically when the process ends, only
when something new was compiled, never with ``PYTHONDONTWRITEBYTECODE`` or a read-only
directory. Patterns given as parsed objects or with ``re.DEBUG`` are compiled as usual.
``ORCHESTRA_NO_PATTERN_CODE_CACHE=1`` turns it off.
"""

from __future__ import annotations

import _sre
import atexit
import marshal
import os
import sys
import threading

from orchestra.core.classcode import cache_dir, read_table, write_table

FORMAT = b"orchestra-pattern-code-1\n"
MAX_ENTRIES = 2048
_DEBUG = 128  # re.DEBUG: prints while compiling, so never served from the file
_cache: dict[tuple[str | bytes, int], tuple[object, ...]] = {}
_new: dict[tuple[str | bytes, int], tuple[object, ...]] = {}
_path: str | None = None
_recording = threading.local()


def cache_path(profile: str = "cli") -> str:
    return os.path.join(cache_dir(), f"pattern-code.{profile}.{sys.implementation.cache_tag}.bin")


def _header() -> bytes:
    return FORMAT + f"{sys.version}\n{_sre.MAGIC}\n".encode()


def _read(path: str) -> dict[tuple[str | bytes, int], tuple[object, ...]]:
    return read_table(path, _header())


class _Engine:
    """Stands for ``_sre`` in ``re._compiler``: records the arguments of the pattern being compiled."""

    def __init__(self, engine: object) -> None:
        self._engine = engine

    def __getattr__(self, name: str) -> object:
        return getattr(self._engine, name)

    def compile(self, pattern: object, *args: object) -> object:  # noqa: A003 - _sre's name
        key = getattr(_recording, "key", None)
        if key is not None:
            _recording.key = None
            plain = tuple(_plain(a) for a in args)
            try:
                marshal.dumps(plain)
            except ValueError:
                pass  # not keepable: compiled as usual, every time
            else:
                _cache[key] = _new[key] = plain
        return _sre.compile(pattern, *args)


def _plain(value: object) -> object:
    """``value`` with ``re``'s named int constants (its opcodes and flags) as plain ints: marshal
    keeps only exact built-in types, and ``_sre`` reads both alike."""
    if isinstance(value, int) and type(value) is not int and not isinstance(value, bool):
        return int(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _through_cache(compile_: object) -> object:
    def compile(p: object, flags: int = 0) -> object:  # noqa: A001 - re._compiler's name
        if not isinstance(p, (str, bytes)) or flags & _DEBUG:
            return compile_(p, flags)  # type: ignore[operator]
        key = (p, int(flags))
        args = _cache.get(key)
        if args is not None:  # (fresh containers: a pattern keeps the ones it is given)
            return _sre.compile(p, *[a.copy() if isinstance(a, (list, dict)) else a for a in args])
        _recording.key = key
        try:
            return compile_(p, flags)  # type: ignore[operator]
        finally:
            _recording.key = None

    compile.__wrapped__ = compile_  # type: ignore[attr-defined]
    return compile


def _save() -> None:
    if not _new or _path is None or sys.dont_write_bytecode:
        return
    table = {**_read(_path), **_new}
    if len(table) > MAX_ENTRIES:  # patterns no longer compiled: keep only this process's
        table = dict(_cache)
    write_table(_path, _header(), table)


def install(profile: str = "cli") -> None:
    """Serve ``re``'s compiles from the ``profile`` cache file, once per process (CPython 3.11 to
    3.13, whose ``re._compiler`` calls ``_sre.compile`` once a pattern; elsewhere nothing changes)."""
    global _path
    if _path is not None or os.environ.get("ORCHESTRA_NO_PATTERN_CODE_CACHE"):
        return
    if sys.implementation.name != "cpython" or not (3, 11) <= sys.version_info[:2] <= (3, 13):
        return
    from re import _compiler

    if getattr(_compiler.compile, "__wrapped__", None) is not None or _compiler._sre is not _sre:
        return  # someone else hooked it: leave it alone
    _path = cache_path(profile)
    _cache.update(_read(_path))
    _compiler._sre = _Engine(_sre)
    _compiler.compile = _through_cache(_compiler.compile)
    atexit.register(_save)
