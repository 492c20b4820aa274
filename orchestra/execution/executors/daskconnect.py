"""Reaching a Dask cluster: the client (a one-line error when the scheduler cannot be reached),
its prompt batching, the probe each worker answers before a run (its orchestra version,
whether it sees the driver's files, its ``ORCHESTRA_HOME``), and a worker's outcome event sent
with its task's end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orchestra import __version__
from orchestra.core import settings
from orchestra.core.errors import BadInputError

CONNECT_TIMEOUT_S = 5.0
END_FLUSH_S = 0.01  # an outcome event no task end follows leaves after this


def _check_reachable(address: str, timeout: float) -> None:
    """Fail at once on a refused connection: distributed's client retries until its timeout."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(address)
    if parts.scheme not in ("tcp", "") or parts.hostname is None or parts.port is None:
        return  # other transports: the client decides
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=timeout):
            pass
    except ConnectionRefusedError:
        raise BadInputError(f"cannot reach the Dask scheduler at {address}: connection refused", where="--executor",
                            hint="is it running, and is the address right?") from None
    except OSError:
        pass  # unresolvable or slow: the client's own attempt reports it


def connect(address: str, timeout: float | None = None) -> Any:
    """A distributed.Client for ``address`` (``tcp://host:port``), or a one-line exit-2 error.

    The connect timeout is ``timeout``, else ``ORCHESTRA_DASK_CONNECT_TIMEOUT`` seconds (5).
    """
    if timeout is None:
        try:
            timeout = float(settings.current().dask_connect_timeout or CONNECT_TIMEOUT_S)
        except ValueError:
            raise BadInputError("ORCHESTRA_DASK_CONNECT_TIMEOUT: not a number of seconds") from None
    try:
        import distributed
    except ImportError:
        raise BadInputError("--executor dask://: Dask is not installed",
                            hint="pip install 'orchestra[dask]'") from None
    _check_reachable(address, timeout)
    import logging

    # A failed connect logs a traceback from distributed's loop; the error below says it all.
    logging.getLogger("distributed").setLevel(logging.CRITICAL)
    try:
        client = distributed.Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise BadInputError(f"cannot reach the Dask scheduler at {address}: {str(exc).splitlines()[0][:200]}",
                            where="--executor", hint="is it running, and is the address right?") from None
    # The client logs tracebacks when it loses the scheduler; orchestra reports it per stage.
    logging.getLogger("distributed").setLevel(logging.WARNING)
    logging.getLogger("distributed.client").setLevel(logging.CRITICAL)
    return client


def prompt_submits(client: Any) -> None:
    """Send the client's messages to the scheduler within 2 ms of the previous batch (Dask's
    client waits 10 ms; its workers and scheduler 2-5 ms): a chain submits its next stage right
    after the previous one's futures were released, which otherwise waits out that interval."""
    stream = getattr(client, "scheduler_comm", None)
    if stream is not None and isinstance(getattr(stream, "interval", None), float):
        stream.interval = min(stream.interval, 0.002)


def probe_worker(path: str | None, project_dir: str) -> tuple[str, str | None, str]:
    """Runs on each worker: its orchestra version, the driver's token if it can see it, its
    ``ORCHESTRA_HOME``."""
    home = str(settings.home())
    if path is None:
        return __version__, None, home
    try:
        return __version__, Path(path).read_text() if Path(project_dir).is_dir() else None, home
    except OSError:
        return __version__, None, home


def with_the_end(worker: Any, topic: str, msg: list[Any]) -> None:
    """Log ``msg`` under ``topic`` in the worker's batch that reports the task's end, not in one
    of its own: an event sent alone, just before the task ends, makes the end wait out the
    worker's batching interval, and the driver's next submission then reaches the scheduler
    while it schedules the stage that was waiting on this one. A timer flushes it anyway if no
    end follows (a task Dask cancelled meanwhile)."""
    stream = getattr(worker, "batched_stream", None)
    if not isinstance(getattr(stream, "buffer", None), list) or not hasattr(stream, "waker"):
        worker.log_event(topic, msg)  # another distributed: its own batching
        return
    full = {"op": "log-event", "topic": topic, "msg": msg}

    def queue() -> None:  # on the worker's event loop, which alone touches the stream
        if stream.comm is not None and not stream.comm.closed():
            stream.buffer.append(full)
            worker.loop.call_later(END_FLUSH_S, stream.waker.set)

    worker.loop.add_callback(queue)
