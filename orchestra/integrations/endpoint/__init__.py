"""The run's own MLflow tracking endpoint: stage code that uses the mlflow client just works.

For the duration of a run, orchestra serves the part of MLflow's REST API the mlflow client
calls (experiments, runs, params, metrics, tags, inputs/outputs, metric history, logged models
and the ``mlflow-artifacts`` proxy) on 127.0.0.1 and a free port (a Dask run whose scheduler is
not on this host: the address this host reaches it from). It is started on the first stage that
runs (a run that only loads starts nothing) and stopped at the end of the run. Starting it binds
the listening socket only; the HTTP machinery is imported and served from the first connection
on (most stages never call the mlflow client, and a run should not pay for what they don't use).

Every stage gets ``MLFLOW_TRACKING_URI`` (the endpoint), ``MLFLOW_TRACKING_TOKEN`` (a random
token of that stage; without a valid one every request is 401), ``MLFLOW_EXPERIMENT_ID`` and
``MLFLOW_RUN_ID`` (its own run, made here before it starts: nothing waits on a remote server).
What a stage attempt logs to its run comes back from :meth:`Endpoint.close_stage` and is
recorded with the stage; its artifacts and logged models' files are written into the attempt's
``{outputs}`` under ``mlflow-artifacts/`` and ``mlflow-models/<id>/``, so they are published
with the stage's outputs (and discarded with them when it fails). With a tracking server
configured, the MLflow mirror forwards all of it through the outbox; reads of things this run
did not create are passed through to that server.
"""

from __future__ import annotations

import _socket  # the socket module's core: `socket` itself (with its enums, ~3 ms) waits for a client
import select
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from orchestra.core import log as logger
from orchestra.integrations.endpoint.state import Registry, StageData

TYPE_CHECKING = False
if TYPE_CHECKING:
    from orchestra.core.tracking_uri import TrackingURI
    from orchestra.integrations.endpoint.server import EndpointServer

__all__ = ["Endpoint", "StageData", "bind_host"]
log = logger.get(__name__)
LOOPBACK = "127.0.0.1"


def bind_host(executor: str | None) -> str:
    """Where to listen: loopback, unless stages run on a Dask cluster reached over the network;
    then the local address that routes to its scheduler (the workers reach the driver there)."""
    if not executor or "://" not in executor:
        return LOOPBACK
    host = urlsplit(executor).hostname
    if not host or host in ("localhost",) or host.startswith("127.") or host == "::1":
        return LOOPBACK
    import socket

    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect((host, urlsplit(executor).port or 8786))  # no packet is sent
            return probe.getsockname()[0]
    except OSError:
        return LOOPBACK


class Endpoint:
    """One run's endpoint (see the module docstring); started lazily by the first ``open_stage``.

    Args:
        experiment: the run's experiment name (the stages' ``MLFLOW_EXPERIMENT_ID``).
        remote: the configured tracking server, where reads of unknown things go.
        host: the address to listen on (:func:`bind_host`).
    """

    def __init__(self, experiment: str, *, remote: TrackingURI | None = None, host: str = LOOPBACK) -> None:
        self.registry = Registry(experiment)
        self.remote = remote
        self.host = host
        self._socket: _socket.socket | None = None
        self._wake: tuple[_socket.socket, _socket.socket] | None = None
        self._server: EndpointServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.started_s: float | None = None  # how long starting took (benchmarks print it)

    @property
    def url(self) -> str:
        assert self._socket is not None
        host, port = self._socket.getsockname()[:2]
        return f"http://{host}:{port}"

    def _start(self) -> None:
        with self._lock:
            if self._socket is not None:
                return
            began = time.perf_counter()
            sock = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
            sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
            sock.bind((self.host, 0))
            sock.listen(128)  # connections wait in the backlog until the server below takes them
            self._socket, self._wake = sock, _socket.socketpair()
            self._thread = threading.Thread(target=self._serve, args=(sock, self._wake[0]), name="orchestra-endpoint",
                                            daemon=True)
            self._thread.start()
            self.started_s = time.perf_counter() - began

    def _serve(self, sock: _socket.socket, wake: _socket.socket) -> None:
        """Wait (without the GIL) for the first connection or :meth:`stop`; then serve."""
        ready, _, _ = select.select([sock, wake], [], [])
        if wake in ready:
            return
        import socket

        from orchestra.integrations.endpoint.server import EndpointServer  # the first client is here

        with self._lock:
            if self._socket is not sock:
                return
            listening = socket.socket(fileno=_socket.dup(sock.fileno()))  # the same listening socket, as the server takes it
            server = self._server = EndpointServer(listening, self.registry, self.remote)
        server.serve_forever(poll_interval=0.2)

    def open_stage(self, stage: str, *, staging: Path, outputs: Path) -> dict[str, str]:
        """The MLflow variables of a stage attempt about to start (its run is made now)."""
        self._start()
        slot = self.registry.open_stage(stage, staging, outputs)
        return {"MLFLOW_TRACKING_URI": self.url, "MLFLOW_TRACKING_TOKEN": slot.token,
                "MLFLOW_EXPERIMENT_ID": self.registry.experiment_id, "MLFLOW_RUN_ID": slot.run_id,
                # the caller's settings for another server must not steer the stage's client
                "MLFLOW_TRACKING_USERNAME": "", "MLFLOW_TRACKING_PASSWORD": "", "MLFLOW_EXPERIMENT_NAME": ""}

    def close_stage(self, stage: str, *, published: bool) -> StageData:
        """What the stage's attempt logged; ``published``: its outputs (with the files) were kept."""
        if self._socket is None:
            return StageData()
        return self.registry.close_stage(stage, published=published)

    def stop(self) -> None:
        with self._lock:
            sock, self._socket = self._socket, None
            server, self._server = self._server, None
            wake, self._wake = self._wake, None
        if sock is None:
            return
        assert wake is not None
        wake[1].send(b"x")  # a serve thread still waiting for its first client returns
        if server is not None:
            # shutdown() waits for the serve loop to look at its flag, which it does only between
            # polls (0.2 s): wake it with a connection so a run does not end 0.2 s later than it could.
            import socket

            stopper = threading.Thread(target=server.shutdown, name="orchestra-endpoint-stop", daemon=True)
            stopper.start()
            while stopper.is_alive():
                try:
                    socket.create_connection(sock.getsockname()[:2], timeout=0.5).close()
                except OSError:
                    pass
                stopper.join(0.01)
            server.server_close()
        elif self._thread is not None:
            self._thread.join(5)
        sock.close()
        for end in wake:
            end.close()
