"""Which files of a project directory are not its code: built-in excludes, ``.orchestraignore``
and (outside git) ``.gitignore``, with git's pattern rules.

Stage code litters its working directory: the mlflow client writes ``mlruns/`` or ``mlflow.db``,
Python writes ``__pycache__/``, notebooks ``.ipynb_checkpoints/``. None of that is code, so none
of it is part of the code digest (and so of any cache key). Inside a git work tree git itself
applies ``.gitignore`` (``git status``); :class:`Rules` adds the built-ins and ``.orchestraignore``
there, and applies ``.gitignore`` too when a plain directory is walked.

Patterns follow gitignore(5): ``#`` comments, ``!`` negation, a trailing ``/`` for directories
only, a ``/`` at the start or in the middle anchors the pattern to its file's directory, ``*``
``?`` ``[…]`` never match ``/``, ``**/`` ``/**/`` ``/**`` span directories; a later line wins,
a file deeper in the tree wins over one above, and nothing below an excluded directory comes back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

IGNORE_FILE = ".orchestraignore"
GITIGNORE = ".gitignore"
BUILTIN_DIRS = frozenset({".git", "__pycache__", ".orchestra", "mlruns", ".ipynb_checkpoints"})
BUILTIN_FILES = frozenset({"mlflow.db", "mlflow.db-journal", "mlflow.db-wal", "mlflow.db-shm"})


@dataclass(frozen=True, slots=True)
class Pattern:
    """One compiled pattern line: ``regex`` matches a path relative to the file's directory."""

    regex: re.Pattern[str]
    negate: bool
    dir_only: bool


def compile_lines(lines: list[str]) -> tuple[Pattern, ...]:
    """The patterns of one ignore file's lines (blank lines and comments dropped)."""
    patterns = []
    for raw in lines:
        line = raw.rstrip("\n").rstrip("\r")
        if not line or line.startswith("#"):
            continue
        line = _strip_trailing_spaces(line)
        negate = line.startswith("!")
        if negate:
            line = line[1:]
        elif line.startswith("\\"):
            line = line[1:] if line[1:2] in ("!", "#") else line
        dir_only = line.endswith("/")
        line = line.rstrip("/")
        if not line:
            continue
        anchored = "/" in line
        body = _translate(line.lstrip("/"))
        regex = body if anchored else f"(?:.*/)?{body}"
        patterns.append(Pattern(re.compile(f"{regex}\\Z", re.DOTALL), negate, dir_only))
    return tuple(patterns)


def _strip_trailing_spaces(line: str) -> str:
    stripped = line.rstrip(" ")
    if stripped.endswith("\\") and len(stripped) < len(line):
        return stripped[:-1] + " "  # an escaped trailing space stays
    return stripped


def _translate(glob: str) -> str:
    """gitignore glob → regex source (a path relative to the ignore file's directory)."""
    out: list[str] = []
    i, n = 0, len(glob)
    while i < n:
        c = glob[i]
        if glob.startswith("**", i):
            start_ok = i == 0 or glob[i - 1] == "/"
            end = i + 2
            if start_ok and end < n and glob[end] == "/":  # "**/" : zero or more directories
                out.append("(?:.*/)?")
                i = end + 1
                continue
            if start_ok and end == n and i > 0:  # trailing "/**": everything inside
                out.append(".*")
                i = end
                continue
            out.append("[^/]*")  # other consecutive asterisks are plain ones
            while i < n and glob[i] == "*":
                i += 1
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            close = glob.find("]", i + 2 if glob[i + 1:i + 2] in ("!", "^", "]") else i + 1)
            if close < 0:
                out.append(re.escape(c))
            else:
                inner = glob[i + 1:close]
                if inner[:1] in ("!", "^"):
                    inner = "^" + inner[1:]
                out.append("(?!/)[" + inner.replace("\\", "\\\\") + "]")
                i = close
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(glob[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


class Rules:
    """The ignore rules of one project directory.

    Args:
        root: the project directory (paths are given relative to it, with ``/``).
        gitignore: also honour ``.gitignore`` files (outside git; inside, git applies them).
    """

    def __init__(self, root: Path, *, gitignore: bool) -> None:
        self.root = root
        self.names = (GITIGNORE, IGNORE_FILE) if gitignore else (IGNORE_FILE,)
        self._cache: dict[str, tuple[Pattern, ...]] = {}

    def _patterns(self, directory: str) -> tuple[Pattern, ...]:
        found = self._cache.get(directory)
        if found is None:
            lines: list[str] = []
            for name in self.names:
                try:
                    lines += (self.root / directory / name).read_text(errors="replace").splitlines()
                except OSError:
                    pass
            found = self._cache[directory] = compile_lines(lines)
        return found

    def matches(self, rel: str, is_dir: bool) -> bool:
        """``rel`` itself is excluded (its parent directories are not looked at: see :meth:`ignored`)."""
        name = rel.rsplit("/", 1)[-1]
        if (name in BUILTIN_DIRS and is_dir) or (name in BUILTIN_FILES and not is_dir) or name.endswith(".pyc"):
            return True
        verdict = False
        parts = rel.split("/")
        for depth in range(len(parts)):  # the root's file first, the deepest last: later wins
            directory = "/".join(parts[:depth])
            sub = "/".join(parts[depth:])
            for pattern in self._patterns(directory):
                if pattern.dir_only and not is_dir:
                    continue
                if pattern.regex.match(sub):
                    verdict = not pattern.negate
        return verdict

    def ignored(self, rel: str) -> bool:
        """A file ``rel`` is excluded, itself or through one of its directories."""
        parts = rel.split("/")
        for depth in range(1, len(parts)):
            if self.matches("/".join(parts[:depth]), True):
                return True
        return self.matches(rel, False)
