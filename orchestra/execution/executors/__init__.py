"""Executors run ready stage attempts; ``create`` picks one from ``--executor``.

``local`` (the default): a thread pool on this machine. ``dask://HOST:PORT``: an existing Dask
cluster (``pip install 'orchestra[dask]'``), imported only when asked for.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

from orchestra.core.options import parse_executor as parse
from orchestra.execution.executors.local import LocalExecutor

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["create", "parse"]


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
        slots = jobs or os.cpu_count() or 1
        return LocalExecutor(slots, pgid_file=pgid_file, sink_for=sink_for), slots
    from orchestra.execution.executors.dask import DaskExecutor
    from orchestra.store import remote

    assert address is not None
    executor = DaskExecutor(address, store_url=remote.configured_url(), sink_for=sink_for)
    try:
        executor.preflight(requests, probe=probe, project_dir=project_dir)
        return executor, jobs or executor.slots()
    except BaseException:
        executor.close()
        raise
