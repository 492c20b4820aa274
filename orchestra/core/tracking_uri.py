"""Tracking URIs: which ones orchestra mirrors to, and how they are shown (credentials never).

orchestra talks to MLflow tracking *servers* only (``http://`` / ``https://``). A URI may carry
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
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]*@")


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
    return _USERINFO.sub(lambda m: m.group("scheme"), text)


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


def configured(explicit: str | None) -> TrackingURI | None:
    """The tracking server of a command: ``--tracking-uri``, else ``MLFLOW_TRACKING_URI``, else None."""
    if explicit:
        return parse(explicit)
    from_env = settings.current().tracking_uri
    if from_env:
        return parse(from_env, where=ENV_VAR)
    return None
