"""``orchestra runs list|show|diff|sync``."""

from __future__ import annotations

import argparse
import shlex
import sys
import time

from orchestra.cli.output import print_json
from orchestra.core.status import RunStatus

TYPE_CHECKING = False
if TYPE_CHECKING:
    from orchestra.core.records import RunRecord, StageRecord


def register(sub: argparse._SubParsersAction) -> None:
    runs = sub.add_parser("runs", help="inspect recorded runs", description="Inspect recorded runs.")
    verbs = runs.add_subparsers(dest="runs_command", metavar="VERB", parser_class=type(runs))
    listing = verbs.add_parser("list", help="list runs, newest first")
    listing.add_argument("--experiment")
    listing.add_argument("--status", choices=[s.value for s in RunStatus if s is not RunStatus.PLANNED], type=str.upper)
    listing.add_argument("-n", "--limit", type=int, default=50)
    listing.add_argument("--filter", default="", metavar="EXPR",
                         help="MLflow search subset, e.g. \"metrics.evaluate.rmse < 0.3 and params.alpha = '0.5'\"")
    listing.add_argument("--sort", default="-start_time", metavar="[-]COLUMN",
                         help="start_time, run_name, status, duration, params.KEY or metrics.STAGE.KEY; - for descending")
    listing.add_argument("--columns", default="", metavar="A,B", help="extra columns: params.KEY, metrics.STAGE.KEY, tags.KEY")
    listing.add_argument("--sweep", metavar="SWEEP_ID", help="only the members of this sweep")
    listing.add_argument("--format", choices=("table", "csv"), default="table", help="table (default) or csv")
    listing.add_argument("--json", action="store_true", help="the runs as JSON (with their <stage>.<metric> metrics)")
    listing.add_argument("--metrics", action="store_true", help="a column with each run's <stage>.<metric> values")
    listing.set_defaults(handler=_list)
    show = verbs.add_parser("show", help="one run with its stages")
    show.add_argument("run_id", metavar="RUN_ID")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=_show)
    compare = verbs.add_parser("compare", help="params that differ, metrics with deltas, how each stage came to be")
    compare.add_argument("run_ids", metavar="RUN_ID", nargs="+")
    compare.add_argument("--json", action="store_true", help="the comparison as JSON, full precision")
    compare.set_defaults(handler=_compare)
    diff = verbs.add_parser("diff", help="runs compare of two runs")
    diff.add_argument("run_ids", metavar="RUN_ID", nargs=2)
    diff.add_argument("--json", action="store_true", help="the comparison as JSON, full precision")
    diff.set_defaults(handler=_compare)
    resume = verbs.add_parser("resume", help="run RUN_ID's command line again with --load-from RUN_ID",
                              description="Replay the `orchestra run` command that started RUN_ID (every flag and "
                                          "-P, from its directory) with --load-from RUN_ID: finished stages load.")
    resume.add_argument("run_id", metavar="RUN_ID")
    resume.add_argument("--print", dest="print_only", action="store_true", help="only print the command")
    resume.set_defaults(handler=_resume)
    sync = verbs.add_parser("sync", help="mirror a run to an MLflow tracking server (finish or replay it)",
                            description="Send what the MLflow mirror of RUN_ID left pending, or replay the whole "
                                        "run from the local store if it was never mirrored to this server.")
    sync.add_argument("run_id", metavar="RUN_ID")
    sync.add_argument("--tracking-uri", metavar="URI", help="MLflow tracking server (default: $MLFLOW_TRACKING_URI)")
    sync.add_argument("--experiment", "--experiment-name", dest="experiment",
                      help="experiment for a replay (default: the run's)")
    sync.add_argument("--mlflow-artifacts", action="store_true", help="in a replay, upload stage outputs too")
    sync.add_argument("--timeout", type=float, default=300.0, metavar="SECONDS", help="give up after (default 300)")
    sync.set_defaults(handler=_sync)
    runs.set_defaults(handler=lambda args: (runs.print_help(sys.stderr), 2)[1])


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def _duration(record: RunRecord | StageRecord) -> str:
    start, end = record.start_time, record.end_time
    return f"{end - start:.1f}s" if start and end else "-"


