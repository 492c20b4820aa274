"""The package's import graph has no circle, at any depth, and stays within its size budget.

The layer order itself is checked by import-linter (``lint-imports``, configured in
pyproject.toml and run by .ci/run); this test needs nothing but the source.
"""

from __future__ import annotations

import ast

from tests.architecture.imports import PACKAGE_ROOT, cycles, graph, modules

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


def _collapse(edges: dict[str, set[str]], package: str) -> dict[str, set[str]]:
    """Edges between the direct children of ``package`` (modules inside them merged)."""
    depth = package.count(".") + 2

    def child(name: str) -> str | None:
        if not name.startswith(package + "."):
            return None
        return ".".join(name.split(".")[:depth])

    out: dict[str, set[str]] = {}
    for source, targets in edges.items():
        a = child(source)
        if a is None:
            continue
        for target in targets:
            b = child(target)
            if b is not None and b != a:
                out.setdefault(a, set()).add(b)
        out.setdefault(a, set())
    return out


def test_no_import_circle_between_modules():
    found = cycles(graph())
    assert not found, f"import circles (TYPE_CHECKING and function-local imports count): {found}"


def test_no_import_circle_between_sibling_packages():
    edges = graph()
    packages = sorted({name for name, path in modules().items() if path.name == "__init__.py"})
    problems = {p: c for p in packages if (c := cycles(_collapse(edges, p)))}
    assert not problems, f"circles between the parts of a package: {problems}"


def test_scanner_sees_function_local_and_type_checking_imports(tmp_path):
    # The scan is only worth something if it counts the imports that hid the old circles.
    from tests.architecture import imports

    edges = imports.graph()
    assert "orchestra.core.errors" in edges["orchestra.cli"]
    source = (PACKAGE_ROOT / "integrations" / "hooks" / "__init__.py").read_text()
    assert "TYPE_CHECKING" in source
    assert "orchestra.core.options" in edges["orchestra.integrations.hooks"]


def test_modules_and_functions_stay_small():
    big_modules, big_functions = [], []
    for name, path in modules().items():
        text = path.read_text()
        if text.count("\n") > MAX_MODULE_LINES:
            big_modules.append(f"{name} ({text.count(chr(10))} lines)")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    big_functions.append(f"{name}.{node.name} ({length} lines)")
    assert not big_modules, f"modules over {MAX_MODULE_LINES} lines: {big_modules}"
    assert not big_functions, f"functions over {MAX_FUNCTION_LINES} lines: {big_functions}"
