"""MLproject file → validated :class:`ProjectSpec` (parse, validate against the schema, build).

Follows MLflow's rules (file name matched case-insensitively, env precedence, ``main`` default,
implicit ``.py``/``.sh`` entry points) and adds orchestra's pipeline fields. Every error names
the file and the key path; unknown keys are warnings, as MLflow ignores them.
"""

from __future__ import annotations

import binascii
import json
import marshal
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from orchestra.core.digest import sha256
from orchestra.core import log as logger
from orchestra.core import settings
from orchestra.core import yamlguard
from orchestra.core.errors import SpecError
from orchestra.core.layout import SCHEMAS_DIR
from orchestra.core.suggest import did_you_mean
from orchestra.mlproject import fastschema
from orchestra.mlproject.entry import build_stage, implicit_stage, placeholders
from orchestra.mlproject.model import PARAM_TYPES, EnvSpec, ProjectSpec, StageSpec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["find_spec_file", "implicit_stage", "load", "placeholders"]

log = logger.get("orchestra")

SCHEMA_PATH = SCHEMAS_DIR / "mlproject.schema.json"


def find_spec_file(root: Path) -> Path | None:
    """The first file in ``root`` whose lower-cased name is ``mlproject`` (MLflow's rule)."""
    try:
        names = sorted(os.listdir(root))
    except OSError as exc:
        raise SpecError(f"cannot read project directory: {exc.strerror}", where=str(root)) from exc
    for name in names:
        if name.lower() == "mlproject" and (root / name).is_file():
            return root / name
    return None


def load(root: Path) -> ProjectSpec:
    """Load the project in ``root``.

    Raises:
        SpecError: malformed YAML, schema violation, or inconsistent fields (one line, with the
            file and key path).
    """
    root = Path(root).resolve()
    spec_file = find_spec_file(root)
    if spec_file is None:
        return ProjectSpec(root=root, spec_file=None, name=None, entry_points={}, env=_implicit_env(root))
    where = spec_file.name
    text = spec_file.read_text(encoding="utf-8", errors="replace")
    digest = _digest(text)
    data = _cached(digest)
    if data is None:
        data = _parse_yaml(text, where)
        _validate(data, digest, where)
    warnings: list[str] = []
    _warn_unknown_keys(data, where, warnings.append)
    spec = _build(root, spec_file, data, warnings)
    for warning in spec.warnings:
        log.warning("%s", warning)
    return spec


def _parse_yaml(text: str, where: str) -> dict[str, Any]:
    try:  # size, aliases, depth: checked while it is built (see yamlguard.load)
        data = yamlguard.load(text, where, SpecError)
    except Exception as exc:
        yaml = sys.modules.get("yaml")  # (not imported at all when the file is in the plain subset)
        if yaml is None or not isinstance(exc, yaml.YAMLError):
            raise
        _malformed(exc, where)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError(f"expected a mapping at the top level, got {_kind(data)}", where=where)
    return data


def _malformed(exc: Any, where: str) -> None:
    mark = getattr(exc, "problem_mark", None)
    at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    raise SpecError(f"malformed YAML{at}: {problem}", where=where) from None



def _schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())


def _digest(text: str) -> str:
    digest = sha256(SCHEMA_PATH.read_bytes() + b"\0")
    digest.update(text.encode())
    return digest.hexdigest()


def _cached(digest: str) -> dict[str, Any] | None:
    """The parsed form of a file that already validated (None when unseen, unreadable or torn).

    A file that validated once is remembered by digest of its text and the schema (under
    ORCHESTRA_HOME/cache) together with its parsed form, so warm runs skip both the YAML reader
    and the schema check: the schema stays the single description, checked once per distinct
    file content and schema version. The parsed form is kept with ``marshal`` (exact types, as
    the YAML built them; several times faster than JSON both ways), behind a header naming the
    interpreter and a checksum: a foreign, torn or damaged file is a miss, and is rewritten.
    """
    marker = _validated_marker(digest)
    try:
        blob = marker.read_bytes()
    except OSError:
        return None
    start = len(_MARKER_HEADER) + 4
    if not blob.startswith(_MARKER_HEADER) or int.from_bytes(blob[start - 4:start], "big") != binascii.crc32(blob[start:]):
        return None
    try:
        data = marshal.loads(blob[start:])
    except (EOFError, ValueError, TypeError):
        return None
    return data if type(data) is dict else None


