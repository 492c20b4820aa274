"""``orchestra env list|gc|create|lock``: look at, collect, build and lock stage environments."""

from __future__ import annotations

import argparse
import sys
import time

from orchestra.cli.output import print_json


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `env` verb group."""
    env = sub.add_parser("env", help="list, build, lock and collect stage environments",
                         description="Manage the conda and python environments stages run in "
                                     "(kept under ORCHESTRA_HOME/envs).")
    verbs = env.add_subparsers(dest="env_command", metavar="ACTION", parser_class=type(env))

    ls = verbs.add_parser("list", help="environments built so far: key, kind, size, last used, spec")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.set_defaults(handler=_list)

    gc = verbs.add_parser("gc", help="delete environments not used for a while",
                          description="Delete environments unused for DAYS (default 30), and builds left "
                                      "behind by killed processes.")
    gc.add_argument("--older-than", type=float, default=30.0, metavar="DAYS", help="unused for DAYS (default 30)")
    gc.add_argument("--all", action="store_true", help="delete every environment")
    gc.add_argument("--dry-run", action="store_true", help="say what would be deleted")
    gc.set_defaults(handler=_gc)

    create = verbs.add_parser("create", help="build a project's environments without running it",
                              description="Resolve and build the environment of every (selected) stage.")
    _project_flags(create)
    create.add_argument("--env-manager", choices=("local", "uv", "virtualenv", "conda"),
                        help="override every stage's environment manager (as mlflow run)")
    create.add_argument("--update", action="store_true", help="resolve again instead of reusing a cached lock")
    create.set_defaults(handler=_create)

    lock = verbs.add_parser("lock", help="write conda-lock.yml beside each conda spec of a project",
                            description="Solve each conda.yaml the project uses and write its lock "
                                        "(conda-lock's format) beside it; runs then install exactly that.")
    _project_flags(lock)
    lock.set_defaults(handler=_lock)
    env.set_defaults(handler=lambda args: _usage(env))


def _project_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("uri", metavar="URI", help="project directory or git URL (optionally #subdir)")
    parser.add_argument("-e", "--entry-point", dest="entry_points", action="append", default=[], metavar="STAGE",
                        help="only these stages' environments (repeatable)")
    parser.add_argument("-v", "--version", dest="version", metavar="REF", help="git branch, tag or commit")


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _list(args: argparse.Namespace) -> int:
    from orchestra.envs import store

    rows = [{"key": e.key, "kind": e.kind, "name": e.name, "size": e.size(), "last_used": e.last_used,
             "created": e.created, "spec": e.spec, "prefix": str(e.prefix)} for e in store.published()]
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print("no environments")
        return 0
    print(f"{'KEY':22} {'KIND':7} {'SIZE':>9} {'LAST USED':19}  SPEC")
    for row in rows:
        used = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["last_used"]))
        print(f"{row['key']:22} {row['kind']:7} {row['size'] / 1e6:>7.1f}MB {used:19}  {row['spec'] or '-'}")
    return 0


def _gc(args: argparse.Namespace) -> int:
    from orchestra.envs import project

    report = project.gc(older_than_days=args.older_than, remove_all=args.all, dry_run=args.dry_run)
    verb = "would delete" if args.dry_run else "deleted"
    print(f"{verb} {len(report.removed)} environment(s), {report.bytes / 1e6:.1f} MB; "
          f"swept {report.swept} unfinished build(s)")
    for name in report.busy:
        print(f"kept {name}: being built or removed by another process")
    return 0


def _create(args: argparse.Namespace) -> int:
    from orchestra import source
    from orchestra.envs import project

    proj = source.fetch(args.uri, args.version)
    try:
        results = project.create(proj.path, entry_points=args.entry_points, env_manager=args.env_manager,
                                 update=args.update)
    finally:
        proj.cleanup()
    for item, env in results:
        if env.notice:
            print(f"orchestra: note: {env.notice}", file=sys.stderr)
        state = "built" if env.built else "ready"
        stages = ",".join(item.stages) or "-"
        print(f"{env.key}\t{state}\t{env.prefix or 'local'}\t{stages}")
    return 0


def _lock(args: argparse.Namespace) -> int:
    from orchestra import source
    from orchestra.envs import project
    from orchestra.core.errors import BadInputError

    proj = source.fetch(args.uri, args.version)
    try:
        if proj.cleanup_paths:
            raise BadInputError(f"env lock {args.uri}: writes the lock beside the spec, so it needs a local "
                                "project directory", hint="clone the project and lock the clone")
        written = project.lock(proj.path, entry_points=args.entry_points)
    finally:
        proj.cleanup()
    for path in written:
        print(f"wrote {path}")
    return 0
