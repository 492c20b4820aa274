"""The bytecode of orchestra's own modules, read from one file per command instead of one per module.

Importing a module from its ``.pyc`` costs some 30-50 µs before its code runs: finding it (a
stat of its directory and of the file), then opening, reading and checking the ``.pyc``. A run
imports about 90 of orchestra's modules. :func:`install` (called by the CLI once it knows the
command, ``orchestra/cli/__init__.py``) puts a finder first on ``sys.meta_path`` for
``orchestra.*`` that serves their code from one file: ``module-code.<profile>.<tag>.bin`` beside
the class-code cache (``orchestra.core.classcode``), in the package's ``__pycache__`` directory,
one per command (``run``, ``runs``, …) so a command reads only what it imports.

Each entry keeps the source path, its size and modification time (ns) at compile time, and the
code. An entry is used only when the source still has that size and time, and only for the
package directory being imported from (another checkout on ``PYTHONPATH`` is another cache);
otherwise the module is imported the usual way and the entry replaced when the process ends
(written atomically, never with ``PYTHONDONTWRITEBYTECODE`` or a read-only directory, as Python
treats ``.pyc`` files). The loader is a ``SourceFileLoader``: ``__file__``, ``__cached__``,
``get_source``, tracebacks and ``importlib.resources`` are as usual; only where the code comes
from differs. ``ORCHESTRA_NO_MODULE_CODE_CACHE=1`` turns it off.
"""

from __future__ import annotations

import _imp
import atexit
import marshal
import os
import sys
from collections.abc import Sequence
from importlib.machinery import PathFinder, SourceFileLoader
from importlib.util import MAGIC_NUMBER, spec_from_file_location

from orchestra.core.classcode import cache_dir, write_file

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

FORMAT = b"orchestra-module-code-1\n"
PREFIX = "orchestra."
# name -> (source path, mtime_ns, size, is a package, offset, length) into _blob
_index: dict[str, tuple[str, int, int, bool, int, int]] = {}
_blob: memoryview = memoryview(b"")
_new: dict[str, tuple[str, int, int, bool, bytes]] = {}
_path: str | None = None


def cache_path(profile: str) -> str:
    optimize = f".opt-{sys.flags.optimize}" if sys.flags.optimize else ""
    return os.path.join(cache_dir(), f"module-code.{profile}.{sys.implementation.cache_tag}{optimize}.bin")


def _read(path: str) -> tuple[dict[str, Any], memoryview]:
    """The index and the code bytes of a cache file (empty for a missing, torn or foreign one)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError:
        return {}, memoryview(b"")
    header = FORMAT + MAGIC_NUMBER
    if not data.startswith(header) or len(data) < len(header) + 8:
        return {}, memoryview(b"")
    start = len(header) + 8
    size = int.from_bytes(data[len(header):start], "little")
    try:
        index = marshal.loads(memoryview(data)[start:start + size])
    except (EOFError, ValueError, TypeError):
        return {}, memoryview(b"")
    if not isinstance(index, dict):
        return {}, memoryview(b"")
    return index, memoryview(data)[start + size:]


class _Loader(SourceFileLoader):
    """A ``SourceFileLoader`` whose code comes from the cache when the finder checked the entry."""

    cached: tuple[int, int] | None = None  # (offset, length) of checked code in _blob

    def get_code(self, fullname: str) -> Any:
        if self.cached is not None:
            offset, length = self.cached
            try:
                code = marshal.loads(_blob[offset:offset + length])
            except (EOFError, ValueError, TypeError):
                pass  # a damaged entry: compiled again below, and replaced
            else:
                _imp._fix_co_filename(code, self.path)
                return code
        before = _stat(self.path)
        code = super().get_code(fullname)
        if code is not None and before is not None and _stat(self.path) == before and not sys.dont_write_bytecode:
            _new[fullname] = (self.path, before[0], before[1], self.is_package(fullname), marshal.dumps(code))
        return code


def _stat(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


class _Finder:
    """First on ``sys.meta_path``, for ``orchestra.*`` only; everything else goes on to the next finder."""

    @staticmethod
    def find_spec(fullname: str, path: Sequence[str] | None = None, target: Any = None) -> Any:
        if not fullname.startswith(PREFIX) or not path:
            return None
        entry = _index.get(fullname)
        if entry is not None:
            source, mtime, size, package, offset, length = entry
            if os.path.dirname(source if not package else os.path.dirname(source)) in path \
                    and _stat(source) == (mtime, size):
                loader = _Loader(fullname, source)
                loader.cached = (offset, length)
                return spec_from_file_location(fullname, source, loader=loader,
                                               submodule_search_locations=[os.path.dirname(source)] if package else None)
        spec = PathFinder.find_spec(fullname, path, target)
        if spec is not None and type(spec.loader) is SourceFileLoader and spec.origin:
            spec.loader = _Loader(fullname, spec.origin)  # imported as usual, and kept for next time
        return spec


def install(profile: str) -> None:
    """Serve ``orchestra.*`` modules from the ``profile`` cache (once per process; the first profile wins)."""
    global _path, _index, _blob
    if _path is not None or os.environ.get("ORCHESTRA_NO_MODULE_CODE_CACHE"):
        return
    _path = cache_path(profile)
    _index, _blob = _read(_path)
    sys.meta_path.insert(0, _Finder)
    atexit.register(_save)


def _save() -> None:
    if not _new or _path is None or sys.dont_write_bytecode:
        return
    index, blob = _read(_path)  # what other processes of this profile added meanwhile
    entries = {name: (*entry[:4], bytes(blob[entry[4]:entry[4] + entry[5]])) for name, entry in index.items()
               if name not in _new and os.path.exists(entry[0])}
    entries.update(_new)
    new_index: dict[str, tuple[str, int, int, bool, int, int]] = {}
    chunks: list[bytes] = []
    offset = 0
    for name, (source, mtime, size, package, code) in entries.items():
        new_index[name] = (source, mtime, size, package, offset, len(code))
        chunks.append(code)
        offset += len(code)
    head = marshal.dumps(new_index)
    write_file(_path, (FORMAT + MAGIC_NUMBER + len(head).to_bytes(8, "little"), head, *chunks))
