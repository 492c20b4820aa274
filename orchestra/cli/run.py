"""``orchestra run`` and ``orchestra plan``: the flags of ``mlflow run`` plus pipeline flags."""

from __future__ import annotations

import argparse
import json
import sys

from orchestra.cli import sweeps
from orchestra.cli.output import print_json


MLFLOW_GROUP = "mlflow run's flags"
MLFLOW_DIFFERENCES = (
    "Accepted as `mlflow run` accepts them. Where orchestra deliberately differs: -P values are "
    "checked against their declared types before anything runs (--no-type-check passes them through, "
    "as mlflow does); relative `path` defaults resolve against the project directory; -e may be "
    "repeated and also runs the stages a target depends on; a local git project with --version runs "
    "in a separate checkout, never touching your tree; -b accepts only local; bad input exits 2 "
    "(mlflow: 1). The README's \"Differences from mlflow run\" table lists them all."
)


def add_run_flags(parser: argparse.ArgumentParser, *, run: bool = False) -> argparse._ArgumentGroup:
    """Flags shared by ``run`` and ``plan`` (``run``: also mlflow run's flags only a run uses);
    returns the group of orchestra's own flags."""
    parser.add_argument("uri", metavar="URI", help="project directory or git URL (optionally #subdir)")
    mlflow = parser.add_argument_group(MLFLOW_GROUP, MLFLOW_DIFFERENCES)
    mlflow.add_argument("-e", "--entry-point", dest="entry_points", action="append", default=[], metavar="STAGE",
                        help="target stage (repeatable); its ancestors run too. Default: the whole DAG, or main")
    mlflow.add_argument("-v", "--version", dest="version", metavar="REF", help="git branch, tag or commit")
    mlflow.add_argument("-P", "--param", "--param-list", dest="params", action="append", default=[], metavar="KEY=VALUE",
                        help="parameter for every selected stage declaring KEY, or STAGE.KEY=VALUE for one stage")
    mlflow.add_argument("--env-manager", choices=("local", "uv", "virtualenv", "conda"),
                        help="override every stage's environment manager (virtualenv is built with uv here)")
    mlflow.add_argument("--storage-dir", metavar="DIR",
                        help="where remote `path` parameters are downloaded (as mlflow run)")
    if run:
        _add_mlflow_run_only(mlflow)
    own = parser.add_argument_group("orchestra's flags")
    own.add_argument("--no-type-check", dest="type_check", action="store_false",
                     help="pass -P values through unchecked, as mlflow run does")
    own.add_argument("--no-cache", action="store_true", help="run every stage, load nothing")
    own.add_argument("--force", action="append", default=[], metavar="STAGE", help="rerun STAGE (repeatable)")
    own.add_argument("--load-from", metavar="RUN_ID", help="prefer the outputs of this run where still valid")
    own.add_argument("--tracking-uri", metavar="URI",
                     help="MLflow tracking server (http[s]://host:port) to mirror to and --load-from "
                          "(default: $MLFLOW_TRACKING_URI)")
    own.add_argument("--load-stages", metavar="A,B", default="",
                     help="with --load-from: load these stages from RUN_ID even if their keys differ")
    own.add_argument("--load-steps", metavar="A,B", default="",
                     help="with --load-from: load these managed-artifact steps (orchestra.stage) from RUN_ID")
    return own


def _add_mlflow_run_only(mlflow: argparse._ArgumentGroup) -> None:
    mlflow.add_argument("--experiment-name", "--experiment", dest="experiment",
                        help="experiment name (default: $MLFLOW_EXPERIMENT_NAME, else Default)")
    mlflow.add_argument("--experiment-id", metavar="ID",
                        help="MLflow experiment id (wins over the name; default: $MLFLOW_EXPERIMENT_ID unless a name is given)")
    mlflow.add_argument("-b", "--backend", default="local", metavar="BACKEND",
                        help="execution backend: local (clusters: --executor dask://HOST:PORT)")
    mlflow.add_argument("-c", "--backend-config", metavar="JSON|FILE",
                        help='backend configuration, a JSON file or string: mlflow\'s local-backend keys, and '
                             'orchestra\'s jobs, keep_going, executor (e.g. \'{"jobs": 2}\')')
    mlflow.add_argument("--run-id", dest="parent_run_id", metavar="MLFLOW_RUN_ID",
                        help="attach the pipeline to this existing MLflow run as its parent")
    mlflow.add_argument("--run-name", metavar="NAME", help="a name for the run (tag mlflow.runName)")
    mlflow.add_argument("-A", "--docker-args", dest="docker_args", action="append", default=[], metavar="NAME[=VALUE]",
                        help="docker run argument for docker_env projects: -A gpus=all is --gpus all, -A t is -t")
    mlflow.add_argument("--build-image", action="store_true",
                        help="docker_env: build an image with the project copied in")
    mlflow.add_argument("--skip-image-build", action="store_true",
                        help="docker_env: run the image as it is, without building (older mlflow)")


