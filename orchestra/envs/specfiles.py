"""conda.yaml and python_env.yaml → frozen values, with errors naming the file and key path.

Also MLflow's conversion of a conda.yaml for a virtualenv/uv environment manager
(``_PythonEnv.get_dependencies_from_conda_yaml``): only ``python``, ``pip``, ``setuptools`` and
``wheel`` carry over from the conda dependencies, plus the ``pip:`` list; the rest is dropped.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from orchestra.core import yamlguard
from orchestra.core.errors import EnvError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

CURRENT_PYTHON = ".".join(map(str, sys.version_info[:3]))
# MLflow's _CONDA_DEPENDENCY_REGEX: the conda packages a python_env can stand in for.
_MLFLOW_CONDA_DEP = re.compile(r"^(?P<package>python|pip|setuptools|wheel)"
                               r"(?P<operator><|>|<=|>=|=|==|!=)?(?P<version>[\d.]+)?$")


@dataclass(frozen=True, slots=True)
class CondaSpec:
    """A parsed conda.yaml.

    Attributes:
        file: the spec file.
        name: the ``name:`` field (informational).
        channels: absolute channel URIs (paths made ``file://`` relative to the MLproject dir).
        dependencies: conda match specs, as written.
        pip: the ``pip:`` list (requirement lines), empty when there is none.
        variables: the ``variables:`` mapping (set in the stage's environment, as conda activate does).
    """

    file: Path
    name: str | None
    channels: tuple[str, ...]
    dependencies: tuple[str, ...]
    pip: tuple[str, ...] = ()
    variables: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class PythonEnvSpec:
    """A parsed python_env.yaml (MLflow's keys)."""

    file: Path | None
    python: str
    build_dependencies: tuple[str, ...] = ()
    dependencies: tuple[str, ...] = ()

    @property
    def requirements(self) -> tuple[str, ...]:
        return self.build_dependencies + self.dependencies


def display(file: Path, project_root: Path) -> str:
    """The file as the user wrote it: relative to the project when inside it."""
    try:
        return str(file.relative_to(project_root))
    except ValueError:
        return str(file)


def read_yaml(file: Path, shown: str) -> Any:
    import yaml

    try:
        text = file.read_text()
    except OSError as exc:
        raise EnvError(f"cannot read the environment file ({exc.strerror})", where=shown) from None
    yamlguard.check(text, shown, EnvError)
    try:
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise EnvError(f"not valid YAML{at}: {getattr(exc, 'problem', None) or exc}", where=shown) from None


def channel_uri(channel: str, project_root: Path) -> str:
    """An absolute channel URI: URLs as given, paths (``./ch``, ``/srv/ch``, ``file:ch``) as file://.

    A bare name (``conda-forge``) means anaconda.org, as in conda.
    """
    parsed = urlparse(channel)
    if parsed.scheme in ("http", "https", "s3", "gcs", "oci"):
        return channel
    if parsed.scheme == "file":
        path = Path(parsed.path) if parsed.netloc in ("", "localhost") else Path("/" + parsed.netloc + parsed.path)
        return (project_root / path).resolve().as_uri() if not path.is_absolute() else path.as_uri()
    if channel.startswith(("/", "./", "../", "~")) or channel in (".", ".."):
        return (project_root / Path(channel).expanduser()).resolve().as_uri()
    return f"https://conda.anaconda.org/{channel}"


def parse_conda(file: Path, project_root: Path) -> CondaSpec:
    """Parse a conda environment file (``name``, ``channels``, ``dependencies`` with ``pip:``)."""
    shown = display(file, project_root)
    data = read_yaml(file, shown)
    if not isinstance(data, dict):
        raise EnvError("must be a mapping with name, channels and dependencies", where=shown)
    unknown = sorted(set(data) - {"name", "channels", "dependencies", "prefix", "variables"})
    if unknown:
        raise EnvError(f"unknown key '{unknown[0]}'", where=f"{shown}: {unknown[0]}",
                       hint="allowed: name, channels, dependencies, prefix, variables")
    name = data.get("name")
    if name is not None and not isinstance(name, str):
        raise EnvError("must be a string", where=f"{shown}: name")
    channels = data.get("channels") or []
    if not isinstance(channels, list):
        raise EnvError("must be a list of channel names, paths or URLs", where=f"{shown}: channels")
    uris = []
    for i, channel in enumerate(channels):
        if not isinstance(channel, str) or not channel.strip():
            raise EnvError("must be a channel name, path or URL", where=f"{shown}: channels[{i}]")
        uris.append(channel_uri(channel.strip(), file.parent))
    deps = data.get("dependencies") or []
    if not isinstance(deps, list):
        raise EnvError("must be a list of package specs", where=f"{shown}: dependencies")
    conda: list[str] = []
    pip: list[str] = []
    for i, dep in enumerate(deps):
        where = f"{shown}: dependencies[{i}]"
        if isinstance(dep, str) and dep.strip():
            conda.append(dep.strip())
        elif isinstance(dep, (int, float)) and not isinstance(dep, bool):
            conda.append(str(dep))
        elif isinstance(dep, dict) and set(dep) == {"pip"}:
            items = dep["pip"] or []
            if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
                raise EnvError("must be a list of pip requirement strings", where=f"{where}.pip")
            pip.extend(x.strip() for x in items if x.strip())
        else:
            raise EnvError(f"must be a package spec string or {{pip: [...]}}, got {dep!r}", where=where)
    variables = data.get("variables") or {}
    if not isinstance(variables, dict) or not all(isinstance(k, str) and isinstance(v, (str, int, float))
                                                  and not isinstance(v, bool) for k, v in variables.items()):
        raise EnvError("must be a mapping of variable names to strings", where=f"{shown}: variables")
    if not uris and conda:
        raise EnvError("no channels given", where=f"{shown}: channels",
                       hint="list the channels to solve from: a name, a path or a URL")
    # Match specs are checked by the solver (importing rattler here would slow the warm path).
    return CondaSpec(file=file, name=name, channels=tuple(uris), dependencies=tuple(conda), pip=tuple(pip),
                     variables=tuple((k, str(v)) for k, v in variables.items()))


def _str_list(data: dict, key: str, shown: str) -> tuple[str, ...]:
    value = data.get(key) or []
    if not isinstance(value, list):
        raise EnvError("must be a list of pip requirement strings", where=f"{shown}: {key}")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise EnvError(f"must be a pip requirement string, got {item!r}", where=f"{shown}: {key}[{i}]")
    return tuple(item.strip() for item in value)


def parse_python_env(file: Path, project_root: Path) -> PythonEnvSpec:
    """Parse MLflow's python_env.yaml: ``python``, ``build_dependencies``, ``dependencies``."""
    shown = display(file, project_root)
    data = read_yaml(file, shown)
    if not isinstance(data, dict):
        raise EnvError("must be a mapping with python, build_dependencies and dependencies", where=shown)
    unknown = sorted(set(data) - {"python", "build_dependencies", "dependencies"})
    if unknown:
        raise EnvError(f"unknown key '{unknown[0]}'", where=f"{shown}: {unknown[0]}",
                       hint="allowed: python, build_dependencies, dependencies")
    python = data.get("python")
    if python is None:
        raise EnvError("missing", where=f"{shown}: python", hint="a Python version such as '3.11' or '3.11.7'")
    python = str(python).strip()
    if not re.fullmatch(r"\d+(\.\d+){0,2}", python):
        raise EnvError(f"'{python}' is not a Python version", where=f"{shown}: python",
                       hint="a version such as '3.11' or '3.11.7'")
    return PythonEnvSpec(file=file, python=python, build_dependencies=_str_list(data, "build_dependencies", shown),
                         dependencies=_str_list(data, "dependencies", shown))


def conda_to_python_env(spec: CondaSpec, project_root: Path) -> tuple[PythonEnvSpec, tuple[str, ...], str | None]:
    """MLflow's rule for running a conda.yaml project with virtualenv/uv.

    Returns:
        The python env, the conda dependencies dropped, and a warning (or None).
    """
    shown = display(spec.file, project_root)
    python = None
    build: list[str] = []
    dropped: list[str] = []
    for i, dep in enumerate(spec.dependencies):
        match = _MLFLOW_CONDA_DEP.match(dep.replace(" ", ""))
        if not match:
            dropped.append(dep)
            continue
        package, operator, version = match.group("package", "operator", "version")
        if package == "python" and python is None:
            if operator is None or version is None:
                raise EnvError(f"'{dep}': python must be pinned for --env-manager uv/virtualenv",
                               where=f"{shown}: dependencies[{i}]", hint="e.g. python=3.11")
            if operator in ("<", ">", "!="):
                raise EnvError(f"'{dep}': invalid version comparator '{operator}' for python",
                               where=f"{shown}: dependencies[{i}]", hint="one of <=, >=, =, ==")
            python = version
            continue
        if package != "python":
            build.append(package + ("==" if operator == "=" else (operator or "")) + (version or ""))
    notes = []
    if python is None:
        python = CURRENT_PYTHON
        notes.append(f"no python version in it, using the current one ({python})")
    if dropped:
        notes.append("conda packages not installed: " + ", ".join(dropped))
    warning = f"{shown}: converted for uv (MLflow's rule); " + "; ".join(notes) if notes else None
    return (PythonEnvSpec(file=spec.file, python=python, build_dependencies=tuple(build), dependencies=spec.pip),
            tuple(dropped), warning)
