"""Function-local imports of orchestra's own modules only keep a subsystem off the run's path.

Imports belong at the top of a module, where they can be seen. The exceptions are the CLI (it
imports only the verb it runs, so `orchestra --help` stays fast) and imports that defer a whole
subsystem a plain run does not use (Dask, webhooks, the MLflow mirror, the scheduler, the conda
and uv builders). This test runs a real one-stage `orchestra run`, records every module it
imports, and fails on a function-local import (outside cli/) of a module that run imports
anyway: deferring it saves nothing, so it must move to the top.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys

from tests.architecture.imports import PACKAGE_ROOT, modules, module_name


def _imported_by_a_plain_run(tmp_path, prefix: str = "orchestra") -> set[str]:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "MLproject").write_text('entry_points:\n  main:\n    command: "true"\n')
    # main() is what the console script runs (run_main then ends the process without teardown).
    return _imported_by(tmp_path, ["run", str(project), "-q"], prefix)


def _imported_by(tmp_path, argv: list[str], prefix: str = "orchestra") -> set[str]:
    """The modules loaded once ``orchestra <argv>`` has run in a fresh interpreter. Without
    ``site`` (-S: a ``.pth`` file of the installation may import anything at start-up), on this
    process's ``sys.path``."""
    env = {**os.environ, "ORCHESTRA_HOME": str(tmp_path / "home"),
           "PYTHONPATH": os.pathsep.join(path for path in sys.path if path)}
    code = ("import sys\nfrom orchestra.cli import main\n"
            "try:\n    assert not main(sys.argv[1:])\nexcept SystemExit as end:\n    assert not end.code\n"
            f"print('\\n--modules--\\n' + '\\n'.join(m for m in sys.modules if m.startswith({prefix!r})))")
    out = subprocess.run([sys.executable, "-S", "-c", code, *argv], capture_output=True, text=True, env=env,
                         timeout=120, check=True).stdout
    return set(out.rpartition("\n--modules--\n")[2].split())  # what follows what the command printed


def _function_local_imports():
    known = set(modules())
    for name, path in modules().items():
        if name.startswith("orchestra.cli"):
            continue
        tree = ast.parse(path.read_text())
        for func in ast.walk(tree):
            if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(func):
                if isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").startswith("orchestra"):
                    for alias in node.names:
                        target = f"{node.module}.{alias.name}"
                        yield name, node.lineno, target if target in known else node.module


def test_function_local_imports_only_defer_what_a_plain_run_does_not_load(tmp_path):
    loaded = _imported_by_a_plain_run(tmp_path)
    assert "orchestra.app.session" in loaded and "orchestra.execution.engine" in loaded
    needless = sorted(f"{module}:{line} imports {target}" for module, line, target in _function_local_imports()
                      if target in loaded)
    assert not needless, ("function-local imports of modules every run loads anyway (move them to the top): "
                          + "; ".join(needless))


def test_the_scan_reads_this_repository():
    assert module_name(PACKAGE_ROOT / "app" / "session.py") == "orchestra.app.session"


# What a plain local run must not import: each is only needed on another path, and each costs
# its share of every run's fixed cost (inspect with ast, dis and tokenize ~5 ms; logging ~3 ms,
# it comes with concurrent.futures too). `orchestra.core.classcode` keeps `inspect` away from
# `dataclasses`; `orchestra.core.log` imports `logging` when something logs; OpenSSL's start-up
# (hashlib, hmac, secrets: ~3 ms) waits for a file over 1 MiB to hash (`orchestra.core.digest`).
# `typing` (~2-3 ms) is for type checkers: names only annotations use are imported under
# `if TYPE_CHECKING:`, the protocols are defined there, the ABCs come from `collections.abc`.
NOT_ON_THE_RUN_PATH = ("yaml", "inspect", "logging", "concurrent.futures", "difflib", "getpass", "hashlib", "_hashlib", "socket",
                       "hmac", "secrets", "ctypes", "gettext", "typing",
                       "orchestra.source.git",
                       "orchestra.execution.container", "orchestra.mlproject.docker_spec")


def test_a_plain_run_imports_only_what_it_uses(tmp_path):
    loaded = _imported_by_a_plain_run(tmp_path, prefix="")
    assert "orchestra.execution.engine" in loaded and "dataclasses" in loaded
    assert not [name for name in NOT_ON_THE_RUN_PATH if name in loaded]


def test_help_imports_only_what_it_uses(tmp_path):
    loaded = _imported_by(tmp_path, ["--help"], prefix="")
    assert "orchestra.cli.runs" in loaded and "argparse" in loaded
    assert not [name for name in NOT_ON_THE_RUN_PATH if name in loaded]


def test_every_dataclass_has_a_docstring():
    """``dataclasses`` makes a docstring from ``inspect.signature`` for a class without one, and
    that imports ``inspect`` into every run (see ``orchestra/core/classcode.py``)."""
    missing = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(
                    (isinstance(d, ast.Call) and getattr(d.func, "id", None) == "dataclass")
                    or getattr(d, "id", None) == "dataclass" for d in node.decorator_list):
                if not ast.get_docstring(node):
                    missing.append(f"{name}.{node.name}")
    assert not missing, "dataclasses without a docstring: " + ", ".join(missing)


def test_no_dataclass_field_is_a_classvar():
    """A run does not import ``typing``, and ``dataclasses`` recognizes a ``ClassVar`` annotation
    only while ``typing`` is loaded: without it, the class variable would become a field."""
    found = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any("dataclass" in ast.unparse(d) for d in node.decorator_list):
                found += [f"{name}.{node.name}:{item.lineno}" for item in node.body
                          if isinstance(item, ast.AnnAssign) and "ClassVar" in ast.unparse(item.annotation)]
    assert not found, "dataclass fields annotated ClassVar: " + ", ".join(found)


def test_no_module_renames_classvar_initvar_or_kw_only():
    """``orchestra.core.classcode`` answers dataclasses' marker check by the marker's name: a
    module binding ``ClassVar``, ``InitVar`` or ``KW_ONLY`` to another name would defeat it."""
    markers = {"ClassVar", "InitVar", "KW_ONLY"}
    renamed = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                renamed += [f"{name}:{node.lineno}" for alias in node.names
                            if alias.name in markers and alias.asname not in (None, alias.name)]
            elif isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, (ast.Name, ast.Attribute)):
                value = node.value.id if isinstance(node.value, ast.Name) else node.value.attr
                if value in markers:
                    renamed.append(f"{name}:{node.lineno}")
    assert not renamed, "ClassVar, InitVar or KW_ONLY bound to another name: " + ", ".join(renamed)
