"""Where hooks come from, and what a valid hook is.

Sources, merged in this order: the MLproject ``hooks`` mapping, each ``--hooks`` /
``--hooks-config`` value, ``ORCHESTRA_HOOKS_URI``, ``MLFLOW_HOOKS_URI``. ``--hooks URL`` (http or
https) is a receiver of every event; ``--hooks PATH`` and ``--hooks-config URI`` are
configurations. A configuration URI's kind is decided by its scheme, never by catching
exceptions (mlflow_client's bug): ``http(s)://`` is fetched with GET and must answer JSON;
anything else is a path — a directory holding an MLproject with ``hooks``, or a JSON/YAML file. A source that cannot be read is a :class:`HooksConfigError` (exit 2): a run never silently
goes ahead without the hooks its user configured.

Each source is validated against schemas/hooks-config.schema.json, then built into frozen
:class:`Hook` values. Secrets never live in files: ``secret_env`` names environment variables.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping
from urllib.parse import urlsplit

from orchestra.core import yamlguard
from orchestra.core.layout import SCHEMAS_DIR
from orchestra.core.errors import HooksConfigError
from orchestra.source.project import strip_credentials

SCHEMA_PATH = SCHEMAS_DIR / "hooks-config.schema.json"
ENV_VARS = ("ORCHESTRA_HOOKS_URI", "MLFLOW_HOOKS_URI")
ALL_EVENTS = "*"
FETCH_TIMEOUT_S = 10.0
SECRET_PREFIX = "whsec_"
# A hooks source given with --hooks-config is kept with this prefix beside the --hooks values (so
# one list of strings records both, in command-line order, in options and stored schedules).
CONFIG_PREFIX = "config:"


@dataclass(frozen=True, slots=True)
class Hook:
    """One configured receiver.

    Attributes:
        event: the key it was declared under: an event name or ``*``.
        url: where to POST (may hold a token in its path, so it is shown stripped, never logged).
        name: a label for logs and ``orchestra hooks test`` (default ``<event>-hook``).
        statuses: only events with one of these statuses are sent (empty = all).
        secret_envs: names of the environment variables holding ``whsec_`` secrets; two = rotation.
        allow_http: plain http to a non-loopback host is allowed.
        include: extra payload parts (``params``).
        where: the source and key path it came from, for messages.
    """

    event: str
    url: str
    name: str
    statuses: tuple[str, ...] = ()
    secret_envs: tuple[str, ...] = ()
    allow_http: bool = False
    include: tuple[str, ...] = ()
    where: str = ""

    def matches(self, event: str, status: str) -> bool:
        """True when this hook wants ``event`` with ``status``."""
        if self.event not in (ALL_EVENTS, event):
            return False
        return not self.statuses or status in self.statuses

    @property
    def display_url(self) -> str:
        """The URL without credentials, for humans."""
        return strip_credentials(self.url)


@dataclass(frozen=True, slots=True)
class HooksConfig:
    """All hooks of a run, in source order."""

    hooks: tuple[Hook, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.hooks)

    def matching(self, event: str, status: str) -> tuple[Hook, ...]:
        """Hooks to notify for one event; a URL listed twice (e.g. under ``*`` too) gets one POST."""
        return _one_per_url(h for h in self.hooks if h.matches(event, status))

    def named(self, name: str) -> tuple[Hook, ...]:
        """Hooks called ``name``, one per distinct URL."""
        return _one_per_url(h for h in self.hooks if h.name == name)


def _one_per_url(hooks: Iterable[Hook]) -> tuple[Hook, ...]:
    chosen: dict[str, Hook] = {}
    for hook in hooks:
        chosen.setdefault(hook.url, hook)  # the first declaration wins (source order)
    return tuple(chosen.values())


def load(spec_hooks: Mapping[str, Any] | None, uris: Iterable[str] = (), *,
         spec_where: str = "MLproject", environ: Mapping[str, str] | None = None) -> HooksConfig:
    """Merge every source into one :class:`HooksConfig` (empty when none is configured).

    Args:
        spec_hooks: the MLproject's ``hooks`` mapping (already trusted by the caller), or None.
        uris: ``--hooks`` URIs, in command-line order.
        spec_where: how to name the MLproject in messages.
        environ: environment to read ``ORCHESTRA_HOOKS_URI``/``MLFLOW_HOOKS_URI`` from.

    Raises:
        HooksConfigError: a source cannot be read or is invalid (one line: source, key path, rule).
    """
    env = os.environ if environ is None else environ
    hooks: list[Hook] = []
    if spec_hooks:
        hooks += parse(spec_hooks, where=spec_where)
    sources: list[tuple[str, str]] = []
    for uri in uris:
        uri = uri.strip()
        if uri.startswith(CONFIG_PREFIX):
            uri = uri.removeprefix(CONFIG_PREFIX)
            sources.append((f"--hooks-config {strip_credentials(uri)}", uri))
        elif is_url(uri):
            hooks.append(url_target(uri))
        else:
            sources.append((f"--hooks {strip_credentials(uri)}", uri))
    sources += [(f"{var}={strip_credentials(env[var])}", env[var]) for var in ENV_VARS if env.get(var, "").strip()]
    for label, uri in sources:
        hooks += parse(read_source(uri.strip(), label), where=label)
    return HooksConfig(tuple(hooks))


def is_url(uri: str) -> bool:
    return "://" in uri and urlsplit(uri).scheme.lower() in ("http", "https")


def url_target(url: str) -> Hook:
    """``--hooks URL``: the URL itself receives every event (its own configuration is ``--hooks-config``).

    Raises:
        HooksConfigError: plain http to a non-loopback host, or a link-local address.
    """
    where = f"--hooks {strip_credentials(url)}"
    refusal = url_refusal(url, allow_http=False)
    if refusal:
        raise HooksConfigError(refusal, where=where,
                               hint="use https, or a --hooks-config file with allow_http: true for a trusted receiver")
    return Hook(event=ALL_EVENTS, url=url, name="hooks-url", where=where)


def read_source(uri: str, label: str) -> Any:
    """Read one hooks URI into its document (validated by :func:`parse`, not here).

    Raises:
        HooksConfigError: unreachable URL, non-JSON answer, missing or unparsable file.
    """
    scheme = urlsplit(uri).scheme.lower() if "://" in uri else ""
    if scheme in ("http", "https"):
        return _unwrap(_fetch(uri, label), label, from_mlproject=False)
    if scheme == "file":
        from urllib.parse import unquote

        parts = urlsplit(uri)
        path = Path(unquote(parts.netloc + parts.path))
    elif scheme:
        raise HooksConfigError(f"unsupported URI scheme '{scheme}'", where=label,
                               hint="an http(s) URL returning JSON, a JSON/YAML file, or a directory with an MLproject")
    else:
        path = Path(uri).expanduser()
    if path.is_dir():
        mlproject = find_mlproject(path)
        if mlproject is None:
            raise HooksConfigError(f"directory {path} holds no MLproject", where=label,
                                   hint="point at a JSON/YAML hooks file or a project directory")
        return _unwrap(_parse_text(mlproject, label), label, from_mlproject=True)
    if not path.is_file():
        raise HooksConfigError(f"no such file or directory: {path}", where=label,
                               hint="an http(s) URL, a JSON/YAML file, or a directory with an MLproject")
    return _unwrap(_parse_text(path, label), label, from_mlproject=path.name.lower() == "mlproject")


def find_mlproject(directory: Path) -> Path | None:
    """The MLproject file of a directory (name matched case-insensitively, as MLflow does)."""
    try:
        return next((p for p in sorted(directory.iterdir()) if p.name.lower() == "mlproject" and p.is_file()), None)
    except OSError:
        return None


def project_hooks(directory: Path) -> Mapping[str, Any] | None:
    """The raw ``hooks`` mapping of the MLproject in ``directory``; None without one or without hooks.

    Raises:
        HooksConfigError: the MLproject cannot be read or parsed.
    """
    mlproject = find_mlproject(directory)
    if mlproject is None:
        return None
    data = _parse_text(mlproject, str(mlproject))
    hooks = data.get("hooks") if isinstance(data, dict) else None
    return hooks or None


def parse(data: Any, where: str) -> list[Hook]:
    """Validate a hooks mapping (``{event: [hook, ...]}``) and build its hooks.

    Raises:
        HooksConfigError: the mapping breaks schemas/hooks-config.schema.json or names a URL
            that may not be used (plain http to a non-loopback host, a link-local address).
    """
    _validate(data, where)
    hooks: list[Hook] = []
    for event, entries in data.items():
        for index, entry in enumerate(entries):
            key = f"{where}: hooks.{event}[{index}]"
            secret = entry.get("secret_env") or ()
            hook = Hook(
                event=event, url=entry["url"], name=entry.get("name") or f"{event}-hook",
                statuses=tuple(entry.get("statuses") or ()),
                secret_envs=(secret,) if isinstance(secret, str) else tuple(secret),
                allow_http=bool(entry.get("allow_http", False)),
                include=tuple(entry.get("include") or ()), where=key,
            )
            refusal = url_refusal(hook.url, hook.allow_http)
            if refusal:
                raise HooksConfigError(refusal, where=f"{key}.url",
                                       hint="use https, or set allow_http: true for a trusted plain-http receiver")
            hooks.append(hook)
    return hooks


def check_secrets(config: HooksConfig, environ: Mapping[str, str] | None = None) -> None:
    """Every ``secret_env`` must name a set variable holding a ``whsec_<base64>`` secret.

    Checked before anything runs, because an unsigned POST to a receiver that expects signatures
    is as bad as no POST. The values are never printed.

    Raises:
        HooksConfigError: a variable is unset or does not hold a valid secret.
    """
    env = os.environ if environ is None else environ
    for hook in config.hooks:
        for name in hook.secret_envs:
            value = env.get(name)
            if not value:
                raise HooksConfigError(f"environment variable {name} is not set", where=f"{hook.where}.secret_env",
                                       hint="set it to a secret printed by `orchestra hooks new-secret`")
            try:
                decode_secret(value)
            except ValueError as exc:
                raise HooksConfigError(f"environment variable {name} does not hold a valid secret: {exc}",
                                       where=f"{hook.where}.secret_env",
                                       hint="expected whsec_<base64>, see `orchestra hooks new-secret`") from None


def decode_secret(value: str) -> bytes:
    """``whsec_<base64>`` (prefix optional, as Standard Webhooks libraries accept) → key bytes.

    Raises:
        ValueError: not base64, or empty.
    """
    text = value.strip()
    if text.startswith(SECRET_PREFIX):
        text = text[len(SECRET_PREFIX):]
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64") from None
    if not key:
        raise ValueError("empty")
    return key


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback IP literal."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_link_local(address: str) -> bool:
    """169.254.0.0/16 or fe80::/10 — where cloud metadata services answer."""
    try:
        return ipaddress.ip_address(address.split("%", 1)[0].strip("[]")).is_link_local
    except ValueError:
        return False


def url_refusal(url: str, allow_http: bool) -> str | None:
    """Why ``url`` may not receive hooks, or None when it may."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return f"invalid URL {strip_credentials(url)!r}"
    if parts.scheme not in ("http", "https") or not host:
        return f"invalid URL {strip_credentials(url)!r}: expected http(s)://host/..."
    if is_link_local(host):
        return f"link-local address {host} refused"
    if parts.scheme == "http" and not allow_http and not is_loopback(host):
        return f"plain http to {host} refused (http is allowed only to loopback)"
    return None


