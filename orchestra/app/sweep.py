"""Parameter sweeps: every member is a normal run, all driven at once on one shared pool.

:func:`run_sweep` prepares every member first (so a bad value is exit 2 before anything runs),
then drives them concurrently through :func:`orchestra.app.session.run_prepared` with one
:class:`~orchestra.app.sweep_pool.SharedPool`: a stage whose cache key is the same in several
members runs once, the others load it. :func:`summary` is the members table (``orchestra
sweeps show`` and the end of ``orchestra run --sweep``), read back from the run store.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import uuid
from dataclasses import replace
from typing import Any, Sequence

from orchestra.app import compare, session, sweep_notify
from orchestra.app.console import Console
from orchestra.app.prepare import prepare
from orchestra.app.sweep_pool import SharedPool
from orchestra.core import events, invocation, settings
from orchestra.core.errors import EXIT_FAILED, EXIT_INTERRUPTED, BadInputError
from orchestra.core.options import RunOptions
from orchestra.core.records import RunRecord
from orchestra.core.status import RunStatus
from orchestra.core.sweepspec import Member

CONFIRM_ABOVE = 1000
SIZE_TAG = "orchestra.sweep.size"


def new_sweep_id() -> str:
    return uuid.uuid4().hex[:12]


def member_options(options: RunOptions, member: Member, sweep_id: str, index: int, total: int = 0) -> RunOptions:
    """The run options of one member: its values as ``-P`` after the fixed ones, and its tags.

    Raises:
        BadInputError: a swept key also fixed with ``-P``.
    """
    fixed = {text.partition("=")[0].strip() for text in options.selection.params}
    for key, _ in member:
        if key in fixed:
            raise BadInputError(f"--sweep {key}: also fixed with -P {key}", where="--sweep",
                                hint="sweep it or fix it, not both")
    tags = {**options.recording.tags, compare.SWEEP_TAG: sweep_id,
            compare.SWEEP_VALUES_TAG: json.dumps(dict(member), separators=(",", ":")),
            SIZE_TAG: str(total or index + 1)}
    kept = invocation.read(tags)
    if kept is not None:  # `runs resume MEMBER` replays this member alone
        tags[invocation.TAG] = json.dumps({"argv": invocation.member_argv(kept[0], member), "cwd": kept[1]},
                                          separators=(",", ":"))
    name = options.recording.tags.get("mlflow.runName")
    if name:
        tags["mlflow.runName"] = f"{name}-{index + 1}"
    return replace(options, selection=replace(options.selection, params=(
        *options.selection.params, *(f"{key}={value}" for key, value in member))),
        recording=replace(options.recording, tags=tags), quiet=True)


def run_sweep(uri: str, options: RunOptions, members: Sequence[Member], *, sweep_id: str, fail_fast: bool = False,
              sort: str | None = None, console: Console | None = None) -> int:
    """Prepare every member (type checks first), then drive them on one pool; the exit code.

    Raises:
        BadInputError: a bad value in any member (nothing has run).
    """
    console = console or Console(quiet=options.quiet, color=options.color)
    session.check_tracking(options)
    prepared = []
    try:
        for index, member in enumerate(members):
            opts = member_options(options, member, sweep_id, index, len(members))
            prepared.append((opts, prepare(uri, opts, build_envs=True, progress=console if index == 0 else None)))
    except BaseException:
        for _, ready in prepared:
            ready.project.cleanup()
        raise
    jobs = options.execution.jobs or os.cpu_count() or 1
    pool = SharedPool(jobs)
    first = prepared[0][1]
    mirror = _open_mirror(options, sweep_id, members)
    sweep_notify.emit(events.SWEEP_STARTED, "running", first, options, {"id": sweep_id, "size": len(members)}, console)
    statuses: list[RunStatus] = []
    previous = session.install_sigterm()  # SIGTERM cancels the sweep as SIGINT does
    try:
        statuses = _drive(prepared, members, pool, fail_fast, console)
    finally:
        session.restore_sigterm(previous)
        pool.close()
    killed = any(s == RunStatus.KILLED for s in statuses)
    ok = not killed and all(s == RunStatus.FINISHED for s in statuses)
    table = summary(sweep_id, sort)
    if mirror is not None:
        from orchestra.integrations import tracking

        tracking.close_sweep(mirror, table, "KILLED" if killed else "FINISHED" if ok else "FAILED", reporter=console)
    sweep_notify.emit(events.SWEEP_ENDED, "killed" if killed else "success" if ok else "failed", first, options,
                      {"id": sweep_id, "size": len(members), "counts": table["counts"], "best": table["best"],
                       "sort": sort}, console)
    return EXIT_INTERRUPTED if killed else 0 if ok else EXIT_FAILED


def _open_mirror(options: RunOptions, sweep_id: str, members: Sequence[Member]) -> Any:
    """The sweep's MLflow run when a tracking server is configured (members nest under it)."""
    if not (options.recording.tracking_uri or settings.current().tracking_uri):
        return None
    from orchestra.integrations import tracking

    return tracking.open_sweep(options, sweep_id, size=len(members), keys=list(dict.fromkeys(k for m in members for k, _ in m)))