def register(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="run a project's stages", description="Run an MLproject's stages as a DAG.")
    own = add_run_flags(run, run=True)
    own.add_argument("-j", "--jobs", type=int, metavar="N", help="stages in parallel (default: number of CPUs)")
    own.add_argument("-k", "--keep-going", action="store_true", help="after a failure, let independent stages finish")
    own.add_argument("--dry-run", action="store_true", help="print the plan; run and write nothing")
    own.add_argument("--executor", default="local", metavar="local|dask://HOST:PORT",
                     help="where stages run: this machine (default) or a Dask cluster (pip install 'orchestra[dask]'; "
                          "files move through ORCHESTRA_ARTIFACTS=URL when paths are not shared)")
    own.add_argument("--mlflow-artifacts", action="store_true",
                     help="with a tracking server: upload stage outputs and their manifest, so --load-from "
                          "<MLflow run id> works from another machine")
    own.add_argument("--hooks", dest="hooks_uris", action="append", default=[], metavar="URL|FILE",
                     help="an http(s) URL that receives every event, or a hooks config file / project dir")
    own.add_argument("--hooks-config", dest="hooks_uris", action="append", type=lambda uri: f"config:{uri}",
                     metavar="FILE|URL", help="a hooks configuration: JSON/YAML file, project dir, or URL answering JSON")
    own.add_argument("--trust-project-hooks", action="store_true", help="honour hooks declared inside a git project")
    own.add_argument("--hooks-drain", type=float, default=10.0, metavar="SECONDS",
                     help="wait at most this long for webhook deliveries at the end (default 10)")
    own.add_argument("--json", action="store_true", help="print the finished run's record as JSON on stdout")
    own.add_argument("-q", "--quiet", action="store_true", help="no progress output on stderr")
    own.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                     help="colour the progress output (auto: on a terminal, unless NO_COLOR is set)")
    sweeps.add_sweep_flags(run.add_argument_group("sweeps"))
    run.set_defaults(handler=_run, collects_late=True)  # (orchestra.core.collector)

    plan = sub.add_parser("plan", help="show what a run would do and why",
                          description="Print each stage's action (RUN / LOAD from run X) and the reasons.")
    add_run_flags(plan)
    plan.add_argument("--json", action="store_true", help="machine-readable plan with key components")
    plan.set_defaults(handler=_plan)


def options_from(args: argparse.Namespace, **concerns: object):
    """The parsed flags as RunOptions (each concern validates itself: a bad value is exit 2 here)."""
    from orchestra.core import options as o

    return o.RunOptions(
        selection=o.Selection(version=args.version, entry_points=tuple(args.entry_points), params=tuple(args.params),
                              type_check=args.type_check, storage_dir=args.storage_dir),
        cache=o.CacheOptions(no_cache=args.no_cache, force=tuple(args.force), load_from=args.load_from,
                             load_stages=_names(args.load_stages), load_steps=_names(args.load_steps)),
        **concerns,  # type: ignore[arg-type]
    )


def _names(text: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in text.split(",") if s.strip())


def docker_args(values: list[str]) -> tuple[tuple[str, str | None], ...]:
    """``-A name=value`` / ``-A name`` as (name, value or None), in order."""
    pairs = []
    for value in values:
        name, sep, rest = value.partition("=")
        pairs.append((name, rest if sep else None))
    return tuple(pairs)