def _remember(data: dict[str, Any], digest: str) -> None:
    """Keep the parsed form of a file that validated (see ``_cached``), atomically."""
    marker = _validated_marker(digest)
    try:
        body = marshal.dumps(data)
        marker.parent.mkdir(parents=True, exist_ok=True)
        tmp = marker.with_name(f".{marker.name}.{os.getpid()}")
        tmp.write_bytes(_MARKER_HEADER + binascii.crc32(body).to_bytes(4, "big") + body)
        os.replace(tmp, marker)
    except (OSError, ValueError):
        pass  # a cache, nothing more (ValueError: a value marshal cannot keep, such as a date)


_MARKER_HEADER = f"orchestra-validated-spec-2 {sys.implementation.cache_tag}\n".encode()


def _validate(data: dict[str, Any], digest: str, where: str) -> None:
    """Validate against schemas/mlproject.schema.json (see ``_cached``; ``digest``: ``_digest`` of the text)."""
    raw = SCHEMA_PATH.read_bytes()
    schema = json.loads(raw)
    if _COMPILED.get(raw) is None:
        _COMPILED.clear()
        _COMPILED[raw] = fastschema.compile_schema(schema)
    if not _COMPILED[raw](data):  # jsonschema finds and explains the error
        import jsonschema

        validator = jsonschema.Draft202012Validator(schema)
        errors = sorted(validator.iter_errors(data),
                        key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
        if errors:
            raise SpecError(_describe(errors[0]), where=f"{where}: {_key_path(errors[0].absolute_path) or '(top level)'}")
    _remember(data, digest)


_COMPILED: dict[bytes, Any] = {}  # the schema's text → its compiled yes/no check


def _validated_marker(digest: str) -> Path:
    return settings.home() / "cache" / "validated-specs" / digest


def _key_path(path: Any) -> str:
    parts: list[str] = []
    for part in path:
        parts.append(f"[{part}]" if isinstance(part, int) else str(part))
    return ".".join(parts).replace(".[", "[")


def _describe(error: Any) -> str:
    """A short, user-facing sentence for a jsonschema error, saying what is allowed."""
    validator, value, schema = error.validator, error.instance, error.schema
    if validator == "oneOf" and error.context:
        # Parameter forms: a type name, or {type, default}.
        if any("param_type" in str(sub.schema) or "enum" in sub.schema for sub in error.context):
            return f"invalid parameter {_short(value)}: expected a type ({', '.join(PARAM_TYPES)}) or {{type, default}}"
        best = min(error.context, key=lambda e: len(e.absolute_path))
        return _describe(best)
    if validator == "enum":
        return f"{_short(value)} is not allowed (allowed: {', '.join(map(str, schema['enum']))})"
    if validator == "const":
        return f"{_short(value)} is not allowed (allowed: {schema['const']!r})"
    if validator == "type":
        expected = schema["type"] if isinstance(schema["type"], str) else " or ".join(schema["type"])
        return f"expected {expected.replace('object', 'a mapping').replace('array', 'a list')}, got {_kind(value)} {_short(value)}"
    if validator == "required":
        missing = [name for name in schema["required"] if isinstance(value, dict) and name not in value]
        return f"missing required key '{missing[0] if missing else '?'}'"
    if validator in ("minimum", "exclusiveMinimum", "maximum"):
        return f"{value!r} is out of range ({validator} {schema[validator]})"
    if validator == "minLength":
        return "must not be empty"
    if validator == "uniqueItems":
        return "items must be unique"
    return error.message.splitlines()[0]


def _short(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def _warn_unknown_keys(data: Mapping[str, Any], where: str, warn: Any) -> None:
    schema = _schema_keys()
    for key in data:
        if key not in schema["top"]:
            warn(f"{where}: unknown key '{key}' ignored{did_you_mean(key, schema['top'])} "
                 f"(known: {', '.join(sorted(schema['top']))})")
    name = data.get("name")
    if name is not None and not isinstance(name, (str, int, float)):
        warn(f"{where}: name: expected a string, got {_kind(name)} (kept as text)")
    known = schema["entry"]
    for stage, entry in (data.get("entry_points") or {}).items():
        if not known.issuperset(entry):
            for key in entry:
                if key not in known:
                    warn(f"{where}: entry_points.{stage}: unknown key '{key}' ignored{did_you_mean(key, known)}")


_SCHEMA_KEYS: dict[str, frozenset[str]] = {}


def _schema_keys() -> dict[str, frozenset[str]]:
    if not _SCHEMA_KEYS:
        schema = _schema()
        _SCHEMA_KEYS["top"] = frozenset(schema["properties"])
        _SCHEMA_KEYS["entry"] = frozenset(schema["$defs"]["entry_point"]["properties"])
    return _SCHEMA_KEYS


def _build(root: Path, spec_file: Path, data: Mapping[str, Any], warnings: list[str]) -> ProjectSpec:
    where = spec_file.name
    env_keys = [key for key in ("conda_env", "python_env", "docker_env") if key in data]
    if len(env_keys) > 1:
        raise SpecError(
            f"only one of conda_env, python_env, docker_env may be given, found {', '.join(env_keys)}",
            where=f"{where}: {env_keys[1]}",
        )
    project_env = _env_from(data, root, where, prefix="") or _implicit_env(root)
    entry_points: dict[str, StageSpec] = {}
    for name, entry in (data.get("entry_points") or {}).items():
        env = None
        if not _ENV_KEYS.isdisjoint(entry):
            at = f"entry_points.{name}"
            env_keys = [key for key in ("conda_env", "python_env", "docker_env", "env") if key in entry]
            if len(env_keys) > 1:
                raise SpecError(f"only one of conda_env, python_env, docker_env, env may be given, found {', '.join(env_keys)}",
                                where=f"{where}: {at}")
            env = _env_from(entry, root, where, prefix=f"{at}.")
        entry_points[str(name)] = build_stage(str(name), entry, where, warnings.append, env=env)
    for stage in entry_points.values():
        for dep in stage.depends_on:
            if dep not in entry_points:
                raise SpecError(
                    f"unknown stage '{dep}'", where=f"{where}: entry_points.{stage.name}.depends_on",
                    hint=f"stages: {', '.join(entry_points)}",
                )
            if dep == stage.name:
                raise SpecError("a stage cannot depend on itself", where=f"{where}: entry_points.{stage.name}.depends_on")
    name = data.get("name")
    return ProjectSpec(
        root=root, spec_file=spec_file, name=None if name is None else str(name), entry_points=entry_points,
        env=project_env, hooks=data.get("hooks") or {}, schedules=data.get("schedules") or {},
        warnings=tuple(warnings),
    )


_ENV_KEYS = frozenset({"conda_env", "python_env", "docker_env", "env"})


def _env_from(data: Mapping[str, Any], root: Path, where: str, prefix: str) -> EnvSpec | None:
    # A key whose value is empty (null, "") is ignored, as mlflow run ignores it.
    if data.get("docker_env"):
        from orchestra.mlproject import docker_spec  # (docker_env projects only)

        return docker_spec.env_spec(data["docker_env"], f"{where}: {prefix}docker_env")
    for key, kind in (("conda_env", "conda"), ("python_env", "python")):
        if data.get(key):
            rel = data[key]
            file = (root / rel).resolve()
            if not file.is_file():
                raise SpecError(f"file not found: {rel}", where=f"{where}: {prefix}{key}",
                                hint="a path relative to the MLproject's directory")
            return EnvSpec(kind=kind, file=file, declared_at=f"{where}: {prefix}{key}")  # type: ignore[arg-type]
    if data.get("env") == "local":
        return EnvSpec(kind="local", declared_at=f"{where}: {prefix}env")
    return None


def _implicit_env(root: Path) -> EnvSpec | None:
    """MLflow's rule when no env key is given: python_env.yaml, then conda.yaml, else none."""
    for name, kind in (("python_env.yaml", "python"), ("conda.yaml", "conda")):
        if (root / name).is_file():
            return EnvSpec(kind=kind, file=root / name, declared_at=f"{name} (implicit)")  # type: ignore[arg-type]
    return None
