"""A real smart-HTTP git server on 127.0.0.1 with basic auth: ``git http-backend`` (CGI) behind
a small threading HTTP server run in a child process (so it serves while the test blocks)."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

from tests.integration.gitservers import free_port, wait_port

_SERVER = r'''
import base64, os, subprocess, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT, PORT, EXPECTED, SEEN = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]

class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _serve(self):
        auth = self.headers.get("Authorization", "")
        with open(SEEN, "a") as seen:
            seen.write(self.path + "\n")
        if auth != "Basic " + EXPECTED:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path, _, query = self.path.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        env = {"PATH": os.environ["PATH"], "GIT_PROJECT_ROOT": ROOT, "GIT_HTTP_EXPORT_ALL": "1",
               "PATH_INFO": path, "QUERY_STRING": query, "REQUEST_METHOD": self.command,
               "CONTENT_TYPE": self.headers.get("Content-Type", ""), "CONTENT_LENGTH": str(len(body)),
               "REMOTE_USER": "user", "REMOTE_ADDR": "127.0.0.1",
               "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
               "GIT_PROTOCOL": self.headers.get("Git-Protocol", "")}
        out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        status, headers = 200, []
        for line in head.decode().split("\r\n"):
            key, _, value = line.partition(":")
            if key.lower() == "status":
                status = int(value.split()[0])
            elif key:
                headers.append((key, value.strip()))
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _serve

ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
'''


class HttpGitServer:
    """Serves the bare repositories under ``root`` at http://127.0.0.1:PORT/NAME, user:password only."""

    def __init__(self, root: Path, user: str, password: str) -> None:
        self.port = free_port()
        self.seen = root / ".requests"
        expected = base64.b64encode(f"{user}:{password}".encode()).decode()
        self.proc = subprocess.Popen([sys.executable, "-c", _SERVER, str(root), str(self.port), expected,
                                      str(self.seen)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     env={**os.environ})
        wait_port(self.port)

    def url(self, name: str, credentials: str = "") -> str:
        return f"http://{credentials + '@' if credentials else ''}127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