def _fetch(uri: str, label: str) -> Any:
    import requests

    try:
        response = requests.get(uri, timeout=FETCH_TIMEOUT_S, headers={"Accept": "application/json"})
    except requests.RequestException as exc:
        raise HooksConfigError(f"cannot fetch hooks: {type(exc).__name__}", where=label,
                               hint="the URL must answer GET with JSON") from None
    if not 200 <= response.status_code < 300:
        raise HooksConfigError(f"cannot fetch hooks: HTTP {response.status_code}", where=label,
                               hint="the URL must answer GET with 2xx and JSON")
    try:
        return response.json()
    except ValueError:
        raise HooksConfigError("the answer is not JSON", where=label,
                               hint="the URL must answer GET with a JSON object {event: [{url, ...}]}") from None


def _parse_text(path: Path, label: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise HooksConfigError(f"cannot read {path}: {exc.__class__.__name__}", where=label) from None
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except ValueError as exc:
            raise HooksConfigError(f"invalid JSON in {path.name}: {exc}", where=label) from None
    import yaml  # YAML is a superset of JSON, so extensionless files take either

    yamlguard.check(text, label, HooksConfigError)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise HooksConfigError(f"invalid YAML in {path.name}{line}", where=label) from None


def _unwrap(data: Any, label: str, *, from_mlproject: bool) -> Any:
    """Accept ``{event: [...]}`` or a document with a top-level ``hooks`` mapping (MLproject)."""
    if isinstance(data, dict) and "hooks" in data:
        return data["hooks"] if data["hooks"] is not None else {}
    if from_mlproject:
        raise HooksConfigError("the MLproject has no 'hooks' mapping", where=label,
                               hint="add hooks: {run_ended: [{url: ...}]} or point at a hooks file")
    return data


def _validate(data: Any, where: str) -> None:
    import jsonschema

    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text()))
    errors = sorted(validator.iter_errors(data), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if errors:
        error = errors[0]
        path = "hooks" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        raise HooksConfigError(_describe(error), where=f"{where}: {path}")


def _describe(error: Any) -> str:
    """A user-facing sentence for a jsonschema error, naming what is allowed."""
    kind, value, schema = error.validator, error.instance, error.schema
    if "propertyNames" in error.schema_path:  # a key of the top-level mapping: an event name
        return f"unknown event {_short(value)} (allowed: {', '.join(map(str, schema.get('enum', ())))})"
    if kind == "enum":
        return f"{_short(value)} is not allowed (allowed: {', '.join(map(str, schema['enum']))})"
    if kind == "additionalProperties":
        extra = sorted(set(value) - set(schema.get("properties", {})))
        hint = "; secrets go in an environment variable named by secret_env" if any("secret" in k for k in extra) else ""
        return f"unknown key {', '.join(map(repr, extra))} (allowed: {', '.join(schema['properties'])}{hint})"
    if kind == "required":
        missing = [n for n in schema["required"] if isinstance(value, dict) and n not in value]
        return f"missing required key '{missing[0] if missing else '?'}'"
    if kind == "type":
        expected = schema["type"] if isinstance(schema["type"], str) else " or ".join(schema["type"])
        return f"expected {expected.replace('object', 'a mapping').replace('array', 'a list')}, got {_short(value)}"
    if kind == "oneOf" and "secret_env" in str(error.absolute_path):
        return f"{_short(value)} is not allowed (allowed: one environment variable name, or a list of two for rotation)"
    if kind == "pattern":
        return f"{_short(value)} does not match {schema['pattern']}"
    if kind in ("minItems", "maxItems", "uniqueItems", "minLength", "maxLength"):
        return f"{_short(value)} breaks {kind} {schema[kind]}"
    return error.message.splitlines()[0]


def _short(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."
