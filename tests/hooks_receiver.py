"""A real HTTP receiver on 127.0.0.1 (port 0) for webhook tests, and synthetic event sequences.

Each request is recorded when it arrives; what it gets back is decided by ``responder(request,
index)`` → :class:`Reply` (status, headers, body, delay or hang). Waiting is on a condition with
a deadline, never sleep-then-hope.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from orchestra.core import events as ev
from orchestra.core.status import EventStatus


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() on arrival

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    delay_s: float = 0.0
    hang: bool = False  # never answer (until the receiver closes)


Responder = Callable[[Received, int], Reply]


class Receiver:
    """Serve on a free loopback port (or ``port``) in a daemon thread; use as a context manager."""

    def __init__(self, responder: Responder | None = None, port: int = 0) -> None:
        self.responder: Responder = responder or (lambda request, index: Reply())
        self.requests: list[Received] = []
        self._cond = threading.Condition()
        self._release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Received(self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                                   body, time.monotonic())
                with receiver._cond:
                    index = len(receiver.requests)
                    receiver.requests.append(request)
                    receiver._cond.notify_all()
                reply = receiver.responder(request, index)
                if reply.hang:
                    receiver._release.wait()
                    return
                if reply.delay_s and receiver._release.wait(reply.delay_s):
                    return
                try:
                    self.send_response(reply.status)
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except OSError:
                    pass  # the sender gave up (timeout): nothing to answer

            do_POST = do_GET = _serve

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def url(self) -> str:
        return self.base + "/hook"

    def wait_for(self, count: int, timeout: float = 60.0, *, path: str | None = None) -> list[Received]:
        """Wait until ``count`` requests (to ``path``, if given) arrived; fail after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                got = [r for r in self.requests if path is None or r.path == path]
                if len(got) >= count:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"receiver got {len(got)} of {count} requests in {timeout}s")
                self._cond.wait(left)

    def close(self) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> "Receiver":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def wait_until(predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.02) -> Any:
    """Poll ``predicate`` until truthy (returned) or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in {timeout}s")
        time.sleep(interval)


def pipeline_events(run_id: str | None = None) -> list[ev.Event]:
    """A 3-stage run (prepare → train → evaluate): prepare is loaded from cache, train fails once,
    is retried and fails again, evaluate is skipped; the run fails."""
    run = run_id or uuid.uuid4().hex
    project = {"uri": "https://user:tok3n@git.example/ml/wine.git", "commit": "9c1e" * 10}
    t = time.time()

    def event(name: str, **kw: Any) -> ev.Event:
        stage = kw.get("stage")
        return ev.Event(name=name, run_id=run, experiment="wine", timestamp=t,
                        project={**project, "entry_point": stage or "main"},
                        params={"alpha": 0.5, "rows": 1000}, **kw)

    previous = uuid.uuid4().hex
    return [
        event(ev.RUN_STARTED),
        event(ev.STAGE_ENDED, stage="prepare", status=EventStatus.LOADED, cache_key="sha256:" + "a" * 64,
              loaded_from={"run_id": previous, "stage": "prepare"}),
        event(ev.STAGE_STARTED, stage="train", attempt=1, cache_key="sha256:" + "b" * 64),
        event(ev.STAGE_RETRYING, stage="train", attempt=1, exit_code=1, duration_s=0.25,
              message="exit code 1 (ValueError: alpha out of range)"),
        event(ev.STAGE_STARTED, stage="train", attempt=2, cache_key="sha256:" + "b" * 64),
        event(ev.STAGE_ENDED, stage="train", status=EventStatus.FAILED, attempt=2, exit_code=1, duration_s=0.31,
              message="exit code 1 (" + "x" * 3000 + ")"),
        event(ev.STAGE_ENDED, stage="evaluate", status=EventStatus.SKIPPED, message="upstream train failed"),
        event(ev.RUN_ENDED, status=EventStatus.FAILED, duration_s=1.2, message="stage train failed"),
    ]
