"""``orchestra ui``, ``orchestra report`` and ``orchestra logs``: looking at runs."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    ui = sub.add_parser("ui", help="serve the web UI over the run store",
                        description="A local, read-only web app: runs, a run's DAG, timeline, metrics and logs, "
                                    "compare, schedules, webhooks.")
    ui.add_argument("--host", default="127.0.0.1",
                    help="address to listen on (default 127.0.0.1; any other needs the printed token)")
    ui.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)")
    ui.set_defaults(handler=_ui)
    report = sub.add_parser("report", help="write a run's page as one self-contained HTML file",
                            description="The run page (DAG, timeline, metrics, params, logs) as one HTML file.")
    report.add_argument("run_id", metavar="RUN_ID")
    report.add_argument("-o", "--output", default="report.html", help="file to write (default report.html)")
    report.set_defaults(handler=_report)
    logs = sub.add_parser("logs", help="print or follow a stage's log",
                          description="Print a run's stage logs (both streams interleaved by line, marked), "
                                      "or follow one while it runs.")
    logs.add_argument("run_id", metavar="RUN_ID")
    logs.add_argument("stage", metavar="STAGE", nargs="?", help="one stage (default: every stage that has a log)")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing as the stage writes")
    streams = logs.add_mutually_exclusive_group()
    streams.add_argument("--stdout", dest="stream", action="store_const", const="stdout", help="only stdout")
    streams.add_argument("--stderr", dest="stream", action="store_const", const="stderr", help="only stderr")
    logs.set_defaults(handler=_logs)


def _ui(args: argparse.Namespace) -> int:
    from orchestra.ui import server

    httpd = server.create(args.host, args.port)
    print(f"orchestra ui: serving {server.url_of(httpd)} (read-only; Ctrl-C stops)", flush=True)
    if httpd.token:
        print("orchestra ui: not on loopback: every request needs the token in that URL", flush=True)
    try:
        httpd.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
    return 0


def _report(args: argparse.Namespace) -> int:
    from orchestra.ui import report

    path = report.write(report.build(args.run_id), args.output)
    print(f"orchestra: wrote {path}")
    return 0


def _logs(args: argparse.Namespace) -> int:
    from orchestra.ui import logview

    return logview.show(args.run_id, args.stage, args.stream, follow=args.follow, out=sys.stdout,
                        note=lambda text: print(text, file=sys.stderr))
