"""``orchestra run --sweep …`` and ``orchestra sweeps list|show``."""

from __future__ import annotations

import argparse
import sys
import time

from orchestra.cli.output import print_json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def add_sweep_flags(run: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    run.add_argument("--sweep", action="append", default=[], metavar="KEY=V1,V2|KEY=LO:HI:STEP",
                     help="run one member per value (repeatable: the cartesian product); -P fixes the others")
    run.add_argument("--sweep-file", metavar="FILE", help="a YAML list of explicit combinations to run")
    run.add_argument("--fail-fast", action="store_true", help="in a sweep: stop every member after a failure")
    run.add_argument("--sort", metavar="[-]STAGE.METRIC", help="in a sweep: sort the members table, name the best")
    run.add_argument("--yes", action="store_true", help="run a sweep of more than 1,000 members")


def register(sub: argparse._SubParsersAction) -> None:
    sweeps = sub.add_parser("sweeps", help="inspect parameter sweeps", description="Inspect parameter sweeps.")
    verbs = sweeps.add_subparsers(dest="sweeps_command", metavar="VERB", parser_class=type(sweeps))
    listing = verbs.add_parser("list", help="sweeps, newest first")
    listing.add_argument("-n", "--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=_list)
    show = verbs.add_parser("show", help="a sweep's members, progress and best")
    show.add_argument("sweep_id", metavar="SWEEP_ID")
    show.add_argument("--sort", metavar="[-]STAGE.METRIC", help="sort the members, name the best")
    show.add_argument("--json", action="store_true", help="the table as JSON (schemas/sweep.schema.json)")
    show.set_defaults(handler=_show)
    sweeps.set_defaults(handler=lambda args: (sweeps.print_help(sys.stderr), 2)[1])


def run_sweep(args: argparse.Namespace, options: Any) -> int:
    from orchestra.app import sweep
    from orchestra.core import sweepspec
    from orchestra.core.errors import BadInputError

    combos = sweepspec.read_file(args.sweep_file) if args.sweep_file else []
    members = sweepspec.members(args.sweep, combos)
    if args.sort:
        sweep._sort_key(args.sort)  # a bad --sort is exit 2 before anything runs
    if options.execution.dry_run or options.execution.executor != "local":
        raise BadInputError("--sweep runs on the local executor, not with --dry-run or --executor",
                            where="--sweep", hint="drop --dry-run/--executor, or run members one by one")
    sweep_id = sweep.new_sweep_id()
    print(f"orchestra: sweep {sweep_id}: {len(members)} member(s)", file=sys.stderr)
    if len(members) > sweep.CONFIRM_ABOVE and not args.yes:
        raise BadInputError(f"--sweep: {len(members)} members (more than {sweep.CONFIRM_ABOVE})", where="--sweep",
                            hint="pass --yes to run them all, or sweep fewer values")
    code = sweep.run_sweep(args.uri, options, members, sweep_id=sweep_id, fail_fast=args.fail_fast,
                           sort=args.sort)
    table = sweep.summary(sweep_id, args.sort)
    if args.json:
        print_json(table)
    else:
        _render(table)
    return code


def _render(table: dict[str, Any], stream: Any = None) -> None:
    from orchestra.app.compare import readable

    stream = stream or sys.stdout
    members = table["members"]
    metric_keys = list(dict.fromkeys(k for row in members for k in row["metrics"]
                                     if k.split(".")[0] == _last_stage(members)))
    sort = (table["sort"] or "").lstrip("-+").removeprefix("metrics.")
    if sort and sort not in metric_keys:
        metric_keys.insert(0, sort)
    rows = [{"run_id": row["run_id"][:8], **{k: str(row["values"].get(k, "-")) for k in table["swept"]},
             "status": row["status"], **{k: readable(row["metrics"].get(k)) for k in metric_keys},
             "best": "*" if row["run_id"] == table["best"] else ""} for row in members]
    headers = list(rows[0])
    widths = {h: max(len(h), *(len(r[h]) for r in rows)) for h in headers}
    print("  ".join(h.ljust(widths[h]) for h in headers).rstrip(), file=stream)
    for row in rows:
        print("  ".join(row[h].ljust(widths[h]) for h in headers).rstrip(), file=stream)
    counts = ", ".join(f"{n} {status.lower()}" for status, n in sorted(table["counts"].items()))
    started = f"{len(members)} of {table['size']} started" if table["size"] > len(members) else f"{len(members)}"
    print(f"sweep {table['sweep_id']}: {started} member(s): {counts}", file=stream)
    if table["best"]:
        best = next(row for row in members if row["run_id"] == table["best"])
        values = " ".join(f"{k}={v}" for k, v in best["values"].items())
        print(f"best by {table['sort']}: run {table['best']} ({values})", file=stream)
    unfinished = [row["run_id"] for row in members if row["status"] in ("FAILED", "KILLED")]
    if unfinished:
        print(f"to resume a member: orchestra runs resume {unfinished[0]}", file=stream)


def _last_stage(members: list[dict[str, Any]]) -> str | None:
    stages = [k.split(".")[0] for row in members for k in row["metrics"]]
    return stages[-1] if stages else None


def _list(args: argparse.Namespace) -> int:
    from orchestra.app import sweep

    found = sweep.list_sweeps(args.limit)
    if args.json:
        print_json(found)
        return 0
    if not found:
        print("no sweeps yet", file=sys.stderr)
        return 0
    for entry in found:
        counts = ", ".join(f"{n} {status.lower()}" for status, n in sorted(entry["counts"].items()))
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry["start_time"]))
        print(f"{entry['sweep_id']}  {started}  {entry['members']} member(s): {counts}  {entry['project_uri']}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from orchestra.app import sweep

    table = sweep.summary(args.sweep_id, args.sort)
    if args.json:
        print_json(table)
        return 0
    _render(table)
    return 0
