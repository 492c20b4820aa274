"""A sweep's own MLflow run: the members' parent runs nest under it, their stages under them.

:func:`open_sweep` registers the sweep's target (stage ``__sweep__``, run id = the sweep id)
before any member starts; it is created on the server by the first member's sender, before that
member's parent run, which gets ``mlflow.parentRunId`` = the sweep run (see
:class:`~orchestra.integrations.tracking.apply.Applier`). :func:`close_sweep` queues the end: the
fixed params, the best member's metrics and tags, the status; it waits a bounded time for them,
and what is left is sent by ``orchestra runs sync SWEEP_ID``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

from orchestra.core.layout import orchestra_home
from orchestra.core.report import STDERR
from orchestra.core.tracking_uri import TrackingURI
from orchestra.integrations.tracking import queue
from orchestra.integrations.tracking.deliverer import send_pending

if TYPE_CHECKING:
    from orchestra.core.report import Reporter

_DRAIN_S = 60.0  # the end of the sweep waits at most this long for the server (many runs end at once)


@dataclass(frozen=True, slots=True)
class SweepMirror:
    """The sweep's run on one server (what :func:`close_sweep` needs)."""

    uri: TrackingURI
    sweep_id: str
    params: Mapping[str, str]


def open_sweep(uri: TrackingURI, sweep_id: str, *, experiment: str, experiment_id: str | None, size: int,
               keys: list[str], params: Mapping[str, str], run_name: str | None = None) -> SweepMirror:
    """Register the sweep's run (nothing is sent here: the members' senders create it first)."""
    conn = queue.open_db(orchestra_home())
    tags = {queue.SWEEP_RUN_TAG: sweep_id, "orchestra.sweep.size": str(size),
            "orchestra.sweep.keys": ",".join(keys), "mlflow.runName": run_name or f"sweep {sweep_id[:8]}"}
    with queue.transaction(conn):
        queue.add_target(conn, uri.display, sweep_id, queue.SWEEP, experiment=experiment, start_time=time.time(),
                         tags=tags, run_name=run_name or f"sweep {sweep_id[:8]}")
    target = queue.get_target(conn, uri.display, sweep_id, queue.SWEEP)
    if experiment_id and target is not None and not target.mlflow_run_id:
        queue.set_experiment_id(conn, target, experiment_id)
    return SweepMirror(uri, sweep_id, dict(params))


def close_sweep(mirror: SweepMirror, table: Mapping[str, Any], status: str, *, reporter: Reporter = STDERR) -> None:
    """Queue the sweep run's end (the best member by ``--sort``: its metrics and a tag naming it)
    and send it within a bounded time; a notice says how to finish it when the server is down."""
    key, sweep_id = mirror.uri.display, mirror.sweep_id
    conn = queue.open_db(orchestra_home())
    deadline = time.monotonic() + _DRAIN_S
    _finish_members(mirror, [m["run_id"] for m in table.get("members", ())], deadline)
    best = next((m for m in table.get("members", ()) if m["run_id"] == table.get("best")), None)
    ops: list[tuple[str, Mapping[str, Any]]] = [("create", {})]
    if mirror.params:
        ops.append(("params", {"params": dict(mirror.params)}))
    if best is not None:
        now = time.time()
        tags = {"orchestra.sweep.best_run": best["run_id"], "orchestra.sweep.sort": str(table.get("sort") or ""),
                "orchestra.sweep.best_values": json.dumps(best["values"], separators=(",", ":"))}
        member = queue.get_target(conn, key, best["run_id"], queue.PARENT)
        if member is not None and member.mlflow_run_id:
            tags["orchestra.sweep.best_mlflow_run"] = member.mlflow_run_id
        metrics = [[k, float(v), 0, now] for k, v in best["metrics"].items() if isinstance(v, (int, float))]
        ops.append(("batch", {"metrics": metrics, "tags": tags, "params": {}}))
    ops.append(("status", {"status": status, "end_time": time.time()}))
    queue.enqueue(conn, key, sweep_id, queue.SWEEP, ops)
    ok, why = send_pending(mirror.uri, orchestra_home(), sweep_id, max(1.0, deadline - time.monotonic()))
    if not ok:
        reporter.notice(f"the MLflow run of sweep {sweep_id} is not complete on {key} ({why or 'timed out'}); "
                        f"send it with: orchestra runs sync {sweep_id} --tracking-uri {key}")


def _finish_members(mirror: SweepMirror, run_ids: list[str], deadline: float) -> None:
    """What the members' own mirrors left pending when they closed (many runs end at once and
    share the server): sent now, within the sweep's bounded wait, so the sweep run is whole."""
    conn = queue.open_db(orchestra_home())
    for run_id in run_ids:
        left = deadline - time.monotonic()
        if left <= 0.1:
            return
        if queue.counts(conn, mirror.uri.display, run_id).get(queue.PENDING, 0):
            ok, _ = send_pending(mirror.uri, orchestra_home(), run_id, left)
            if not ok:
                return  # the server does not answer: `orchestra runs sync` finishes each member
