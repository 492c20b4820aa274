"""The optional packages: which extra of ``pyproject.toml`` brings each, and the one-line error
when one is missing.

A plain run needs none of them; each is imported only inside the function that uses it, through
:func:`load` (or checked with :func:`installed` where the import happens in another process), so
a missing one fails as ``<where>: <what> needs <package>, which is not installed (pip install
'orchestra[<extra>]')``, exit 2, instead of a traceback.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from orchestra.core.errors import MissingExtraError

# import name → (distribution, extra)
OPTIONAL = {
    "rattler": ("py-rattler", "conda"),
    "conda_lock": ("conda-lock", "conda"),
    "uv": ("uv", "python-env"),
    "pandas": ("pandas", "pandas"),
    "grandalf": ("grandalf", "svg"),
    "PIL": ("Pillow", "png"),
}


def missing(module: str, needs: str, *, where: str | None = None, extra: str | None = None,
            alternative: str | None = None) -> MissingExtraError:
    """The error for ``needs`` (what the user asked for, e.g. "solving a conda environment")
    lacking ``module``; ``extra`` overrides the module's own extra, ``alternative`` is another fix
    ("or use --format svg")."""
    distribution, own_extra = OPTIONAL[module]
    hint = f"pip install 'orchestra[{extra or own_extra}]'" + (f", {alternative}" if alternative else "")
    return MissingExtraError(f"{needs} needs {distribution}, which is not installed", where=where, hint=hint)


def installed(module: str) -> bool:
    """Whether ``module`` can be found, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def load(module: str, needs: str, **kwargs: str | None) -> ModuleType:
    """``import module`` (a dotted name is fine), or :func:`missing`'s error when its package is
    absent. An ImportError about another module (a broken install) is not hidden."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        if exc.name is not None and exc.name.split(".")[0] != top:
            raise
        raise missing(top, needs, **kwargs) from None
