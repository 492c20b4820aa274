"""orchestra's modules are read from one cache file per command, and never stale.

Each test runs real interpreters on a copy of the package in a temporary directory (its own
``__pycache__``, so the caches they read and write are the test's own), and edits that copy.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import orchestra

PROBE = r"""
import json, sys
from orchestra.cli import main
import orchestra.core.modulecode as mc
main(["run", sys.argv[1], "--dry-run", "-q"])
from orchestra.planning import plan
cached = sorted(name for name, module in sys.modules.items()
                if isinstance(getattr(module, "__loader__", None), mc._Loader) and module.__loader__.cached)
print(json.dumps({"path": mc._path, "new": len(mc._new), "cached": cached, "file": plan.__file__,
                  "edited": getattr(plan, "EDITED", None), "source": plan.__loader__.get_source(plan.__name__)[:3]}))
"""


def _tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    shutil.copytree(Path(orchestra.__file__).parent, root / "orchestra",
                    ignore=shutil.ignore_patterns("__pycache__", "*.bin"))
    project = tmp_path / "proj"
    project.mkdir()
    (project / "MLproject").write_text('entry_points:\n  main:\n    command: "true"\n')
    return root


def _probe(root: Path, **env: str) -> dict:
    full = {k: v for k, v in os.environ.items()
            if k not in ("PYTHONDONTWRITEBYTECODE", "ORCHESTRA_NO_MODULE_CODE_CACHE", "PYTHONPYCACHEPREFIX")}
    full.update({"PYTHONPATH": str(root), "ORCHESTRA_HOME": str(root.parent / "home"), **env})
    out = subprocess.run([sys.executable, "-c", PROBE, str(root.parent / "proj")], capture_output=True, text=True,
                         env=full, check=True, timeout=120, cwd=root.parent)
    return json.loads(out.stdout)


def test_the_second_process_reads_its_modules_from_the_cache(tmp_path):
    root = _tree(tmp_path)
    first = _probe(root)
    assert first["path"] == str(root / "orchestra" / "__pycache__" / f"module-code.run.{sys.implementation.cache_tag}.bin")
    assert first["new"] > 40 and not first["cached"] and Path(first["path"]).is_file()
    second = _probe(root)
    assert second["new"] == 0 and len(second["cached"]) >= first["new"]
    assert "orchestra.app.session" in second["cached"] and "orchestra.planning.plan" in second["cached"]
    assert second["file"] == str(root / "orchestra" / "planning" / "plan.py")  # __file__, get_source as usual
    assert second["source"] == first["source"] == '"""'


def test_an_edited_module_is_imported_from_its_source_and_its_entry_replaced(tmp_path):
    root = _tree(tmp_path)
    _probe(root)
    _probe(root)
    with open(root / "orchestra" / "planning" / "plan.py", "a") as fh:
        fh.write("\nEDITED = 1\n")
    edited = _probe(root)
    assert edited["edited"] == 1 and "orchestra.planning.plan" not in edited["cached"] and edited["new"] == 1
    again = _probe(root)
    assert again["edited"] == 1 and "orchestra.planning.plan" in again["cached"] and again["new"] == 0


def test_a_copied_tree_never_runs_the_code_of_the_tree_it_was_copied_from(tmp_path):
    """A checkout copied with its caches (``cp -r``) names the other tree's files in them: its own are read."""
    root = _tree(tmp_path)
    _probe(root)
    copy = tmp_path / "copy" / "tree"
    shutil.copytree(root, copy)
    shutil.copytree(tmp_path / "proj", tmp_path / "copy" / "proj")
    with open(copy / "orchestra" / "planning" / "plan.py", "a") as fh:
        fh.write("\nEDITED = 2\n")
    os.utime(copy / "orchestra" / "planning" / "plan.py", ns=(0, 0))
    result = _probe(copy)
    assert result["edited"] == 2 and result["file"] == str(copy / "orchestra" / "planning" / "plan.py")
    assert not result["cached"]  # every entry named the first tree's files


def test_a_torn_file_is_ignored_and_nothing_is_written_when_bytecode_writing_is_off(tmp_path):
    root = _tree(tmp_path)
    cache = Path(_probe(root)["path"])
    cache.write_bytes(cache.read_bytes()[:100])
    torn = _probe(root)
    assert not torn["cached"] and torn["new"] > 40
    assert _probe(root)["new"] == 0  # rewritten whole
    cache.unlink()
    off = _probe(root, PYTHONDONTWRITEBYTECODE="1")
    assert off["new"] == 0 and not off["cached"] and not cache.exists()
    disabled = _probe(root, ORCHESTRA_NO_MODULE_CODE_CACHE="1")
    assert disabled["path"] is None and not cache.exists()


API_PROBE = r"""
import json, sys
from orchestra.app import api  # a program using the API, not the CLI
import orchestra.core.modulecode as mc
print(json.dumps({"path": mc._path, "new": len(mc._new), "cli": "orchestra.cli" in sys.modules,
                  "cached": isinstance(api.__loader__, mc._Loader) and api.__loader__.cached is not None}))
"""


def test_a_program_using_the_api_reads_its_own_cache(tmp_path):
    root = _tree(tmp_path)
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONDONTWRITEBYTECODE", "ORCHESTRA_NO_MODULE_CODE_CACHE", "PYTHONPYCACHEPREFIX")}
    env["PYTHONPATH"] = str(root)
    runs = [json.loads(subprocess.run([sys.executable, "-c", API_PROBE], capture_output=True, text=True, env=env,
                                      check=True, timeout=120, cwd=tmp_path).stdout) for _ in range(2)]
    assert runs[0]["path"].endswith(f"module-code.api.{sys.implementation.cache_tag}.bin") and not runs[0]["cli"]
    assert runs[0]["new"] > 30 and not runs[0]["cached"]
    assert runs[1]["new"] == 0 and runs[1]["cached"]
