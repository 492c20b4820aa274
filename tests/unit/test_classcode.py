"""The compiled code of orchestra's dataclasses is kept across processes, like bytecode.

Each test runs real interpreters with ``PYTHONPYCACHEPREFIX`` pointing at a temporary
directory, so the cache they read and write is the test's own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PROBE = r"""
import dataclasses, json
import orchestra.cli  # the console script's module installs the cache
import orchestra.core.classcode as cc
import orchestra.core.options as options

@dataclasses.dataclass(frozen=True)
class NotOurs:
    zz_not_ours_field: int = 1

sel = options.Selection()
try:
    sel.version = "other"
    frozen = False
except dataclasses.FrozenInstanceError:
    frozen = True
print(json.dumps({"path": cc.cache_path(), "compiled": len(cc._new), "cached": len(cc._cache), "frozen": frozen,
                  "eq": options.Selection() == sel, "hash": hash(options.Selection()) == hash(sel), "repr": repr(sel),
                  "not_ours": NotOurs() == NotOurs() and not any("zz_not_ours_field" in k for k in cc._cache)}))
"""


def _probe(tmp_path: Path, **env: str) -> dict:
    full = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "ORCHESTRA_NO_CLASS_CODE_CACHE")}
    full.update({"PYTHONPYCACHEPREFIX": str(tmp_path / "pycache"), **env})
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=full, check=True, timeout=120)
    return json.loads(out.stdout)


def test_the_second_process_compiles_nothing_and_gets_the_same_classes(tmp_path):
    first = _probe(tmp_path)
    cache = Path(first["path"])
    assert str(cache).startswith(str(tmp_path / "pycache")) and cache.is_file()
    assert first["compiled"] > 10  # Selection and the others of options.py, compiled and written
    second = _probe(tmp_path)
    assert second["compiled"] == 0 and second["cached"] >= first["compiled"]
    for result in (first, second):
        assert result["frozen"] and result["eq"] and result["hash"] and result["repr"].startswith("Selection(")
        assert result["not_ours"]  # a class outside orchestra is compiled by Python as always


def test_a_torn_cache_file_is_ignored_and_rewritten(tmp_path):
    cache = Path(_probe(tmp_path)["path"])
    cache.write_bytes(cache.read_bytes()[:100])
    again = _probe(tmp_path)
    assert again["compiled"] > 10 and again["frozen"] and again["eq"]
    assert _probe(tmp_path)["compiled"] == 0  # rewritten whole


def test_nothing_is_written_when_bytecode_writing_is_off_or_the_cache_is_disabled(tmp_path):
    first = _probe(tmp_path, PYTHONDONTWRITEBYTECODE="1")
    assert first["compiled"] > 10 and not Path(first["path"]).exists()
    off = _probe(tmp_path, ORCHESTRA_NO_CLASS_CODE_CACHE="1")
    assert off["cached"] == 0 and off["frozen"] and off["eq"] and not Path(off["path"]).exists()


API_PROBE = r"""
import json, sys
from orchestra.app import api  # a program using the API, not the CLI
import orchestra.core.classcode as cc
print(json.dumps({"compiled": len(cc._new), "cached": len(cc._cache), "cli": "orchestra.cli" in sys.modules}))
"""


def test_a_program_using_the_api_reads_the_cache_too(tmp_path):
    """``orchestra.app`` installs the cache: planning through ``api.plan`` in a new process (the
    planning benchmark, a notebook) compiles none of the run path's ~60 dataclasses once it is written."""
    full = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "ORCHESTRA_NO_CLASS_CODE_CACHE")}
    full["PYTHONPYCACHEPREFIX"] = str(tmp_path / "pycache")
    runs = [json.loads(subprocess.run([sys.executable, "-c", API_PROBE], capture_output=True, text=True, env=full,
                                      check=True, timeout=120).stdout) for _ in range(2)]
    assert not runs[0]["cli"] and runs[0]["compiled"] > 40
    assert runs[1]["compiled"] == 0 and runs[1]["cached"] >= runs[0]["compiled"]


MARKERS_PROBE = r"""
import json, sys, types
import orchestra.cli  # installs the cache and the annotation check
import dataclasses
module = types.ModuleType("orchestra.probe_markers")
sys.modules[module.__name__] = module
exec('''
from __future__ import annotations
import dataclasses, typing
from dataclasses import InitVar, KW_ONLY
from typing import ClassVar

@dataclasses.dataclass(frozen=True)
class Marked:
    "Every marker, written the ways orchestra may write them."
    a: int
    kind: ClassVar[str] = "k"
    kind2: typing.ClassVar[int] = 2
    seed: InitVar[int] = 0
    _: KW_ONLY
    b: int = 1

    def __post_init__(self, seed: int) -> None:
        object.__setattr__(self, "a", self.a + seed)
''', module.__dict__)
Marked = module.Marked
m = Marked(1, seed=5, b=3)
print(json.dumps({"fields": [f.name for f in dataclasses.fields(Marked)], "a": m.a, "b": m.b,
                  "kind": Marked.kind, "hooked": dataclasses._is_type.__qualname__}))
"""


def test_classvar_initvar_and_kw_only_still_mean_what_they_say(tmp_path):
    full = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "ORCHESTRA_NO_CLASS_CODE_CACHE")}
    full["PYTHONPYCACHEPREFIX"] = str(tmp_path / "pycache")
    out = json.loads(subprocess.run([sys.executable, "-c", MARKERS_PROBE], capture_output=True, text=True, env=full,
                                    check=True, timeout=120).stdout)
    assert out == {"fields": ["a", "b"], "a": 6, "b": 3, "kind": "k", "hooked": "_by_name.<locals>.check"}
