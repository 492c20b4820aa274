"""``orchestra schedule add|list|remove|pause|resume|next|history|sync|run-due`` and ``orchestra scheduler``."""

from __future__ import annotations

import argparse
import sys

from orchestra.cli.output import print_json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``schedule`` verb group and the ``scheduler`` daemon verb."""
    group = sub.add_parser("schedule", help="cron schedules of projects",
                           description="Run projects on cron schedules (see also 'orchestra scheduler').")
    verbs = group.add_subparsers(dest="schedule_command", metavar="VERB", parser_class=type(group))

    add = verbs.add_parser("add", help="schedule a project", description="Schedule a project on a cron expression.")
    add.add_argument("name", metavar="NAME")
    add.add_argument("uri", metavar="URI", help="project directory or git URL (optionally #subdir)")
    add.add_argument("--cron", required=True, metavar="EXPR",
                     help="5 fields 'min hour dom month dow' (names, ranges, lists, steps, L, LW, 5L, MON#2) or @daily…")
    add.add_argument("--timezone", "--tz", dest="timezone", default="UTC", metavar="TZ", help="IANA zone (default UTC)")
    add.add_argument("-e", "--entry-point", dest="entry_points", action="append", default=[], metavar="STAGE")
    add.add_argument("-P", "--param", dest="params", action="append", default=[], metavar="KEY=VALUE")
    add.add_argument("-v", "--version", dest="version", metavar="REF", help="git branch, tag or commit (fetched at fire time)")
    add.add_argument("--overlap", choices=("skip", "queue", "allow"), default="skip",
                     help="while its previous run still runs: skip the slot (default), queue one, or allow")
    add.add_argument("--catchup", choices=("latest", "none", "all"), default="latest",
                     help="slots missed while no scheduler ran: run the newest (default), none, or all (at most 5)")
    add.add_argument("--jitter", type=float, default=0.0, metavar="SECONDS", help="fixed per-slot start delay, up to this")
    add.add_argument("--experiment", default="Default")
    add.add_argument("--hooks", dest="hooks_uris", action="append", default=[], metavar="URL|FILE",
                     help="webhook receiver URL (every event) or config file, for the runs and the schedule events")
    add.add_argument("--hooks-config", dest="hooks_uris", action="append", type=lambda uri: f"config:{uri}",
                     metavar="FILE|URL", help="a hooks configuration: JSON/YAML file, project dir, or URL answering JSON")
    add.add_argument("--credentials-env", metavar="NAME",
                     help="environment variable (USER:PASSWORD) the scheduler reads the git credentials from")
    add.add_argument("--replace", action="store_true", help="change an existing schedule of that name")
    add.set_defaults(handler=_add)

    listing = verbs.add_parser("list", help="list schedules with their next fire time")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=_list)
    for verb, text in (("remove", "delete a schedule (its history stays)"), ("pause", "stop firing a schedule"),
                       ("resume", "fire a paused schedule again, from now on")):
        p = verbs.add_parser(verb, help=text)
        p.add_argument("name", metavar="NAME")
        p.set_defaults(handler=_simple, verb=verb)
    nxt = verbs.add_parser("next", help="the next fire times, in the schedule's zone and UTC")
    nxt.add_argument("name", metavar="NAME")
    nxt.add_argument("-n", type=int, default=5, metavar="N")
    nxt.add_argument("--after", metavar="ISO", help="start from this time instead of now")
    nxt.set_defaults(handler=_next)
    hist = verbs.add_parser("history", help="every slot: launched, skipped, missed, failed")
    hist.add_argument("name", metavar="NAME")
    hist.add_argument("-n", type=int, default=20, metavar="N")
    hist.add_argument("--json", action="store_true")
    hist.set_defaults(handler=_history)
    sync = verbs.add_parser("sync", help="register the MLproject's schedules: section")
    sync.add_argument("uri", metavar="URI")
    sync.add_argument("-v", "--version", dest="version", metavar="REF")
    sync.set_defaults(handler=_sync)
    due = verbs.add_parser("run-due", help="one scheduler tick (for system cron / systemd timers)",
                           description="Claim and launch every slot due now (or at --at); safe beside a daemon.")
    due.add_argument("names", nargs="*", metavar="NAME", help="only these schedules (default: all)")
    due.add_argument("--at", metavar="ISO-8601", help="stand-in for now (no offset = UTC)")
    due.add_argument("--no-wait", action="store_true", help="return after launching instead of waiting for the runs")
    due.add_argument("--json", action="store_true")
    due.set_defaults(handler=_run_due)
    group.set_defaults(handler=lambda args: (group.print_help(sys.stderr), 2)[1])

    daemon = sub.add_parser("scheduler", help="run schedules on time (daemon)",
                            description="Fire due schedules until SIGTERM; one per ORCHESTRA_HOME.")
    daemon.set_defaults(handler=_scheduler)


def _add(args: argparse.Namespace) -> int:
    from datetime import datetime, timezone

    from orchestra.app.schedule import manage

    schedule, change = manage.add(
        args.name, args.uri, args.cron, replace=args.replace, timezone=args.timezone,
        entry_points=tuple(args.entry_points), params=tuple(args.params), version=args.version,
        overlap=args.overlap, catchup=args.catchup, jitter=args.jitter, experiment=args.experiment,
        hooks_uris=tuple(args.hooks_uris), credentials_env=args.credentials_env,
    )
    print(f"orchestra: schedule {schedule.name} {change}: {schedule.cron} in {schedule.timezone}"
          f" ({schedule.expr.explain()}) · {schedule.uri}")
    for moment in schedule.expr.next_times(datetime.now(timezone.utc), 3):
        print(f"  next: {_both(moment)}")
    return 0


def _both(moment: Any) -> str:
    from orchestra.app.schedule.cron import utc_key

    return f"{moment.isoformat()}  ({utc_key(moment)})"


def _list(args: argparse.Namespace) -> int:
    from orchestra.app.schedule import manage

    rows = manage.summary()
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print("no schedules (add one with 'orchestra schedule add')", file=sys.stderr)
        return 0
    header = ("NAME", "CRON", "TIMEZONE", "NEXT", "LAST", "URI")
    table = [header] + [(r["name"] + (" (paused)" if r["paused"] else ""), r["cron"], r["timezone"], r["next"] or "-",
                         f"{r['last_slot']} {r['last_state']}" if r["last_slot"] else "-", r["uri"]) for r in rows]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header) - 1)]
    for row in table:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)) + "  " + str(row[-1]))
    return 0


def _simple(args: argparse.Namespace) -> int:
    import time

    from orchestra.app.schedule import store

    if args.verb == "remove":
        store.remove(args.name)
        print(f"orchestra: schedule {args.name} removed (its history is kept)")
        return 0
    changed = store.set_paused(args.name, args.verb == "pause", now=time.time())
    state = "paused" if args.verb == "pause" else "resumed"
    print(f"orchestra: schedule {args.name} {state}" + ("" if changed else f" (it already was {state})"))
    return 0


def _next(args: argparse.Namespace) -> int:
    from orchestra.core.errors import BadInputError
    from orchestra.app.schedule import manage

    if args.n < 1:
        raise BadInputError(f"-n {args.n}: must be at least 1")
    after = manage.parse_at(args.after) if args.after else None
    schedule, times = manage.next_times(args.name, args.n, after)
    print(f"{schedule.name}: {schedule.cron} in {schedule.timezone} ({schedule.expr.explain()})")
    for moment in times:
        print(f"  {_both(moment)}")
    return 0


def _history(args: argparse.Namespace) -> int:
    from orchestra.app.schedule import manage

    rows = manage.history(args.name, args.n)
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print(f"schedule {args.name} has not fired yet", file=sys.stderr)
    for row in rows:
        run = f" run {row['run_id']} {row['run_status'] or 'RUNNING'}" if row["run_id"] else ""
        reason = f" — {row['reason']}" if row["reason"] else ""
        print(f"{row['scheduled_local']}  {row['state']}{run}{reason}")
    return 0


def _sync(args: argparse.Namespace) -> int:
    from orchestra.app.schedule import manage

    changes = manage.sync(args.uri, args.version)
    if not changes:
        print("orchestra: the MLproject declares no schedules")
    for name, change in changes:
        print(f"orchestra: schedule {name} {change}")
    return 0


def _run_due(args: argparse.Namespace) -> int:
    import signal

    from orchestra.app.schedule import manage

    at = manage.parse_at(args.at)
    for name in args.names:
        from orchestra.app.schedule import store

        store.get(name)  # an unknown name is exit 2, with the known ones
    report, launcher = manage.run_due(at, wait=not args.no_wait, names=args.names or None)
    for outcome in report.outcomes:
        extra = f" (pid {outcome.pid})" if outcome.pid else (f": {outcome.reason}" if outcome.reason else "")
        if not args.json:
            print(f"{outcome.schedule} {outcome.slot} {outcome.state}{extra}")
    if args.json:
        print_json([{"schedule": o.schedule, "slot": o.slot, "state": o.state, "firing": o.firing_id,
                     "reason": o.reason} for o in report.outcomes])
    sys.stdout.flush()
    from orchestra.app.schedule.daemon import finish_sender, start_sender

    sender = None
    if not args.no_wait and launcher.children:
        sender = start_sender() if report.outcomes else None  # schedule webhooks go out while runs run
        previous = {sig: signal.signal(sig, _raise_interrupt) for sig in (signal.SIGTERM,)}
        try:
            launcher.wait_all()
        except KeyboardInterrupt:
            launcher.terminate_all()
            if sender is not None:
                sender.stop()
            raise
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)
    if report.outcomes:
        finish_sender(sender)  # this tick's schedule webhooks are answered before the command ends
    failed = [o for o in report.outcomes if o.state == "launch_failed"]
    if not args.no_wait:
        from orchestra.app.schedule import store

        for outcome in report.states("launched"):
            row = store.firing(outcome.firing_id)
            if row["state"] == "launch_failed" or row["run_status"] != "FINISHED":
                failed.append(outcome)
            if not args.json:
                result = row["run_status"] or row["state"]
                print(f"{outcome.schedule} {outcome.slot} {result}"
                      + (f" run {row['run_id']}" if row["run_id"] else f": {row['reason']}" if row["reason"] else ""))
    return 1 if failed else 0


def _raise_interrupt(*_: Any) -> None:
    raise KeyboardInterrupt


def _scheduler(args: argparse.Namespace) -> int:
    from orchestra.app.schedule import daemon

    return daemon.serve()
