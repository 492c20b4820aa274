"""``orchestra gc``: remove old runs' directories and unreferenced objects."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    gc = sub.add_parser("gc", help="delete old runs and unreferenced outputs",
                        description="Delete runs (by age or count) and the objects no remaining run references.")
    gc.add_argument("--keep-last", type=int, metavar="N", help="keep the N newest runs")
    gc.add_argument("--older-than", type=float, metavar="DAYS", help="delete runs older than DAYS")
    gc.add_argument("--dry-run", action="store_true", help="say what would be deleted")
    gc.set_defaults(handler=_gc)


def _gc(args: argparse.Namespace) -> int:
    from orchestra.app import gc as housekeeping

    report = housekeeping.gc(keep_last=args.keep_last, older_than_days=args.older_than, dry_run=args.dry_run)
    verb = "would delete" if args.dry_run else "deleted"
    print(f"{verb} {len(report.runs)} run(s), {report.objects} object(s), {report.bytes / 1e6:.1f} MB")
    return 0