def _list(args: argparse.Namespace) -> int:
    from orchestra.app import compare

    columns = compare.parse_columns(args.columns)
    records = compare.select(args.filter, args.sort, args.limit, sweep=args.sweep, experiment=args.experiment,
                             status=args.status)
    if args.json:
        rows = [{**r.to_json(), "run_name": compare.run_name(r),
                 **({"columns": {c: compare.value_of(r, c) for c in columns}} if columns else {})} for r in records]
        print_json(rows)
        return 0
    rows = [compare.row(r, columns) for r in records]
    if args.format == "csv":
        import csv

        headers = list(rows[0]) if rows else ["run_id", "run_name", "experiment", "status", "start_time", "duration_s",
                                               "stages", "loaded", "project_uri", *columns]
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(headers)
        writer.writerows([["" if row[h] is None else row[h] for h in headers] for row in rows])
        return 0
    if not records:
        print("no runs match" if args.filter or args.sweep else "no runs yet", file=sys.stderr)
        return 0
    table = [{"run_id": row["run_id"][:12], "name": row["run_name"] or "-", "experiment": row["experiment"],
              "status": row["status"], "start": _when(row["start_time"]),
              "duration": f"{row['duration_s']:.1f}s" if row["duration_s"] is not None else "-",
              "stages": str(row["stages"]), "loaded": str(row["loaded"]),
              **{c: compare.readable(row[c]) for c in columns}, "project": row["project_uri"] or "-",
              **({"metrics": " ".join(f"{k}={v:g}" for k, v in r.metrics.items()) or "-"} if args.metrics else {})}
             for r, row in zip(records, rows)]
    _print_table(table)
    return 0


def _print_table(rows: list[dict[str, str]]) -> None:
    headers = list(rows[0])
    widths = {h: max(len(h), *(len(r[h]) for r in rows)) for h in headers}
    print("  ".join(h.ljust(widths[h]) for h in headers).rstrip())
    for r in rows:
        print("  ".join(r[h].ljust(widths[h]) for h in headers).rstrip())


def _show(args: argparse.Namespace) -> int:
    from orchestra.app import api

    record = api.get_run(args.run_id)
    if args.json:
        print_json(record.to_json())
        return 0
    print(f"run {record.run_id}  {record.status}  experiment={record.experiment}")
    print(f"  project: {record.project_uri}   started {_when(record.start_time)}   took {_duration(record)}")
    if record.params:
        print("  params: " + ", ".join(f"{k}={v}" for k, v in sorted(record.params.items())))
    if record.metrics:
        print("  metrics: " + ", ".join(f"{k}={v:g}" for k, v in record.metrics.items()))
    for key, value in sorted(record.tags.items()):
        print(f"  tag {key} = {value}")
    for stage in record.stages:
        loaded = stage.loaded_from
        origin = f" from {loaded.run_id[:8]}/{loaded.stage}" if loaded else ""
        print(f"  stage {stage.name}: {stage.status}{origin}  exit={stage.exit_code}  "
              f"attempts={stage.attempts}  took {_duration(stage)}")
        if stage.cache_key:
            print(f"    cache key {stage.cache_key}")
        if stage.tags.get("orchestra.loaded_steps"):
            steps = stage.tags["orchestra.loaded_steps"].split(",")
            print("    loaded steps: " + ", ".join(
                f"{step} from {stage.tags.get(f'orchestra.step.{step}.loaded_from', '?')[:8]}" for step in steps))
        if stage.metrics:
            print("    metrics: " + ", ".join(f"{k}={v:g}" for k, v in sorted(stage.metrics.items())))
        if stage.params:
            print("    params: " + ", ".join(f"{k}={v}" for k, v in sorted(stage.params.items())))
        for model in stage.models:
            print(f"    model {model.get('name')} ({model.get('model_id')})  files {model.get('files')}")
        for rel, entry in sorted((stage.manifest or {}).items()):
            print(f"    output {rel}  {entry['size']} B  sha256:{entry['sha256'][:12]}")
        if stage.outputs_dir:
            print(f"    outputs: {stage.outputs_dir}")
        if stage.log_paths:
            print(f"    logs: {stage.log_paths['stdout']}  {stage.log_paths['stderr']}"
                  f"  (orchestra logs {record.run_id[:8]} {shlex.quote(stage.name)})")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from orchestra.app import api, compare

    records = [api.get_run(run_id) for run_id in args.run_ids]
    result = compare.compare(records)
    if args.json:
        print_json(result)
        return 0
    names = [(r["run_name"] or r["run_id"][:8])[:16] for r in result["runs"]]
    width = max(16, *(len(n) for n in names))
    cell = lambda text: f"{text:>{width}}"  # noqa: E731
    print(f"{'':28}" + " ".join(cell(n) for n in names))
    print(f"{'status':28}" + " ".join(cell(r["status"]) for r in result["runs"]))
    for key, values in result["params"].items():
        print(f"{'param ' + key:28}" + " ".join(cell(compare.readable(v)) for v in values))
    if result["same_params"]:
        print("same params: " + ", ".join(f"{k}={v}" for k, v in result["same_params"].items()))
    for key, entry in result["metrics"].items():
        shown = [compare.readable(entry["values"][0])] + [
            compare.readable(v) + (f" ({d:+.3g})" if d is not None else "")
            for v, d in zip(entry["values"][1:], entry["deltas"][1:])]
        print(f"{'metric ' + key:28}" + " ".join(cell(text) for text in shown))
    for name, per_run in result["stages"].items():
        print(f"stage {name}:")
        for label, entry in zip(names, per_run):
            why = f"  ({entry['why']})" if entry["why"] else ""
            print(f"  {label:>{width}}: {entry['status'] or '-'}{why}")
    return 0


