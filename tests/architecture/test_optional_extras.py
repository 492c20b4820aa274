"""The runtime dependencies are what a plain run needs; the rest are extras, imported lazily.

``orchestra/core/extras.py`` names each optional package and the extra that brings it. Checked
here: none of them is a runtime dependency, each extra it names exists, the ``test`` extra lists
every other extra's requirements but ``mlflow``'s (kept in a venv of its own) so the test command
runs every test, and no module of orchestra imports an optional package at its top (only inside
the function that needs it, through ``extras.load`` or a check before the work starts).
"""

from __future__ import annotations

import ast
import re
import tomllib

from orchestra.core.extras import OPTIONAL
from tests.architecture.imports import modules
from tests.conftest import REPO_ROOT

PROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~;\s]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_no_optional_package_is_a_runtime_dependency():
    runtime = {_name(r) for r in PROJECT["dependencies"]}
    optional = {_name(distribution) for distribution, _extra in OPTIONAL.values()}
    assert not runtime & optional
    assert {"pandas", "py-rattler", "conda-lock", "uv", "grandalf"} <= optional


def test_each_named_extra_brings_its_package_and_test_brings_every_extra():
    extras = PROJECT["optional-dependencies"]
    for distribution, extra in OPTIONAL.values():
        assert _name(distribution) in {_name(r) for r in extras[extra]}, (distribution, extra)
    test = set(extras["test"])
    for extra, requirements in extras.items():
        if extra not in ("test", "mlflow"):
            assert set(requirements) <= test, (extra, set(requirements) - test)


def test_optional_packages_are_imported_inside_functions_only():
    tops = {module.partition(".")[0] for module in OPTIONAL}
    found = []
    for name, path in modules().items():
        for node in ast.parse(path.read_text()).body:  # module level only
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                targets = [node.module or ""]
            else:
                continue
            found += [f"{name}:{node.lineno} imports {t}" for t in targets if t.partition(".")[0] in tops]
    assert not found, found
