"""The HTTP side of the endpoint: a ThreadingHTTPServer in a daemon thread, bearer tokens, routing.

Every request needs ``Authorization: Bearer <token>`` with the token of one of the run's stages
(the mlflow client sends ``MLFLOW_TRACKING_TOKEN`` so): anything else is 401. Known paths are
answered from the registry; unknown ones with MLflow's ``ENDPOINT_NOT_FOUND`` (404); a read of
something this pipeline did not create goes to the configured tracking server (passthrough).
"""

from __future__ import annotations

import io
import json
import shutil
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from orchestra.core import log as logger
from orchestra.integrations.endpoint import files, models, passthrough, tracking
from orchestra.integrations.endpoint.shapes import ApiError, NotHere
from orchestra.integrations.endpoint.state import Registry, StageSlot

if TYPE_CHECKING:
    from orchestra.core.tracking_uri import TrackingURI

log = logger.get(__name__)
_API = ("/api/2.0/mlflow/", "/ajax-api/2.0/mlflow/")
_ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
MAX_JSON = 64 << 20


class EndpointServer(ThreadingHTTPServer):
    """The server of one run: its registry and (optionally) the tracking server reads fall back to."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, listening: socket.socket, registry: Registry, remote: TrackingURI | None) -> None:
        """Serve on ``listening``, a socket already bound and listening (see ``Endpoint._start``)."""
        super().__init__(listening.getsockname()[:2], Handler, bind_and_activate=False)
        self.socket.close()  # the one the base class made: connections wait on ``listening``
        self.socket = listening
        self.registry = registry
        self.remote = remote


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go as separate writes: no 40 ms delayed-ACK stall
    server: EndpointServer
    server_version = "orchestra-endpoint"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        log.debug("endpoint: " + format, *args)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    # -- plumbing --------------------------------------------------------------------------
    def _length(self) -> int:
        try:
            return max(0, int(self.headers.get("Content-Length") or 0))
        except ValueError:
            return 0

    def _send(self, status: int, body: bytes, content_type: str = "application/json",
              extra: tuple[tuple[str, str], ...] = ()) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in extra:
            if key.lower() != "content-type":
                self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, payload: Any) -> None:
        if status >= 400:  # the request's body may be unread: never parse it as the next request
            self.close_connection = True
        self._send(status, json.dumps(payload).encode())

    def _slot(self) -> StageSlot | None:
        header = self.headers.get("Authorization") or ""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        return self.server.registry.by_token.get(token.strip())

    # -- dispatch --------------------------------------------------------------------------
    def _serve(self, method: str) -> None:
        parts = urlsplit(self.path)
        path = parts.path
        body: bytes | None = None
        try:
            if path == "/health":
                self._send(200, b"OK", "text/plain")
                return
            slot = self._slot()
            if slot is None:
                self._drain()
                self._json(401, {"error_code": "UNAUTHENTICATED",
                                 "message": "a bearer token of this run is required (MLFLOW_TRACKING_TOKEN)"})
                return
            if path.startswith(_ARTIFACTS) and method in ("PUT", "GET"):
                self._artifacts(method, slot, path, parts.query)
                return
            body = self.rfile.read(self._length()) if method != "GET" and self._length() <= MAX_JSON else b""
            api = next((path[len(p):] for p in _API if path.startswith(p)), None)
            if api is None:
                raise ApiError("ENDPOINT_NOT_FOUND", f"No API endpoint {method} {path}", 404)
            self._json(200, self._api(method, api.strip("/"), slot, parts.query, body))
        except NotHere as exc:
            self._not_here(method, exc, body)
        except ApiError as exc:
            self._json(exc.status, exc.body())
        except (ValueError, TypeError, KeyError) as exc:
            self._json(400, {"error_code": "INVALID_PARAMETER_VALUE", "message": f"bad request: {exc}"})
        except Exception as exc:  # noqa: BLE001 - one bad request never stops the endpoint
            log.warning("endpoint: %s %s failed", method, path, exc_info=True)
            # 400, not 500: the mlflow client retries a 5xx for minutes, and a stage must never hang here
            self._json(400, {"error_code": "INTERNAL_ERROR", "message": f"{type(exc).__name__}: {exc}"})

    def _drain(self) -> None:
        if self.command in ("POST", "PUT", "PATCH", "DELETE") and 0 < self._length() <= MAX_JSON:
            self.rfile.read(self._length())
        elif self._length():
            self.close_connection = True

    def _api(self, method: str, api: str, slot: StageSlot, query: str, body: bytes) -> dict[str, Any]:
        args = _args(query, body)
        registry = self.server.registry
        route_parts: tuple[str, ...] = ()
        if api == "logged-models" or api.startswith("logged-models/"):
            rest = api[len("logged-models"):].strip("/")
            if method == "GET" and rest.endswith("/artifacts/directories"):
                model_id = rest.split("/", 1)[0]
                found = registry.models.get(model_id)
                if found is None:
                    raise NotHere(f"Logged model with ID '{model_id}'")
                return files.model_listing(registry, model_id, found.experiment_id,
                                           str(args.get("artifact_directory_path") or ""))
            handler, route_parts = models.route(method, rest)
        else:
            handler = tracking.ROUTES.get((method, api))
        if handler is None:
            raise ApiError("ENDPOINT_NOT_FOUND", f"No API endpoint {method} /{api}", 404)
        with registry.lock:
            return handler(tracking.Call(registry, slot, args, route_parts))

    def _artifacts(self, method: str, slot: StageSlot, path: str, query: str) -> None:
        location = unquote(path[len(_ARTIFACTS):]).strip("/")
        registry = self.server.registry
        if method == "PUT":
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                data = self._chunked()
                self._json(200, files.upload(registry, slot, location, io.BytesIO(data), len(data)))
            else:
                self._json(200, files.upload(registry, slot, location, self.rfile, self._length()))
            return
        if not location:  # a listing: ?path=<location>
            self._json(200, files.listing(registry, unquote(parse_qs(query).get("path", [""])[0]).strip("/")))
            return
        target = files.download(registry, location)
        with open(target, "rb") as handle:
            size = target.stat().st_size
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            shutil.copyfileobj(handle, self.wfile, 1 << 20)

    def _chunked(self) -> bytes:
        """A body sent with ``Transfer-Encoding: chunked`` (a client streaming an upload)."""
        parts = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline()

    def _not_here(self, method: str, exc: NotHere, body: bytes | None) -> None:
        remote = self.server.remote
        if remote is not None and passthrough.forwardable(method, urlsplit(self.path).path.lstrip("/")):
            answer = passthrough.forward(remote, method, self.path, body if method != "GET" else None,
                                         self.headers.get("Content-Type"))
            if answer is not None:
                self._send(answer.status, answer.body, dict(answer.headers).get("Content-Type", "application/json"),
                           answer.headers)
                return
        self._json(exc.status, exc.body())


def _args(query: str, body: bytes) -> dict[str, Any]:
    """A request's arguments: its JSON body, else its query string (repeated keys are lists)."""
    if body:
        loaded = json.loads(body)
        if not isinstance(loaded, dict):
            raise ApiError("MALFORMED_REQUEST", "the request body must be a JSON object")
        return loaded
    args: dict[str, Any] = {}
    for key, values in parse_qs(query, keep_blank_values=True).items():
        args[key] = values[0] if len(values) == 1 else values
    return args

