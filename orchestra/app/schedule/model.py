"""A schedule's definition: a frozen value validated once, with a digest stored on every firing."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from orchestra.core.errors import BadInputError, CronError
from orchestra.app.schedule import cron

OVERLAP = ("skip", "queue", "allow")
CATCHUP = ("latest", "none", "all")
MAX_JITTER_S = 3600.0
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


@dataclass(frozen=True, slots=True)
class Schedule:
    """What to run and when.

    Attributes:
        name: unique per ORCHESTRA_HOME (letters, digits, ``.``, ``_``, ``-``; at most 63).
        uri: project URI (a local directory is stored as its absolute path).
        cron: the expression as written (5 fields or an ``@`` alias).
        timezone: IANA zone the expression is read in.
        entry_points: ``-e`` targets.
        params: ``-P`` assignments (``k=v`` / ``stage.k=v``).
        version: git branch, tag or commit, resolved at fire time.
        overlap: ``skip`` | ``queue`` | ``allow`` while an earlier run of it is still running.
        catchup: ``latest`` | ``none`` | ``all`` for slots missed while no scheduler ran.
        jitter: seconds; each slot starts up to this late, by a fixed per-slot amount.
        experiment: experiment of the runs.
        hooks_uris: extra webhook sources for the runs and the schedule events.
        source: ``cli`` or ``mlproject:<uri>`` (what ``schedule sync`` manages).
        credentials_env: the environment variable (``USER:PASSWORD``) the scheduler reads the
            git credentials of ``uri`` from; the credentials themselves are never stored.
    """

    name: str
    uri: str
    cron: str
    timezone: str = "UTC"
    entry_points: tuple[str, ...] = ()
    params: tuple[str, ...] = ()
    version: str | None = None
    overlap: str = "skip"
    catchup: str = "latest"
    jitter: float = 0.0
    experiment: str = "Default"
    hooks_uris: tuple[str, ...] = ()
    source: str = "cli"
    credentials_env: str | None = None
    expr: cron.CronExpr = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "expr", cron.parse(self.cron, self.timezone, where=f"schedule {self.name}"))

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("expr", None)
        if data.get("credentials_env") is None:  # older definitions keep their digest
            data.pop("credentials_env", None)
        for key in ("entry_points", "params", "hooks_uris"):
            data[key] = list(data[key])
        return data

    @property
    def digest(self) -> str:
        """sha256 of the canonical definition: which version of the schedule a firing followed."""
        text = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:16]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Schedule":
        known = {k: v for k, v in data.items() if k in _FIELDS}
        for key in ("entry_points", "params", "hooks_uris"):
            known[key] = tuple(known.get(key) or ())
        return cls(**known)


_FIELDS = ("name", "uri", "cron", "timezone", "entry_points", "params", "version", "overlap", "catchup", "jitter",
           "experiment", "hooks_uris", "source", "credentials_env")


def check_name(name: str, *, where: str | None = None) -> str:
    if not _NAME.match(name or ""):
        raise BadInputError(f"invalid schedule name {name!r}", where=where,
                            hint="1-63 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return name


def build(name: str, uri: str, cron_text: str, *, timezone: str | None = None, where: str | None = None,
          **fields: Any) -> Schedule:
    """Validate every field and build a :class:`Schedule`; errors name ``where`` (flag or file key).

    Raises:
        BadInputError / CronError: one line naming the field and what is allowed.
    """
    check_name(name, where=where)
    at = (lambda key: f"{where}.{key}" if where else f"--{key.replace('_', '-')}")
    tz = cron.check_timezone(timezone or "UTC", where=at("timezone"))
    cron.parse(cron_text, tz, where=at("cron"))
    overlap = fields.get("overlap") or "skip"
    if overlap not in OVERLAP:
        raise BadInputError(f"overlap {overlap!r} is not allowed", where=at("overlap"), hint="skip, queue or allow")
    catchup = fields.get("catchup") or "latest"
    if catchup not in CATCHUP:
        raise BadInputError(f"catchup {catchup!r} is not allowed", where=at("catchup"), hint="latest, none or all")
    jitter = fields.get("jitter") or 0.0
    try:
        jitter = float(jitter)
    except (TypeError, ValueError):
        raise BadInputError(f"jitter {jitter!r} is not a number", where=at("jitter"), hint="seconds, 0-3600") from None
    if not 0 <= jitter <= MAX_JITTER_S or jitter != jitter:
        raise BadInputError(f"jitter {jitter:g} is out of range", where=at("jitter"), hint="seconds, 0-3600")
    for param in fields.get("params") or ():
        if "=" not in param or param.startswith("="):
            raise BadInputError(f"parameter {param!r} is not KEY=VALUE", where=at("param"))
    values = {k: v for k, v in fields.items() if k in _FIELDS}
    values.update(overlap=overlap, catchup=catchup, jitter=jitter)
    for key in ("entry_points", "params", "hooks_uris"):
        values[key] = tuple(values.get(key) or ())
    try:
        return Schedule(name=name, uri=uri, cron=cron_text, timezone=tz, **values)
    except CronError:
        raise


MLPROJECT_KEYS = ("cron", "timezone", "parameters", "entry_points", "version", "overlap", "catchup", "jitter")


def from_mlproject(name: str, entry: Mapping[str, Any], uri: str, *, where: str) -> Schedule:
    """One entry of an MLproject ``schedules:`` section (already schema-checked for types)."""
    at = f"{where}: schedules.{name}"
    unknown = sorted(set(entry) - set(MLPROJECT_KEYS))
    if unknown:  # a typo such as `timezon:` must not silently mean UTC
        raise BadInputError(f"unknown key '{unknown[0]}'", where=f"{at}.{unknown[0]}",
                            hint="allowed: " + ", ".join(MLPROJECT_KEYS))
    params = tuple(f"{k}={_text(v)}" for k, v in (entry.get("parameters") or {}).items())
    return build(str(name), uri, str(entry.get("cron", "")), timezone=entry.get("timezone"), where=at,
                 entry_points=tuple(entry.get("entry_points") or ()), params=params,
                 version=entry.get("version"), overlap=entry.get("overlap"), catchup=entry.get("catchup"),
                 jitter=entry.get("jitter"), source=f"mlproject:{uri}")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def jitter_offset(name: str, slot_key: str, jitter: float) -> float:
    """A delay in [0, jitter) fixed per (schedule, slot), so a restart never re-rolls it."""
    if jitter <= 0:
        return 0.0
    digest = hashlib.sha256(f"{name}\0{slot_key}".encode()).digest()
    return (int.from_bytes(digest[:8], "big") / 2**64) * jitter
