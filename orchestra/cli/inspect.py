"""``orchestra validate`` and ``orchestra dag``."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    validate = sub.add_parser("validate", help="check an MLproject", description="Load and validate a project.")
    validate.add_argument("uri", metavar="URI")
    validate.add_argument("-v", "--version", metavar="REF")
    validate.add_argument("--strict", action="store_true",
                          help="refuse what mlflow run accepts but orchestra reads leniently (the warnings): exit 2")
    validate.set_defaults(handler=_validate)
    dag = sub.add_parser("dag", help="show the stage DAG",
                         description="Render the stage DAG of a project, or of a stored run with each stage's status.")
    dag.add_argument("uri", metavar="URI|RUN_ID")
    dag.add_argument("-v", "--version", metavar="REF")
    dag.add_argument("--format", choices=("ascii", "dot", "mermaid", "svg", "png", "html"), default="ascii",
                     help="svg and png need no graphviz (png needs Pillow: pip install 'orchestra[png]')")
    dag.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")
    dag.set_defaults(handler=_dag)


def _validate(args: argparse.Namespace) -> int:
    from orchestra.app import api
    from orchestra.core.errors import SpecError

    spec, graph = api.validate(args.uri, args.version)  # the warnings are logged as the file loads
    count = len(spec.warnings)
    if args.strict and count:
        raise SpecError(f"--strict: {count} warning(s), the first: {spec.warnings[0]}",
                        hint="fix them, or validate without --strict")
    kind = "pipeline" if spec.is_pipeline else "project"
    noted = f" ({count} warning(s))" if count else ""
    print(f"{spec.display_file}: valid {kind} with {len(graph.order)} entry point(s){noted}: {', '.join(graph.order)}")
    return 0


def _dag(args: argparse.Namespace) -> int:
    import sys

    from orchestra.ui import dagdraw, report

    view = dagdraw.view_of(args.uri, args.version)
    if view.run_id is None and args.format in ("ascii", "dot", "mermaid"):
        from orchestra.app import api
        from orchestra.mlproject.graph import render

        _spec, graph = api.validate(args.uri, args.version)
        text: str | bytes = render(graph, args.format) + "\n"
    else:
        text = dagdraw.render(view, args.format)
        text = text if isinstance(text, bytes) or text.endswith("\n") else text + "\n"
    if args.output:
        path = report.write(text, args.output)
        print(f"orchestra: wrote {path}", file=sys.stderr)
    elif isinstance(text, bytes):
        if sys.stdout.isatty():
            from orchestra.core.errors import BadInputError

            raise BadInputError("--format png writes binary data", where="--format png", hint="add -o FILE.png")
        sys.stdout.buffer.write(text)
    else:
        sys.stdout.write(text)
    return 0
