"""One signed POST to one receiver, and what its answer means.

Signing is Standard Webhooks v1: ``webhook-signature: v1,<base64 HMAC-SHA256(id.timestamp.body)>``
keyed with the base64-decoded ``whsec_`` secret, space-separated when two secrets are set, so any
``standardwebhooks`` verifier accepts it. Redirects are never followed (a redirect is how SSRF
guards were bypassed in MLflow, GHSA-7gwp-5pfp-969j); at most ``answer_cap_bytes`` of the answer
is read, for the local log only. ``requests`` is imported inside :func:`post`, so commands that
find nothing to send never load it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import socket
import time
from dataclasses import dataclass
from typing import Mapping
from urllib.parse import urlsplit

from orchestra import __version__
from orchestra.integrations.hooks.config import decode_secret, is_link_local, is_loopback, url_refusal
from orchestra.integrations.outbox.model import Outcome, Verdict
from orchestra.integrations.outbox.retry_policy import RetryPolicy, parse_retry_after
from orchestra.source.project import strip_credentials

DELIVERED, RETRY, DEAD, DISABLED = Verdict.DELIVERED, Verdict.RETRY, Verdict.DEAD, Verdict.DISABLED
USER_AGENT = f"orchestra/{__version__}"


@dataclass(frozen=True, slots=True)
class Policy:
    """Timeouts and the retry schedule of webhook deliveries; tests inject small values.

    Attributes:
        connect_timeout_s: TCP/TLS connect timeout.
        total_timeout_s: the whole attempt (also the socket read timeout).
        retry_delays_s: delay after failed attempt n (1-based) is ``retry_delays_s[n-1]``;
            past the end the delivery is dead (~47 h in all).
        jitter: the delay is multiplied by a uniform factor in this range (full jitter).
        retry_after_cap_s: a receiver's ``Retry-After`` is honoured up to this.
        answer_cap_bytes: how much of the answer is kept for the log.
        cooldown_s: after a receiver refused the connection, its other deliveries wait this long.
    """

    connect_timeout_s: float = 5.0
    total_timeout_s: float = 15.0
    retry_delays_s: tuple[float, ...] = (5, 30, 120, 600, 1800, 3600, 10800, 21600, 43200, 86400)
    jitter: tuple[float, float] = (0.5, 1.0)
    retry_after_cap_s: float = 3600.0
    answer_cap_bytes: int = 4096
    cooldown_s: float = 5.0

    @property
    def lease_s(self) -> float:
        """How long a claimed delivery stays invisible to other senders (one attempt, and margin)."""
        return self.connect_timeout_s + self.total_timeout_s + 5.0

    @property
    def retry(self) -> RetryPolicy:
        """The outbox's retry policy: one attempt, then one more per delay."""
        return RetryPolicy(tuple(self.retry_delays_s), len(self.retry_delays_s) + 1, self.jitter,
                           self.retry_after_cap_s)

    def next_delay(self, attempts: int, retry_after_s: float | None = None) -> float | None:
        """Seconds until the next attempt after ``attempts`` failures, or None when out of retries."""
        return self.retry.next_delay(attempts, retry_after_s)


@dataclass(frozen=True, slots=True)
class Target:
    """Where and how to send: what a delivery remembers of its hook (never the secret)."""

    url: str
    name: str
    secret_envs: tuple[str, ...] = ()
    allow_http: bool = False


class SecretMissingError(Exception):
    """A ``secret_env`` variable is unset or invalid in this process (the message names it)."""


def new_secret() -> str:
    """A fresh Standard Webhooks secret: ``whsec_`` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(os.urandom(32)).decode("ascii")


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>``."""
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def build_headers(target: Target, event_id: str, event_name: str, attempt: int, body: bytes, *,
                  timestamp: int | None = None, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """All request headers of one attempt, signed with every secret the target names.

    Raises:
        SecretMissingError: a named secret variable is unset or invalid here.
    """
    env = os.environ if environ is None else environ
    ts = int(time.time()) if timestamp is None else timestamp
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": event_id,
        "webhook-timestamp": str(ts),
        "X-Orchestra-Event": event_name,
        "X-Orchestra-Attempt": str(attempt),
    }
    signatures = []
    for name in target.secret_envs:
        value = env.get(name)
        if not value:
            raise SecretMissingError(f"secret variable {name} is not set")
        try:
            signatures.append(sign(decode_secret(value), event_id, ts, body))
        except ValueError:
            raise SecretMissingError(f"secret variable {name} does not hold a whsec_ secret") from None
    if signatures:
        headers["webhook-signature"] = " ".join(signatures)
    return headers


