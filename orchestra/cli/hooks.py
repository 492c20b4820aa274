"""`orchestra hooks log|redeliver|retry|test|new-secret`: the webhook outbox from the command line.

Handlers import orchestra.integrations.hooks inside their bodies; requests is loaded only when something is
actually sent, so `orchestra --help` stays light.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DEFAULT_DRAIN_S = 10.0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `hooks` verb group."""
    hooks = sub.add_parser("hooks", help="webhook deliveries: log, redeliver, test, new secrets",
                           description="Inspect and drive lifecycle webhook deliveries.")
    verbs = hooks.add_subparsers(dest="hooks_command", metavar="VERB", parser_class=type(hooks))

    log = verbs.add_parser("log", help="list deliveries (newest last)")
    log.add_argument("--run", metavar="ID", help="only events of this run (id or prefix)")
    log.add_argument("--failed", action="store_true", help="only dead, disabled or failing deliveries")
    log.add_argument("--json", action="store_true", help="JSON lines with every attempt")
    log.add_argument("--limit", type=int, default=200, help="at most this many rows (default 200)")
    log.set_defaults(handler=_log)

    redeliver = verbs.add_parser("redeliver", help="send an event again to its hooks (same webhook-id)")
    redeliver.add_argument("event_id", metavar="EVENT_ID")
    redeliver.add_argument("--drain", type=float, default=DEFAULT_DRAIN_S, metavar="S",
                           help=f"wait at most S seconds for the answers (default {DEFAULT_DRAIN_S:g})")
    redeliver.set_defaults(handler=_redeliver)

    retry = verbs.add_parser("retry", help="try every pending delivery now, ignoring its backoff")
    retry.add_argument("--drain", type=float, default=DEFAULT_DRAIN_S, metavar="S",
                       help=f"wait at most S seconds (default {DEFAULT_DRAIN_S:g})")
    retry.set_defaults(handler=_retry)

    test = verbs.add_parser("test", help="send a ping to a configured hook (by name) or to a URL")
    test.add_argument("target", metavar="NAME_OR_URL")
    test.add_argument("--hooks", action="append", default=[], metavar="URI",
                      help="hooks config source to look NAME up in (repeatable)")
    test.add_argument("--project", default=".", metavar="DIR",
                      help="project whose MLproject hooks are searched (default: .)")
    test.add_argument("--secret-env", action="append", default=[], metavar="VAR",
                      help="sign a ping to a URL with the secret in VAR (twice for rotation)")
    test.add_argument("--allow-http", action="store_true", help="allow plain http to a non-loopback URL")
    test.add_argument("--timeout", type=float, default=15.0, metavar="S", help="total timeout (default 15)")
    test.set_defaults(handler=_test)

    secret = verbs.add_parser("new-secret", help="print a new whsec_ signing secret")
    secret.set_defaults(handler=_new_secret)

    hooks.set_defaults(handler=lambda args: _usage(hooks))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _log(args: argparse.Namespace) -> int:
    from orchestra.core.layout import orchestra_home
    from orchestra.integrations.hooks import outbox

    home = orchestra_home()
    if not outbox.db_path(home).exists():
        rows: list[dict[str, Any]] = []
    else:
        conn = outbox.open_db(home)
        rows = outbox.log_rows(conn, run_id=args.run, failed=args.failed, limit=max(1, args.limit))
        if args.json:
            for row in rows:
                row["attempt_log"] = outbox.attempts_of(conn, row["delivery_id"])
    if args.json:
        for row in rows:
            print(json.dumps(_public(row), sort_keys=True))
        return 0
    if not rows:
        print("no webhook deliveries" + (" matching" if args.run or args.failed else ""), file=sys.stderr)
        return 0
    header = ("TIME (UTC)", "EVENT ID", "EVENT", "STATUS", "STAGE", "HOOK", "STATE", "TRIES", "LAST")
    table = [header] + [_log_line(row) for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(header) - 1)]
    for line in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths)) + "  " + line[-1])
    return 0


def _log_line(row: dict[str, Any]) -> tuple[str, ...]:
    last = row["last_error"] or (f"HTTP {row['last_status']}" if row["last_status"] else "")
    if row["state"] == "pending" and row["next_at"]:
        last = (last + "; " if last else "") + "next try " + _when(row["next_at"])
    return (
        time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(row["occurred_at"])), row["event_id"], row["event"],
        row["status"], row["stage"] or "-", f"{row['hook_name']} {_display(row['url'])}", row["state"],
        str(row["attempts"]), last,
    )


