"""One entry point of a validated MLproject → :class:`StageSpec` (and MLflow's implicit ones).

MLflow checks an entry point only when it runs it: an entry point without ``command``, with a
``{placeholder}`` it does not declare, or with a parameter type MLflow does not know is accepted
as long as it is not selected. orchestra does the same: such a file loads, each leniency becomes
a warning in ``ProjectSpec.warnings`` (``orchestra validate`` shows them, ``--strict`` refuses
them), and what cannot run is recorded on the stage as a :class:`Problem` that becomes an error
only when the stage is selected.
"""

from __future__ import annotations

import os
from _string import formatter_parser
from collections.abc import Callable, Mapping
from pathlib import Path

from orchestra.core.errors import SpecError
from orchestra.mlproject.model import PARAM_TYPES, RESERVED_PARAMS, ParamSpec, Problem, StageSpec
from orchestra.mlproject.params import convert

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# Type names MLflow passes through (it checks only `path` and `uri`) that mean one of orchestra's
# checked types without doubt. Anything else is read as `string`, as MLflow reads it.
TYPE_ALIASES = {"str": "string", "integer": "int", "long": "int", "double": "float", "number": "float",
                "boolean": "bool"}
_SILENT_ALIASES = frozenset({"str"})  # MLflow's own docs write `type: str`

Warn = Callable[[str], None]


def build_stage(name: str, entry: Mapping[str, Any], where: str, warn: Warn,
                env: Any = None) -> StageSpec:
    """The StageSpec of entry point ``name``; leniencies are reported through ``warn``."""
    get = entry.get
    declared = get("parameters")
    # A name YAML reads as a number (``1:``) is its text, as `-P 1=…` names it.
    params = tuple([build_param(str(pname), raw, where, name, warn) for pname, raw in declared.items()]) if declared else ()
    depends_on = get("depends_on") or ()
    if isinstance(depends_on, str):
        depends_on = (depends_on,)
    command = get("command")
    problem = command_problem(command, {p.name for p in params}, f"{where}: entry_points.{name}")
    if problem is not None:
        warn(f"{problem.where}: {problem.message} (an error only if this entry point runs)")
    outputs = get("outputs", ())
    for output in outputs:
        if Path(output).is_absolute() or ".." in Path(output).parts:
            raise SpecError(f"output path {output!r} must be relative and stay inside the output directory",
                            where=f"{where}: entry_points.{name}.outputs")
    resources = get("resources")
    if resources:
        from orchestra.mlproject import resources as resources_check

        resources_check.validate(resources, f"{where}: entry_points.{name}.resources")
    return StageSpec(
        name=name, command=command if problem is None else "", parameters=params,
        depends_on=tuple(dict.fromkeys(depends_on)) if len(depends_on) > 1 else tuple(depends_on), outputs=tuple(outputs),
        cache=bool(get("cache", True)), retries=int(get("retries", 0)), timeout=get("timeout"),
        env=env, resources=dict(resources) if resources else {}, problem=problem,
    )


def command_problem(command: Any, declared: set[str] | frozenset[str], at: str) -> Problem | None:
    """Why ``command`` cannot run (MLflow fails on these when it runs the entry point), or None."""
    if command is None:
        return Problem("no command", f"{at}", hint=f"add {at.split(': ', 1)[-1]}.command")
    if not isinstance(command, str):
        return Problem(f"command must be a string, got {type(command).__name__}", f"{at}.command")
    try:
        fields = placeholders(command, where=f"{at}.command", check_specs=True)
    except SpecError as exc:
        return Problem(exc.message, exc.where or at, exc.hint)
    except ValueError as exc:
        return Problem(f"invalid format spec in the command: {exc}", f"{at}.command",
                       hint="values are substituted as text; drop the :spec")
    refs: list[str] | None = []
    for field in fields:
        if field in declared or field == "outputs":
            if field[:7] == "inputs.":
                refs = None  # (a parameter named like an input reference: the graph parses this one)
            continue
        if field[:7] == "inputs.":
            if refs is not None:
                refs.append(field[7:])
            continue
        if field == "inputs":
            return Problem("{inputs} needs a stage name, e.g. {inputs.prepare}", f"{at}.command")
        return Problem(f"placeholder {{{field}}} is not a declared parameter", f"{at}.command",
                       hint=f"declare it under {at.split(': ', 1)[-1]}.parameters, or write {{{{ }}}} for literal braces")
    if refs:
        if len(_INPUT_REFS) >= 1_000_000:
            _INPUT_REFS.clear()
        _INPUT_REFS[command] = refs
    return None


# command → the stages its {inputs.X} name, parsed while the stage is built and taken by
# ``input_refs`` when the graph is checked (so a large project parses each command once).
_INPUT_REFS: dict[str, list[str]] = {}


