"""Reads the endpoint cannot answer itself, passed through to the configured tracking server.

Only GETs and the read-only POSTs (searches) are forwarded, with this process's credentials for
that server (never the stage's endpoint token). No server, or one that does not answer within a
few seconds: MLflow's ``RESOURCE_DOES_NOT_EXIST`` answer, as a server without the thing would give.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orchestra.core.tracking_uri import TrackingURI

READ_POSTS = frozenset({"api/2.0/mlflow/runs/search", "api/2.0/mlflow/experiments/search",
                        "api/2.0/mlflow/logged-models/search"})
TIMEOUT_S = 10.0
_KEEP = ("Content-Type", "Content-Length", "Content-Disposition")


@dataclass(frozen=True, slots=True)
class Forwarded:
    """The configured server's answer to a forwarded request."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


def forwardable(method: str, path: str) -> bool:
    return method == "GET" or (method == "POST" and path in READ_POSTS)


def forward(remote: TrackingURI, method: str, path_and_query: str, body: bytes | None,
            content_type: str | None) -> Forwarded | None:
    """The server's answer, or None when it cannot be reached."""
    import urllib.error  # only runs that read what they did not create pay for it
    import urllib.request

    request = urllib.request.Request(f"{remote.base}/{path_and_query.lstrip('/')}", data=body, method=method)
    if content_type:
        request.add_header("Content-Type", content_type)
    if remote.token:
        request.add_header("Authorization", f"Bearer {remote.token}")
    elif remote.username is not None:
        pair = f"{remote.username}:{remote.password or ''}".encode()
        request.add_header("Authorization", "Basic " + base64.b64encode(pair).decode())
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310 - http(s) only
            return Forwarded(response.status, _headers(response.headers), response.read())
    except urllib.error.HTTPError as exc:
        if exc.code >= 500:
            return None
        return Forwarded(exc.code, _headers(exc.headers), exc.read())
    except (OSError, ValueError):
        return None


def _headers(headers) -> tuple[tuple[str, str], ...]:  # noqa: ANN001
    return tuple((k, v) for k, v in headers.items() if k in _KEEP and k != "Content-Length")
