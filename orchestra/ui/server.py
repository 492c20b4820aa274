"""``orchestra ui``: a threading HTTP server on loopback (or, with a token, another address).

The standard library's :class:`http.server.ThreadingHTTPServer` is enough for a local,
read-only app: no dependency to install, one thread per request, and every page reads the
store through SQLite read-only connections, so it serves while pipelines run. On an address
other than loopback every request must carry the token printed at start (``?token=`` once,
then a cookie, or ``Authorization: Bearer``).
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import socket
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from orchestra.core.errors import BadInputError, OrchestraError, RunNotFoundError
from orchestra.ui import routes
from orchestra.ui.reply import Reply, json_reply

_COOKIE = "orchestra_ui_token"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Handler(BaseHTTPRequestHandler):
    server: UIServer  # type: ignore[assignment]
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass  # quiet: the terminal shows the URL, not every request

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        set_cookie = self._authorized(query)
        if set_cookie is None:
            self._send(json_reply({"error": "a valid token is required (see the URL orchestra ui printed)"}, 403))
            return
        try:
            reply = routes.dispatch(url.path, query)
        except RunNotFoundError as exc:
            reply = json_reply({"error": str(exc)}, 404)
        except BadInputError as exc:
            reply = json_reply({"error": str(exc)}, 400)
        except OrchestraError as exc:
            reply = json_reply({"error": str(exc)}, 500)
        if set_cookie:
            reply = Reply(reply.status, reply.content_type, reply.body, reply.headers + (
                ("Set-Cookie", f"{_COOKIE}={self.server.token}; HttpOnly; SameSite=Strict; Path=/"),))
        self._send(reply)

    def _authorized(self, query: dict[str, str]) -> bool | None:
        """None: refused; False: allowed; True: allowed, and the token goes into a cookie."""
        token = self.server.token
        if not token:
            return False
        offered = query.pop("token", None)
        if offered is not None and hmac.compare_digest(offered, token):
            return True
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer ") and hmac.compare_digest(auth[7:], token):
            return False
        cookie = SimpleCookie(self.headers.get("Cookie", ""))
        if _COOKIE in cookie and hmac.compare_digest(cookie[_COOKIE].value, token):
            return False
        return None

    def _send(self, reply: Reply) -> None:
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            # scripts only from this server; inline styles are how the charts and bars are sized
            self.send_header("Content-Security-Policy", "default-src 'self'; script-src 'self'; "
                                                        "style-src 'self' 'unsafe-inline'; img-src 'self' data:")
            for name, value in reply.headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            pass


class UIServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host: str, port: int, token: str | None) -> None:
        self.token = token
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), _Handler)


def create(host: str = "127.0.0.1", port: int = 8765, token: str | None = None) -> UIServer:
    """A bound server; a host other than loopback gets a token (a new random one unless given).

    Raises:
        BadInputError: the address cannot be bound (in use, unknown host).
    """
    if not is_loopback(host) and not token:
        token = secrets.token_urlsafe(24)
    try:
        return UIServer(host, port, token)
    except OSError as exc:
        raise BadInputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}", where="--host/--port",
                            hint="choose another --port (0 picks a free one)") from exc


def url_of(server: UIServer) -> str:
    host, port = server.server_address[:2]
    shown = f"[{host}]" if ":" in str(host) else host
    suffix = f"/?token={server.token}" if server.token else "/"
    return f"http://{shown}:{port}{suffix}"


__all__ = ["UIServer", "create", "is_loopback", "url_of"]