def input_refs(command: str, where: str) -> list[str]:
    """The stage names ``{inputs.NAME}`` placeholders of ``command`` refer to."""
    refs = _INPUT_REFS.pop(command, None)
    if refs is None:
        refs = [field.split(".", 1)[1] for field in placeholders(command, where) if field.startswith("inputs.")]
    return refs


def build_param(name: str, raw: Any, where: str, stage: str, warn: Warn) -> ParamSpec:
    """Parameter ``name`` of entry point ``stage`` as MLflow reads it: ``name: TYPE`` or
    ``{type, default}`` (``type`` defaults to string)."""
    if raw is None or isinstance(raw, str):
        declared, default = raw or "string", None
    else:
        declared, default = raw.get("type", "string"), raw.get("default")
    known = (name, declared, type(default), default)
    try:
        return _PARAMS[known]  # a generated file declares the same parameter in every stage
    except (KeyError, TypeError):  # (TypeError: an unhashable default)
        pass
    warned: list[str] = []
    at = f"entry_points.{stage}.parameters.{name}"
    if name in RESERVED_PARAMS:  # an MLflow project may declare these: its {name} is then the parameter
        warned.append(f"{where}: {at}: parameter '{name}' is used for {{{name}}} in this entry point instead of "
                      f"orchestra's {{{name}}} (rename it to use orchestra's)")
    type_name = param_type(declared, f"{where}: {at}", warned.append)
    if default is not None:
        try:
            convert(type_name, str(default), where=f"{where}: {at}.default", check_paths=False)
        except SpecError as exc:
            warned.append(f"{exc.render()}; a run of this entry point fails unless the value is given with -P "
                          "or --no-type-check is used")
    spec = ParamSpec(name=name, type=type_name, default=default)  # type: ignore[arg-type]
    for line in warned:
        warn(line)
    if not warned and type(default) in _SCALARS and len(_PARAMS) < 4096:
        _PARAMS[known] = spec  # (frozen: shared by every stage that declares it alike)
    return spec


_PARAMS: dict[tuple[Any, ...], ParamSpec] = {}
_SCALARS = frozenset({str, int, float, bool, type(None)})


def param_type(declared: Any, at: str, warn: Warn) -> str:
    """orchestra's type for a declared type name; an unknown one is ``string`` with a warning."""
    if isinstance(declared, str) and declared in PARAM_TYPES:
        return declared
    known = ", ".join(PARAM_TYPES)
    if isinstance(declared, str) and declared in TYPE_ALIASES:
        mapped = TYPE_ALIASES[declared]
        if declared not in _SILENT_ALIASES:
            warn(f"{at}: type {declared!r} read as {mapped!r} (known types: {known})")
        return mapped
    warn(f"{at}: unknown type {declared!r} read as 'string', as mlflow run does (known types: {known})")
    return "string"


def placeholders(command: str, where: str, check_specs: bool = False) -> list[str]:
    """Field names used in a command template (``{alpha}``, ``{inputs.prepare}``, ``{outputs}``).

    With ``check_specs``, a format spec is tried too (ValueError: values are substituted as
    text, so a spec such as ``:.2f`` cannot apply)."""
    try:
        parsed = list(formatter_parser(command))  # (what string.Formatter().parse returns)
    except ValueError as exc:
        raise SpecError(f"invalid command template: {exc}", where=where,
                        hint="use {{ and }} for literal braces") from None
    fields = []
    specs = False
    for _literal, field, spec, _conversion in parsed:
        if field is not None:
            if field == "" or field.isdigit():
                raise SpecError("positional placeholder {} is not allowed", where=where,
                                hint="name a parameter, e.g. {alpha}")
            fields.append(field)
            specs = specs or bool(spec)
    if check_specs and specs:
        for _literal, field, spec, _conversion in parsed:
            if field is not None and spec:
                format("", spec)
    return fields


def implicit_stage(root: Path, name: str) -> StageSpec | None:
    """MLflow's implicit entry point: a ``.py``, ``.sh`` or ``.R`` file run with no declared params
    (the commands are mlflow's)."""
    import shlex

    path = (root / name)
    if not name.endswith((".py", ".sh", ".R")) or not path.is_file():
        return None
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return None
    if name.endswith(".py"):
        command = f"python {shlex.quote(name)}"
    elif name.endswith(".R"):
        command = f"Rscript -e \"mlflow::mlflow_source('{shlex.quote(name)}')\" --args"
    else:
        command = f"{os.environ.get('SHELL') or 'bash'} {shlex.quote(name)}"
    return StageSpec(name=name, command=command.replace("{", "{{").replace("}", "}}"), implicit=True)