def _resume(args: argparse.Namespace) -> int:
    import os

    from orchestra.app import api
    from orchestra.cli import main
    from orchestra.core import invocation
    from orchestra.core.errors import BadInputError

    record = api.get_run(args.run_id)
    kept = invocation.read(record.tags)
    if kept is None:
        raise BadInputError(f"run {record.run_id[:8]} did not keep its command line", where="runs resume",
                            hint=f"run it again with --load-from {record.run_id}")
    argv, cwd = kept
    again = invocation.resume_argv(argv, record.run_id)
    if args.print_only:
        print(invocation.line(again))
        return 0
    if invocation.redacted(argv):
        raise BadInputError(f"run {record.run_id[:8]}'s command line had credentials, stored redacted",
                            where="runs resume", hint=f"run `orchestra runs resume --print {record.run_id[:8]}` "
                                                      "and put them back")
    print(f"orchestra: resuming: {invocation.line(again)}" + (f"  (in {cwd})" if cwd else ""), file=sys.stderr)
    if cwd and os.path.isdir(cwd):
        os.chdir(cwd)  # a relative project path means what it meant then
    return main(again)


def _sync(args: argparse.Namespace) -> int:
    from orchestra.app import api
    from orchestra.integrations import tracking

    uri = tracking.configured(args.tracking_uri)
    if uri is None:
        store = tracking.configured_store(args.tracking_uri)
        if store is not None:
            raise tracking.TrackingURIError(
                f"runs sync needs a tracking server; {store[1]} {store[0]} is an MLflow store",
                hint=f"start `mlflow server --backend-store-uri {store[0]}` and pass --tracking-uri http://127.0.0.1:5000")
        raise tracking.TrackingURIError("runs sync needs a tracking server",
                                        hint="pass --tracking-uri http://host:port or set MLFLOW_TRACKING_URI")
    report = api.sync_run(args.run_id, uri, upload_outputs=args.mlflow_artifacts, timeout_s=args.timeout,
                          experiment=args.experiment)
    how = "replayed" if report.replayed else "synced"
    print(f"run {report.run_id} {how} to {uri.display}: MLflow run {report.mlflow_run_id} "
          f"(experiment {report.experiment_id}), {report.sent} operation(s) sent")
    for problem in report.dropped:
        print(f"  dropped: {problem}", file=sys.stderr)
    return 0
