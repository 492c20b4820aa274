"""``orchestra validate`` and ``orchestra dag``."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    validate = sub.add_parser("validate", help="check an MLproject", description="Load and validate a project.")
    validate.add_argument("uri", metavar="URI")
    validate.add_argument("-v", "--version", metavar="REF")
    validate.set_defaults(handler=_validate)
    dag = sub.add_parser("dag", help="show the stage DAG", description="Render the stage DAG.")
    dag.add_argument("uri", metavar="URI")
    dag.add_argument("-v", "--version", metavar="REF")
    dag.add_argument("--format", choices=("ascii", "dot", "mermaid"), default="ascii")
    dag.set_defaults(handler=_dag)


def _validate(args: argparse.Namespace) -> int:
    from orchestra.app import api

    spec, graph = api.validate(args.uri, args.version)
    kind = "pipeline" if spec.is_pipeline else "project"
    print(f"{spec.display_file}: valid {kind} with {len(graph.order)} entry point(s): {', '.join(graph.order)}")
    return 0


def _dag(args: argparse.Namespace) -> int:
    from orchestra.app import api
    from orchestra.mlproject.graph import render

    _spec, graph = api.validate(args.uri, args.version)
    print(render(graph, args.format))
    return 0