def backend_config(text: str | None) -> dict:
    """``-c``: a JSON file or a JSON string (as mlflow run); a bad one is exit 2."""
    import os

    from orchestra.core.errors import BadInputError

    if not text:
        return {}
    source = "-c/--backend-config"
    if os.path.isfile(text):
        source = text
        with open(text, encoding="utf-8") as handle:
            text = handle.read()
    elif text.endswith(".json"):
        raise BadInputError(f"-c/--backend-config {text}: no such file", hint="give a JSON file or a JSON string")
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise BadInputError(f"{source}: not JSON ({exc})", hint="give a JSON object or the path of a JSON file") from None
    if not isinstance(value, dict):
        raise BadInputError(f"{source}: expected a JSON object", hint='e.g. -c \'{"jobs": 2}\'')
    return value


def experiment_of(args: argparse.Namespace, environ: dict[str, str]) -> tuple[str, str | None]:
    """(name, id) as mlflow run reads them: the flags, else MLFLOW_EXPERIMENT_NAME/_ID (a name
    given as a flag beats an id from the environment; mlflow calls that pair a usage error)."""
    name = args.experiment or environ.get("MLFLOW_EXPERIMENT_NAME") or "Default"
    experiment_id = args.experiment_id or (None if args.experiment else environ.get("MLFLOW_EXPERIMENT_ID") or None)
    return name, experiment_id


def _run(args: argparse.Namespace) -> int:
    import os

    from orchestra.app import api
    from orchestra.core import options as o

    experiment, experiment_id = experiment_of(args, dict(os.environ))

    options = options_from(
        args,
        execution=o.ExecutionOptions(jobs=args.jobs, keep_going=args.keep_going, dry_run=args.dry_run,
                                     env_manager=args.env_manager, executor=args.executor,
                                     docker_args=docker_args(args.docker_args), build_image=args.build_image,
                                     skip_image_build=args.skip_image_build, backend=args.backend,
                                     backend_config=backend_config(args.backend_config)),
        recording=o.RecordingOptions(experiment=experiment, tracking_uri=args.tracking_uri,
                                     mlflow_artifacts=args.mlflow_artifacts, experiment_id=experiment_id,
                                     parent_run_id=args.parent_run_id,
                                     tags={**({"mlflow.runName": args.run_name} if args.run_name else {}),
                                           **_invocation(args)}),
        notification=o.NotificationOptions(hooks_uris=tuple(args.hooks_uris),
                                           trust_project_hooks=args.trust_project_hooks,
                                           hooks_drain=args.hooks_drain),
        quiet=args.quiet,
        color=args.color,
    )
    if args.sweep or args.sweep_file:  # many runs, one pool
        return sweeps.run_sweep(args, options)
    result = api.run(args.uri, options, record=args.json)  # (runs show links them when asked)
    if args.json:
        print_json(result.to_json())
    return result.exit_code


def _invocation(args: argparse.Namespace) -> dict[str, str]:
    """The command line, credentials redacted, as the run tag the resume line is rebuilt from."""
    import os

    from orchestra.core import invocation

    argv = getattr(args, "argv", None)
    return {invocation.TAG: invocation.record(argv, os.getcwd())} if argv else {}


def _plan(args: argparse.Namespace) -> int:
    from orchestra.app import api
    from orchestra.planning.plan import describe

    from orchestra.core import options as o

    the_plan = api.plan(args.uri, options_from(
        args, execution=o.ExecutionOptions(env_manager=args.env_manager),
        recording=o.RecordingOptions(tracking_uri=args.tracking_uri)))
    steps = api.published_steps(the_plan, _names(args.load_steps))
    if args.json:
        rows = the_plan.to_json()
        for row in rows:
            row["published_steps"] = [{"step": s.step, "name": s.name, "run_id": s.run_id, "trusted": s.trusted}
                                      for s in steps.get(row["stage"], [])]
        print_json(rows)
        return 0
    for decision in the_plan.stages:
        print(describe(decision))
        for reason in decision.load_from_differences:
            print(f"    cannot reuse --load-from run: {reason}")
        for step in steps.get(decision.name, []):
            print(f"    step {step.step} ({step.name}) loads from run {step.run_id[:8]} (--load-steps)" if step.trusted
                  else f"    step {step.step} ({step.name}) may load from run {step.run_id[:8]} (if its key= matches)")
    return 0
