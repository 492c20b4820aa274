"""Parameter values: ``-P`` parsing, scoping, typed conversion, command rendering.

Values stay strings on the command line (as in MLflow, shell-quoted), but each is converted to
its declared type first: a wrong value is an error before anything runs, and cache keys use the
typed value (``0.50`` and ``0.5`` are the same float).
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse, urlsplit, urlunsplit
from _string import formatter_parser  # what string.Formatter().parse calls

from orchestra.core.errors import ParamError, SpecError
from orchestra.mlproject.model import StageSpec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_TRUE = frozenset({"true", "1", "yes", "y", "on"})
_FALSE = frozenset({"false", "0", "no", "n", "off"})
_LOCAL_SCHEMES = frozenset({"", "file"})
# `path` values orchestra downloads before the stage starts (the app layer does the I/O).
REMOTE_PATH_SCHEMES = ("runs", "http", "https", "s3")


@dataclass(frozen=True, slots=True)
class Assignment:
    """One ``-P`` value: ``stage`` is None for a global ``-P k=v``."""

    key: str
    value: str
    stage: str | None = None

    @property
    def label(self) -> str:
        return f"{self.stage}.{self.key}" if self.stage else self.key


@dataclass(frozen=True, slots=True)
class StageParams:
    """The resolved parameters of one stage.

    Attributes:
        values: name → typed value (float/int/bool/str; paths absolute).
        text: name → the string substituted into the command (before quoting).
        extras: undeclared ``-P`` keys appended as ``--key value`` (MLflow, single stage only).
        path_files: absolute paths behind ``path`` parameters (their digests join the cache key).
        remote_paths: (name, URI) of ``path`` parameters given as ``runs:/``, ``http(s)://`` or
            ``s3://``: ``values`` and ``text`` keep the URI (credentials removed), as logged.
        downloaded: name → local path of a remote ``path`` parameter once downloaded (what the
            command gets).
    """

    values: Mapping[str, Any] = field(default_factory=dict)
    text: Mapping[str, str] = field(default_factory=dict)
    extras: tuple[tuple[str, str], ...] = ()
    path_files: tuple[str, ...] = ()
    remote_paths: tuple[tuple[str, str], ...] = ()
    downloaded: Mapping[str, str] = field(default_factory=dict)


def is_remote_path(text: str) -> bool:
    """A ``path`` value orchestra downloads (``runs:/``, ``http(s)://``, ``s3://``)."""
    return urlparse(text).scheme in REMOTE_PATH_SCHEMES


def without_credentials(uri: str) -> str:
    """``https://user:token@host/x`` → ``https://host/x``."""
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def parse_assignments(raw: Iterable[str], stage_names: Iterable[str]) -> tuple[Assignment, ...]:
    """Split ``-P`` strings on the first ``=``; ``stage.key`` is scoped when ``stage`` exists.

    Raises:
        ParamError: no ``=``, an empty key, or the same key given twice.
    """
    stages = set(stage_names)
    seen: set[str] = set()
    result: list[Assignment] = []
    for item in raw:
        if "=" not in item:
            raise ParamError(f"-P {_cut(item)!r}: expected KEY=VALUE or STAGE.KEY=VALUE")
        key, value = item.split("=", 1)
        key = key.strip()
        if not key:
            raise ParamError(f"-P {_cut(item)!r}: empty parameter name")
        stage = None
        head, _, rest = key.partition(".")
        if rest and head in stages:
            stage, key = head, rest
        assignment = Assignment(key=key, value=value, stage=stage)
        if assignment.label in seen:
            raise ParamError(f"-P {assignment.label} given more than once")
        seen.add(assignment.label)
        result.append(assignment)
    return tuple(result)


def check_unused(assignments: Sequence[Assignment], stages: Sequence[StageSpec], allow_extras: bool) -> None:
    """In a pipeline, a ``-P`` that no selected stage declares is an error."""
    if allow_extras or not assignments:
        return
    by_name = {stage.name: stage for stage in stages}
    for item in assignments:
        if item.stage is not None:
            stage = by_name.get(item.stage)
            if stage is None:
                raise ParamError(f"-P {item.label}: stage '{item.stage}' is not selected in this run",
                                 hint=f"selected: {', '.join(by_name)}")
            if stage.param(item.key) is None:
                raise ParamError(f"-P {item.label}: stage '{item.stage}' has no parameter '{item.key}'",
                                 hint=_declared_hint(stage))
        elif not any(stage.param(item.key) for stage in stages):
            raise ParamError(f"-P {item.key}: no selected stage declares this parameter",
                             hint="declared: " + ", ".join(sorted({f"{s.name}.{p.name}" for s in stages for p in s.parameters})) or "none")


def _declared_hint(stage: StageSpec) -> str:
    names = [p.name for p in stage.parameters]
    return "declared: " + (", ".join(names) if names else "none")


def resolve(stage: StageSpec, assignments: Sequence[Assignment], *, cwd: Path, project_root: Path,
            allow_extras: bool, confine_to: Path | None = None, type_check: bool = True) -> StageParams:
    """Typed values for ``stage``: its scoped ``-P``, else a global ``-P``, else the default.

    ``path`` values given by the user resolve against ``cwd`` (MLflow); defaults resolve against
    the project directory, so a project runs the same from any directory. With ``confine_to`` (a
    fetched project), a default's real path must stay inside it. The text substituted
    into the command is the ``-P`` value as given, or ``str()`` of the YAML default, as MLflow
    renders it (``yes`` → ``True``, ``[1, 2]`` → ``[1, 2]``). ``type_check=False``
    (``--no-type-check``): ``float``/``int``/``bool`` values pass unchecked, as under ``mlflow
    run`` (which checks only ``path`` and ``uri``).

    Raises:
        ParamError: a missing required parameter or a value of the wrong type.
    """
    given: dict[str, str] = {}
    if assignments:
        for item in assignments:
            if item.stage is None and item.key not in given:
                given[item.key] = item.value
        for item in assignments:
            if item.stage == stage.name:
                given[item.key] = item.value
    values: dict[str, Any] = {}
    text: dict[str, str] = {}
    path_files: list[str] = []
    remote: list[tuple[str, str]] = []
    missing = []
    for spec in stage.parameters:
        if spec.name in given:
            raw, base = given[spec.name], cwd
        elif spec.default is not None:
            raw, base = str(spec.default), project_root
        else:
            missing.append(spec.name)
            continue
        if spec.type == "string":  # (what convert returns for it)
            values[spec.name] = text[spec.name] = raw
            continue
        where = f"stage '{stage.name}': parameter '{spec.name}'"
        if type_check or spec.type in ("path", "uri"):
            value = convert(spec.type, raw, where=where, base=base)
        else:
            value = raw
        if spec.type == "path" and is_remote_path(str(value)):
            remote.append((spec.name, str(value)))
            value = without_credentials(str(value))  # what is stored and logged never holds credentials
        elif spec.type == "path":
            if confine_to is not None and base is project_root:
                _confine(value, confine_to, where)
            path_files.append(str(value))
        values[spec.name] = value
        text[spec.name] = str(value) if spec.type == "path" else raw
    if missing:
        raise ParamError(f"stage '{stage.name}': no value given for required parameter(s) {', '.join(map(repr, missing))}",
                         hint="pass -P " + " -P ".join(f"{name}=VALUE" for name in missing))
    extras: tuple[tuple[str, str], ...] = ()
    if allow_extras:
        extras = tuple((k, v) for k, v in given.items() if stage.param(k) is None)
    return StageParams(values=values, text=text, extras=extras, path_files=tuple(path_files),
                       remote_paths=tuple(remote))


def _confine(value: str, root: Path, where: str) -> None:
    real = Path(value).resolve()
    if not real.is_relative_to(root):
        raise SpecError(f"{where}: the default path {value} leads outside the fetched project ({real})",
                        hint="a default path must name a file of the repository; pass another with -P")


def _cut(text: str, limit: int = 200) -> str:
    """A value as messages show it: at most ``limit`` characters, then how long it was."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def convert(type_name: str, raw: Any, *, where: str, base: Path | None = None, check_paths: bool = True) -> Any:
    """Convert one raw value to its declared type, or raise naming ``where`` and the type."""
    error = SpecError if not check_paths else ParamError
    text = str(raw)
    if type_name == "float":
        try:
            return float(text)
        except ValueError:
            raise error(f"{_cut(text)!r} is not a float", where=where, hint="e.g. 0.5 or 1e-3") from None
    if type_name == "int":
        try:
            return int(text)
        except ValueError:
            raise error(f"{_cut(text)!r} is not an int", where=where, hint="e.g. 42") from None
    if type_name == "bool":
        lowered = text.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise error(f"{_cut(text)!r} is not a bool", where=where, hint="true/false, yes/no, 1/0")
    if type_name == "uri":
        if not urlparse(text).scheme:
            raise error(f"{_cut(text)!r} is not a URI", where=where, hint="a value with a scheme, e.g. file:///data or s3://b/k")
        return text
    if type_name == "path":
        scheme = urlparse(text).scheme
        if scheme in REMOTE_PATH_SCHEMES:
            return text  # downloaded before the stage starts
        if len(scheme) > 1 and scheme not in _LOCAL_SCHEMES:
            raise error(f"remote path {_cut(text)!r}: '{scheme}:' is not a scheme orchestra downloads", where=where,
                        hint="runs:/RUN_ID/PATH, http(s)://, s3:// or a local path (or declare the parameter as uri)")
        if not check_paths:
            return text
        local = text[len("file://"):] if text.startswith("file://") else text
        path = Path(os.path.expanduser(local))
        if not path.is_absolute():
            path = (base or Path.cwd()) / path
        path = Path(os.path.abspath(path))
        if not path.exists():
            raise error(f"no such file or directory: {_cut(text)}", where=where,
                        hint=f"relative paths resolve against {base or Path.cwd()}")
        return str(path)
    return text  # string


def render(stage: StageSpec, params: StageParams, *, outputs: str, inputs: Mapping[str, str]) -> str:
    """Fill the command template with shell-quoted values; append extras as ``--key value``."""
    pieces: list[str] = []
    for literal, field_name, spec, conversion in formatter_parser(stage.command):
        pieces.append(literal)
        if field_name is None:
            continue
        if field_name in params.text:  # a declared parameter, even one named outputs (MLflow)
            value = params.downloaded.get(field_name) or params.text[field_name]
        elif field_name == "outputs":
            value = outputs
        else:
            value = inputs[field_name.split(".", 1)[1]]
        if conversion == "r":
            value = repr(value)
        if spec:
            value = format(value, spec)
        pieces.append(shlex.quote(value))
    command = "".join(pieces)
    for key, value in params.extras:
        command += f" --{shlex.quote(key)} {shlex.quote(value)}"
    return command
