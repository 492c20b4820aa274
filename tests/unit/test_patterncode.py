"""Regular expressions served from the pattern-code cache are the patterns ``re`` compiles: same
code (``Pattern.__eq__`` compares it), groups, flags and matches; the file is tied to the
interpreter and survives between processes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from orchestra.core import patterncode

REPO = Path(__file__).resolve().parents[2]

PATTERNS = [
    (r"^( *)(?:([A-Za-z0-9_][\w.\-/]*):(?: +|$))?(.*)$", 0, ["  key: value", "plain", "a/b.c-d:"]),
    (r"(?P<package>python|pip)(?P<operator><|>|<=|>=|==)?(?P<version>[\d.]*)", 0, ["pip>=23.1", "python"]),
    (r"(?<=\$)\{(?P<name>\w+)\}", 0, ["${x} and ${y_2}", "{x}"]),
    (r"caf\u00e9|na\u00efve", re.IGNORECASE, ["CAFÉ", "Naïve", "cafe"]),
    (r"^\s*#.*$", re.MULTILINE, ["a\n  # c\nb"]),
    (r"a.b", re.DOTALL, ["a\nb"]),
    (r"""\d+ # digits
         (\.\d+)? # fraction""", re.VERBOSE, ["3.14", "42"]),
    (r"\w+", re.ASCII, ["héllo wörld"]),
    (rb"[\x00-\x1f]+|\xff", 0, [b"ab\x01\x02c\xff"]),
    (r"(a)(b)?(?(2)c|d)", 0, ["abc", "ad"]),
    (r"(?i:x)y", 0, ["Xy", "XY"]),
]


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """An empty in-memory table and a cache file under ``tmp_path`` (no other test's entries)."""
    monkeypatch.setattr(patterncode, "_cache", {})
    monkeypatch.setattr(patterncode, "_new", {})
    monkeypatch.setattr(patterncode, "_path", str(tmp_path / "pattern-code.bin"))
    from re import _compiler

    if getattr(_compiler.compile, "__wrapped__", None) is None:  # (the CLI's import installed it, or not)
        monkeypatch.setattr(_compiler, "_sre", patterncode._Engine(_compiler._sre))
        monkeypatch.setattr(_compiler, "compile", patterncode._through_cache(_compiler.compile))
    return _compiler


@pytest.mark.parametrize(("pattern", "flags", "samples"), PATTERNS)
def test_a_pattern_from_the_cache_is_the_one_re_compiles(fresh, pattern, flags, samples):
    plain = fresh.compile.__wrapped__(pattern, flags)
    recorded = fresh.compile(pattern, flags)  # a miss: compiled as usual, its arguments kept
    assert (pattern, int(flags)) in patterncode._new
    served = fresh.compile(pattern, flags)  # a hit: built from the kept arguments
    assert served is not recorded
    for compiled in (recorded, served):
        assert compiled == plain
        assert (compiled.pattern, compiled.flags, compiled.groups, dict(compiled.groupindex)) == \
               (plain.pattern, plain.flags, plain.groups, dict(plain.groupindex))
        for sample in samples:
            assert [m.groups() for m in compiled.finditer(sample)] == [m.groups() for m in plain.finditer(sample)]
            assert [m.span() for m in compiled.finditer(sample)] == [m.span() for m in plain.finditer(sample)]


def test_debug_patterns_and_parsed_patterns_are_never_kept(fresh, capsys):
    fresh.compile("ab+", re.DEBUG)
    assert capsys.readouterr().out  # re.DEBUG printed, as without the cache
    assert not patterncode._new


def test_a_file_of_another_interpreter_or_engine_is_ignored(fresh, monkeypatch):
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    fresh.compile(r"x+y", 0)
    patterncode._save()
    assert patterncode._read(patterncode._path)
    blob = Path(patterncode._path).read_bytes()
    Path(patterncode._path).write_bytes(blob.replace(sys.version.encode(), b"3.99.0 (another)", 1))
    assert patterncode._read(patterncode._path) == {}
    Path(patterncode._path).write_bytes(blob[: len(blob) // 2])  # torn
    assert patterncode._read(patterncode._path) == {}


_CHILD = """
import re, sys
from orchestra.core import patterncode
patterncode.install()
before = (r"(?P<word>\\w+)-(\\d+)", 0) in patterncode._cache
p = re.compile(r"(?P<word>\\w+)-(\\d+)")
print(before, *p.match("ab-12").group("word", 2))
"""


def test_the_cache_is_written_by_one_process_and_read_by_the_next(tmp_path):
    env = {**os.environ, "PYTHONPYCACHEPREFIX": str(tmp_path / "pycache"), "PYTHONPATH": str(REPO)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("ORCHESTRA_NO_PATTERN_CODE_CACHE", None)
    first = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, check=True)
    second = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, check=True)
    assert first.stdout.split() == ["False", "ab", "12"]
    assert second.stdout.split() == ["True", "ab", "12"]
    assert list((tmp_path / "pycache").rglob("pattern-code.*.bin"))


def test_the_variable_turns_it_off(tmp_path):
    env = {**os.environ, "PYTHONPYCACHEPREFIX": str(tmp_path / "pycache"), "PYTHONPATH": str(REPO),
           "ORCHESTRA_NO_PATTERN_CODE_CACHE": "1"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    code = ("import re._compiler as c\nfrom orchestra.core import patterncode\npatterncode.install()\n"
            "import re\nre.compile('x(y)z')\nprint(hasattr(c.compile, '__wrapped__'), patterncode._path)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "None"]
    assert not list((tmp_path / "pycache").rglob("pattern-code.*.bin"))
