"""Executors run ready stage attempts; ``create`` picks one from ``--executor``.

``local`` (the default): a thread pool on this machine. ``dask://HOST:PORT``: an existing Dask
cluster (``pip install 'orchestra[dask]'``), imported only when asked for.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Mapping

from orchestra.errors import BadInputError

CHOICES = "local or dask://HOST:PORT"


def parse(spec: str) -> tuple[str, str | None]:
    """``("local", None)`` or ``("dask", "tcp://HOST:PORT")``; BadInputError otherwise."""
    from urllib.parse import urlsplit

    if spec in ("", "local"):
        return "local", None
    if spec.startswith("dask://"):
        parts = urlsplit(spec)
        try:
            port = parts.port
        except ValueError:
            port = None
        if parts.hostname and port and not parts.path.strip("/") and not parts.query:
            host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
            return "dask", f"tcp://{host}:{port}"
        raise BadInputError(f"--executor {spec}: expected dask://HOST:PORT", hint="e.g. dask://127.0.0.1:8786")
    raise BadInputError(f"--executor {spec}: unknown executor", hint=CHOICES)


def create(spec: str, *, jobs: int | None, pgid_file: Path, sink_for: Callable[[str], Any] | None,
           requests: Mapping[str, Mapping[str, Any]], probe: Path, project_dir: Path) -> tuple[Any, int]:
    """Build the executor named by ``spec`` and the number of stages to keep in flight.

    For Dask this connects and checks the cluster before anything is stored: the scheduler must
    answer, some worker must satisfy each stage's ``resources``, and without
    ``ORCHESTRA_ARTIFACTS`` the workers must see this machine's files.

    Raises:
        BadInputError: unknown executor, Dask missing, unreachable scheduler, unsatisfiable stage.
    """
    kind, address = parse(spec)
    if kind == "local":
        from orchestra.executors.local import LocalExecutor

        slots = jobs or os.cpu_count() or 1
        return LocalExecutor(slots, pgid_file=pgid_file, sink_for=sink_for), slots
    from orchestra.executors.dask import DaskExecutor
    from orchestra.store import remote

    assert address is not None
    executor = DaskExecutor(address, store_url=remote.configured_url(), sink_for=sink_for)
    try:
        executor.preflight(requests, probe=probe, project_dir=project_dir)
        return executor, jobs or executor.slots()
    except BaseException:
        executor.close()
        raise