def post(target: Target, event_id: str, event_name: str, attempt: int, body: bytes, policy: Policy) -> Outcome:
    """Send one attempt and classify the answer; never raises.

    2xx → delivered; network error, timeout, 408, 429, 5xx → retry; 410 → disabled; any other
    3xx/4xx → dead (a redirect is not followed; a receiver bug is not fixed in minutes). A
    connection that could not be made is ``unavailable``: the receiver's breaker opens.
    """
    refusal = url_refusal(target.url, target.allow_http) or _resolves_link_local(target.url)
    if refusal:
        return Outcome(DEAD, error=refusal)
    try:
        headers = build_headers(target, event_id, event_name, attempt, body)
    except SecretMissingError as exc:
        return Outcome(RETRY, error=str(exc))  # a later process may have it set
    import requests

    host = urlsplit(target.url).hostname or ""
    # Environment proxies must not capture loopback receivers; None removes a proxy key in requests.
    proxies = {"http": None, "https": None} if is_loopback(host) else None
    started = time.monotonic()
    try:
        with requests.Session() as session:
            response = session.post(
                target.url, data=body, headers=headers, allow_redirects=False, stream=True,
                timeout=(policy.connect_timeout_s, policy.total_timeout_s), proxies=proxies,
            )
            with response:
                answer = response.raw.read(policy.answer_cap_bytes, decode_content=True) or b""
    except requests.Timeout:
        return Outcome(RETRY, error="timeout", latency_ms=_ms(started))
    except requests.ConnectionError as exc:
        return Outcome(RETRY, error=f"connection error: {_reason(exc, target.url)}", latency_ms=_ms(started),
                       unavailable=True)
    except Exception as exc:  # noqa: BLE001 - urllib3 read errors, invalid headers: all retryable noise
        return Outcome(RETRY, error=f"{type(exc).__name__}: {_reason(exc, target.url)}", latency_ms=_ms(started))
    latency = _ms(started)
    status = response.status_code
    text = answer.decode("utf-8", errors="replace")
    if latency > policy.total_timeout_s * 1000:
        # requests has no total timeout, only per-read ones: a drip-feeding receiver ends here.
        return Outcome(RETRY, status, "timeout (total)", latency, text)
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if 200 <= status < 300:
        return Outcome(DELIVERED, status, None, latency, text)
    if status == 410:
        return Outcome(DISABLED, status, "HTTP 410 Gone: hook disabled", latency, text)
    if status in (408, 429) or status >= 500:
        return Outcome(RETRY, status, f"HTTP {status}", latency, text, retry_after)
    if 300 <= status < 400:
        location = strip_credentials(response.headers.get("Location", "?"))
        return Outcome(DEAD, status, f"HTTP {status} redirect to {location} not followed", latency, text)
    return Outcome(DEAD, status, f"HTTP {status}", latency, text)


def _resolves_link_local(url: str) -> str | None:
    """Refuse hosts that resolve to link-local addresses (cloud metadata endpoints)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if is_loopback(host):
        return None
    try:
        infos = socket.getaddrinfo(host, parts.port or (443 if parts.scheme == "https" else 80))
    except (OSError, UnicodeError):
        return None  # the POST will fail and be retried like any network error
    for info in infos:
        address = str(info[4][0])
        if is_link_local(address):
            return f"{host} resolves to link-local address {address}: refused"
    return None


def _reason(exc: BaseException, url: str) -> str:
    """The innermost cause, short: ``NewConnectionError: [Errno 111] Connection refused``."""
    for _ in range(5):  # requests → urllib3 MaxRetryError → NewConnectionError / NameResolutionError
        inner = getattr(exc, "reason", None)
        if not isinstance(inner, BaseException) and exc.args and isinstance(exc.args[0], BaseException):
            inner = exc.args[0]
        if not isinstance(inner, BaseException):
            break
        exc = inner
    text = str(exc)
    # urllib3 prefixes "HTTPSConnection(host=..., port=...): Failed to ...: " — keep the cause.
    text = text.rsplit("): ", 1)[-1] if text.startswith("HTTP") else text
    text = text.removeprefix("Failed to establish a new connection: ")
    # Exception texts may quote the URL; a token in userinfo must not reach the log.
    text = text.replace(url, strip_credentials(url))
    return text[:200]


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