def _redeliver(args: argparse.Namespace) -> int:
    from orchestra.core.errors import BadInputError
    from orchestra.core.layout import orchestra_home
    from orchestra.integrations.hooks import outbox
    from orchestra.integrations.hooks.sender import Sender

    home = orchestra_home()
    event = outbox.find_event(outbox.open_db(home), args.event_id) if outbox.db_path(home).exists() else None
    if event is None:
        raise BadInputError(f"no webhook event {args.event_id!r}", where="hooks redeliver",
                            hint="event ids are listed by `orchestra hooks log`")
    conn = outbox.open_db(home)
    outbox.redeliver(conn, args.event_id)
    sender = Sender(home)
    try:
        sender.drain(args.drain)
    finally:
        sender.stop()
    rows = outbox.log_rows(conn, event_id=args.event_id)
    for row in rows:
        print(f"{row['event_id']} → {row['hook_name']} {_display(row['url'])}: {row['state']}"
              + (f" ({row['last_error']})" if row["state"] != "delivered" and row["last_error"] else ""))
    return 0 if rows and all(row["state"] == "delivered" for row in rows) else 1


def _retry(args: argparse.Namespace) -> int:
    from orchestra.core.layout import orchestra_home
    from orchestra.integrations.hooks import outbox, resume_pending

    home = orchestra_home()
    before = 0
    if outbox.db_path(home).exists():
        # Due now, but leave deliveries claimed by a live sender alone: that attempt is in flight.
        conn = outbox.open_db(home)
        before = outbox.pending_count(conn)
        outbox.make_due(conn)
    remaining = resume_pending(args.drain)
    if not before:
        print("no webhook deliveries were pending")
    else:
        print(f"{max(0, before - remaining)} of {before} pending webhook deliveries delivered"
              + (f", {remaining} still pending" if remaining else ""))
    return 0 if remaining == 0 else 1


def _test(args: argparse.Namespace) -> int:
    from orchestra.core.layout import orchestra_home
    from orchestra.integrations.hooks import outbox
    from orchestra.integrations.hooks.deliver import DELIVERED, Policy, post
    from orchestra.integrations.hooks.payload import encode, ping_body

    targets = _resolve_targets(args)
    policy = Policy(total_timeout_s=args.timeout, connect_timeout_s=min(5.0, args.timeout))
    home = orchestra_home()
    code = 0
    for target in targets:
        body = ping_body(target.name)
        outcome = post(target, body["id"], "ping", 1, encode(body), policy)
        status = f"HTTP {outcome.status_code}" if outcome.status_code else outcome.error
        print(f"ping → {target.name} {_display(target.url)}: {status} ({outcome.latency_ms} ms)")
        if outcome.error and outcome.status_code:
            print(f"  {outcome.error}")
        if outcome.answer:
            print("  answer: " + outcome.answer[:500].replace("\n", " "))
        if outcome.verdict == DELIVERED:
            if outbox.db_path(home).exists() and outbox.enable(outbox.open_db(home), target.url):
                print(f"  hook '{target.name}' enabled again")
        else:
            code = 1
    return code


def _resolve_targets(args: argparse.Namespace) -> list[Any]:
    """NAME → the configured hooks of that name (sources, then past deliveries); URL → itself."""
    from pathlib import Path

    from orchestra.core.errors import BadInputError
    from orchestra.integrations.hooks import config as cfg
    from orchestra.integrations.hooks.deliver import Target

    if "://" in args.target:
        refusal = cfg.url_refusal(args.target, args.allow_http)
        if refusal:
            raise BadInputError(refusal, where="hooks test", hint="use https, or --allow-http")
        return [Target(args.target, "test", tuple(args.secret_env), args.allow_http)]
    project = Path(args.project)
    spec_hooks = cfg.project_hooks(project) if project.is_dir() else None
    config = cfg.load(spec_hooks, args.hooks)
    found = [Target(h.url, h.name, h.secret_envs, h.allow_http) for h in config.named(args.target)]
    if not found:
        found = _past_targets(args.target)
    if not found:
        known = sorted({h.name for h in config.hooks})
        raise BadInputError(f"no hook named {args.target!r}", where="hooks test",
                            hint=f"known: {', '.join(known)}" if known else "give a URL, or --hooks URI")
    return found


def _past_targets(name: str) -> list[Any]:
    from orchestra.core.layout import orchestra_home
    from orchestra.integrations.hooks import outbox

    home = orchestra_home()
    if not outbox.db_path(home).exists():
        return []
    return outbox.past_targets(outbox.open_db(home), name)


def _new_secret(args: argparse.Namespace) -> int:
    from orchestra.integrations.hooks.deliver import new_secret

    print(new_secret())
    return 0


def _public(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out["url"] = _display(row["url"])
    return out


def _display(url: str) -> str:
    from orchestra.source.project import strip_credentials

    return strip_credentials(url)


def _when(at: float) -> str:
    delta = at - time.time()
    if delta <= 0:
        return "now"
    if delta < 120:
        return f"in {delta:.0f}s"
    if delta < 7200:
        return f"in {delta / 60:.0f}m"
    return f"in {delta / 3600:.1f}h"