def _drive(prepared: list, members: Sequence[Member], pool: SharedPool, fail_fast: bool,
           console: Console) -> list[RunStatus]:
    total = len(members)
    quiet = Console(quiet=True)
    statuses: list[RunStatus] = []
    workers = min(total, max(4, 2 * pool.jobs))
    with cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sweep-member") as members_pool:
        futures = {members_pool.submit(session.run_prepared, ready, opts, console=quiet, share=pool): index
                   for index, (opts, ready) in enumerate(prepared)}
        try:
            for future in cf.as_completed(futures):
                index = futures[future]
                values = " ".join(f"{k}={v}" for k, v in members[index])
                try:
                    result = future.result()
                except Exception as exc:  # noqa: BLE001 - one member's error is that member's
                    statuses.append(RunStatus.FAILED)
                    console.line(f"orchestra: sweep member {index + 1}/{total} {values}: error: {exc}")
                    continue
                statuses.append(result.status)
                record = result.record
                ran = sum(1 for s in record.stages if s.status == "FINISHED") if record else 0
                loaded = sum(1 for s in record.stages if s.status == "LOADED") if record else 0
                console.line(f"orchestra: sweep member {index + 1}/{total} {values}: run {result.run_id} "
                             f"{result.status} ({ran} ran, {loaded} loaded)")
                if fail_fast and result.status != RunStatus.FINISHED and not pool.cancelled.is_set():
                    console.line("orchestra: --fail-fast: stopping the other members")
                    pool.cancel()
                    for other in futures:
                        other.cancel()
        except KeyboardInterrupt:
            pool.cancel()
            for other in futures:
                other.cancel()
            statuses.append(RunStatus.KILLED)
    for (_, ready), future in zip(prepared, futures):
        if future.cancelled():  # never started: its checkout is still there
            ready.project.cleanup()
            statuses.append(RunStatus.KILLED)
    return statuses


def _sort_key(sort: str | None) -> tuple[str | None, bool]:
    if not sort:
        return None, False
    descending = sort.startswith("-")
    key = sort.lstrip("-+")
    key = key[len("metrics."):] if key.startswith("metrics.") else key
    if "." not in key:
        raise BadInputError(f"--sort {sort}: expected [-]STAGE.METRIC", where="--sort", hint="e.g. --sort evaluate.rmse")
    return key, descending


def summary(sweep_id: str, sort: str | None = None, records: Sequence[RunRecord] | None = None) -> dict[str, Any]:
    """The sweep's members (swept values, status, metrics), sorted by ``[-]STAGE.METRIC``, with
    the best member (first finished one with the metric) named, and counts by status.

    Raises:
        BadInputError: a bad sort key; RunNotFoundError-like BadInputError for an unknown sweep.
    """
    key, descending = _sort_key(sort)
    records = list(records) if records is not None else compare.select(sort="start_time", limit=1_000_000,
                                                                       sweep=sweep_id)
    if not records:
        raise BadInputError(f"no sweep {sweep_id!r} in this ORCHESTRA_HOME", where="sweep",
                            hint="see 'orchestra sweeps list'")
    rows = []
    for record in records:
        values = json.loads(record.tags.get(compare.SWEEP_VALUES_TAG) or "{}")
        rows.append({"run_id": record.run_id, "run_name": compare.run_name(record), "values": values,
                     "status": str(record.status), "metrics": record.metrics, "start_time": record.start_time})
    rows.sort(key=lambda row: row["start_time"])
    if key is not None:
        have = [row for row in rows if isinstance(row["metrics"].get(key), (int, float))]
        have.sort(key=lambda row: row["metrics"][key], reverse=descending)
        rows = have + [row for row in rows if row not in have]
    best = next((row["run_id"] for row in rows if key and row["status"] == "FINISHED" and key in row["metrics"]), None)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    swept = list(dict.fromkeys(k for row in rows for k in row["values"]))
    size = max([int(r.tags.get(SIZE_TAG) or 0) for r in records] + [len(rows)])
    return {"sweep_id": sweep_id, "sort": sort, "best": best, "swept": swept, "size": size, "counts": counts,
            "members": rows}


def list_sweeps(limit: int = 50) -> list[dict[str, Any]]:
    """Sweeps newest first: id, members, counts by status, first start, project."""
    records = compare.select(f"tags.`{compare.SWEEP_TAG}` LIKE '%'", "-start_time", 1_000_000)
    sweeps: dict[str, dict[str, Any]] = {}
    for record in records:
        entry = sweeps.setdefault(record.tags[compare.SWEEP_TAG], {
            "sweep_id": record.tags[compare.SWEEP_TAG], "members": 0, "counts": {}, "start_time": record.start_time,
            "project_uri": record.project_uri})
        entry["members"] += 1
        entry["counts"][str(record.status)] = entry["counts"].get(str(record.status), 0) + 1
        entry["start_time"] = min(entry["start_time"], record.start_time)
    return sorted(sweeps.values(), key=lambda e: e["start_time"], reverse=True)[:limit]
