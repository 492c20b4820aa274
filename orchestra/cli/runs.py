"""``orchestra runs list|show|diff|sync``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING

from orchestra.core.status import RunStatus, StageStatus

if TYPE_CHECKING:
    from orchestra.core.records import RunRecord, StageRecord


def register(sub: argparse._SubParsersAction) -> None:
    runs = sub.add_parser("runs", help="inspect recorded runs", description="Inspect recorded runs.")
    verbs = runs.add_subparsers(dest="runs_command", metavar="VERB", parser_class=type(runs))
    listing = verbs.add_parser("list", help="list runs, newest first")
    listing.add_argument("--experiment")
    listing.add_argument("--status", choices=[s.value for s in RunStatus if s is not RunStatus.PLANNED], type=str.upper)
    listing.add_argument("-n", "--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=_list)
    show = verbs.add_parser("show", help="one run with its stages")
    show.add_argument("run_id", metavar="RUN_ID")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=_show)
    diff = verbs.add_parser("diff", help="params, metrics and key components of two runs side by side")
    diff.add_argument("run_a", metavar="RUN_A")
    diff.add_argument("run_b", metavar="RUN_B")
    diff.set_defaults(handler=_diff)
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
    from orchestra.app import api

    records = api.list_runs(args.experiment, args.status, args.limit)
    if args.json:
        json.dump([r.to_json() for r in records], sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
        return 0
    if not records:
        print("no runs yet", file=sys.stderr)
        return 0
    import pandas as pd

    table = pd.DataFrame([{
        "run_id": r.run_id, "experiment": r.experiment, "status": str(r.status), "start": _when(r.start_time),
        "duration": _duration(r), "stages": len(r.stages),
        "loaded": sum(1 for s in r.stages if s.status == StageStatus.LOADED),
        "project": r.project_uri,
    } for r in records])
    print(table.to_string(index=False))
    return 0


def _show(args: argparse.Namespace) -> int:
    from orchestra.app import api

    record = api.get_run(args.run_id)
    if args.json:
        json.dump(record.to_json(), sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
        return 0
    print(f"run {record.run_id}  {record.status}  experiment={record.experiment}")
    print(f"  project: {record.project_uri}   started {_when(record.start_time)}   took {_duration(record)}")
    if record.params:
        print("  params: " + ", ".join(f"{k}={v}" for k, v in sorted(record.params.items())))
    for key, value in sorted(record.tags.items()):
        print(f"  tag {key} = {value}")
    for stage in record.stages:
        loaded = stage.loaded_from
        origin = f" from {loaded.run_id[:8]}/{loaded.stage}" if loaded else ""
        print(f"  stage {stage.name}: {stage.status}{origin}  exit={stage.exit_code}  "
              f"attempts={stage.attempts}  took {_duration(stage)}")
        if stage.cache_key:
            print(f"    cache key {stage.cache_key}")
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
            print(f"    logs: {stage.log_paths['stderr']}")
    return 0


def _diff(args: argparse.Namespace) -> int:
    from orchestra.app import api
    from orchestra.planning.fingerprint import differences

    a, b = api.get_run(args.run_a), api.get_run(args.run_b)
    print(f"{'':24} {a.run_id[:12]:>16} {b.run_id[:12]:>16}")
    print(f"{'status':24} {a.status:>16} {b.status:>16}")
    for key in sorted(set(a.params) | set(b.params)):
        va, vb = a.params.get(key, "-"), b.params.get(key, "-")
        mark = "  *" if va != vb else ""
        print(f"{'param ' + key:24} {str(va):>16} {str(vb):>16}{mark}")
    stages_a = {s.name: s for s in a.stages}
    stages_b = {s.name: s for s in b.stages}
    for name in list(dict.fromkeys([*stages_a, *stages_b])):
        sa, sb = stages_a.get(name), stages_b.get(name)
        print(f"stage {name}: {sa.status if sa else '-'} / {sb.status if sb else '-'}")
        metrics_a, metrics_b = (sa.metrics if sa else {}), (sb.metrics if sb else {})
        for key in sorted(set(metrics_a) | set(metrics_b)):
            va, vb = metrics_a.get(key, "-"), metrics_b.get(key, "-")
            print(f"  {'metric ' + key:22} {str(va):>16} {str(vb):>16}")
        params_a, params_b = (sa.params if sa else {}), (sb.params if sb else {})
        for key in sorted(set(params_a) | set(params_b)):
            va, vb = params_a.get(key, "-"), params_b.get(key, "-")
            print(f"  {'param ' + key:22} {str(va):>16} {str(vb):>16}{'  *' if va != vb else ''}")
        if sa and sb and sa.components and sb.components:
            changes = differences(sa.components, sb.components)
            print("  key: " + ("same" if not changes else "; ".join(changes)))
    return 0


def _sync(args: argparse.Namespace) -> int:
    from orchestra.app import api
    from orchestra.integrations import tracking

    uri = tracking.configured(args.tracking_uri)
    if uri is None:
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
