"""Tracking URIs: which ones orchestra mirrors to, and how they are shown (credentials never).

orchestra talks to MLflow tracking *servers* only (``http://`` / ``https://``). Any other
tracking URI (``sqlite:``, ``file:``, a plain path, ``databricks``, …) is an MLflow *store*: a
run never fails on one; it is kept locally and :func:`store_notice` says how to mirror it. A URI may carry
``user:password@`` (sent as HTTP basic auth, as the mlflow client does); everything shown to a
user, stored in a tag or written to mirror.sqlite uses :attr:`TrackingURI.display`, which has
the credentials removed. ``MLFLOW_TRACKING_USERNAME`` / ``_PASSWORD`` / ``_TOKEN`` are honoured
as by the mlflow client.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from orchestra.core import settings
from orchestra.core.errors import BadInputError

ENV_VAR = "MLFLOW_TRACKING_URI"
_USERINFO = r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]*@"  # compiled at the first text with an "@"


class TrackingURIError(BadInputError):
    """A tracking URI orchestra cannot mirror to (exit 2)."""


@dataclass(frozen=True, slots=True)
class TrackingURI:
    """A validated tracking server address.

    Attributes:
        raw: as given (may hold credentials: only ever passed to stage processes, never shown).
        base: scheme://host[:port][/prefix] without credentials or trailing slash.
        display: what is printed and stored (same as ``base``).
        username/password: basic auth from the URI or MLFLOW_TRACKING_USERNAME/PASSWORD.
        token: bearer token from MLFLOW_TRACKING_TOKEN.
    """

    raw: str
    base: str
    username: str | None = None
    password: str | None = None
    token: str | None = None

    @property
    def display(self) -> str:
        return self.base


def redact(text: str) -> str:
    """``text`` with every ``scheme://user:secret@`` reduced to ``scheme://``."""
    if "@" not in text:
        return text
    return re.sub(_USERINFO, lambda m: m.group("scheme"), text)


def parse(value: str, *, where: str = "--tracking-uri") -> TrackingURI:
    """Validate a tracking URI.

    Raises:
        TrackingURIError: not an ``http(s)://host`` URI.
    """
    text = value.strip()
    try:
        parts = urlsplit(text)
        port = parts.port  # raises on a non-numeric port
    except ValueError:
        raise TrackingURIError(f"{where} {redact(text)!r} is not a valid URL",
                               hint="e.g. http://127.0.0.1:5000") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise TrackingURIError(
            f"{where} {redact(text)!r}: orchestra mirrors runs only to MLflow tracking servers",
            hint="use http(s)://host:port of an `mlflow server`; file:, sqlite: and databricks URIs are not supported")
    host = parts.hostname
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = host + (f":{port}" if port else "")
    base = urlunsplit((parts.scheme.lower(), netloc, parts.path.rstrip("/"), "", ""))
    from urllib.parse import unquote

    env = settings.current()
    username = unquote(parts.username) if parts.username else env.tracking_username
    password = unquote(parts.password) if parts.password else env.tracking_password
    return TrackingURI(raw=text, base=base, username=username, password=password, token=env.tracking_token)


def is_server(value: str) -> bool:
    """``value`` names a tracking server (http or https), well formed or not."""
    return urlsplit(value.strip()).scheme.lower() in ("http", "https")


def _chosen(explicit: str | None) -> tuple[str, str] | None:
    """(value, where) of ``--tracking-uri``, else ``MLFLOW_TRACKING_URI``, else None."""
    if explicit and explicit.strip():
        return explicit, "--tracking-uri"
    from_env = settings.current().tracking_uri
    return (from_env, ENV_VAR) if from_env and from_env.strip() else None


def configured(explicit: str | None) -> TrackingURI | None:
    """The tracking server of a command: ``--tracking-uri``, else ``MLFLOW_TRACKING_URI``, else
    None (also when that URI is a store, not a server: see :func:`configured_store`)."""
    chosen = _chosen(explicit)
    if chosen is None or not is_server(chosen[0]):
        return None
    return parse(chosen[0], where=chosen[1])


def configured_store(explicit: str | None) -> tuple[str, str] | None:
    """(URI without credentials, where it came from) when the configured tracking URI is an MLflow
    store orchestra does not write to (``sqlite:``, ``file:``, a path, ``databricks``, …)."""
    chosen = _chosen(explicit)
    if chosen is None or is_server(chosen[0]):
        return None
    return redact(chosen[0].strip()), chosen[1]


def store_notice(explicit: str | None, run_id: str) -> str | None:
    """The one line saying that run ``run_id`` was kept locally and how to mirror it, or None."""
    found = configured_store(explicit)
    if found is None:
        return None
    from shlex import quote

    store, where = found
    kept = f"{where} {store} is an MLflow store, not a tracking server: run {run_id} is kept locally"
    if store.split(":", 1)[0].lower() in ("databricks", "databricks-uc", "uc"):
        return (f"{kept}; to mirror it: orchestra runs sync {run_id} --tracking-uri https://<workspace host> "
                "(with MLFLOW_TRACKING_TOKEN set)")
    return (f"{kept}; to mirror it: mlflow server --backend-store-uri {quote(store)} --port 5000, then "
            f"orchestra runs sync {run_id} --tracking-uri http://127.0.0.1:5000")
