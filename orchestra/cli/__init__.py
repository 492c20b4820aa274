"""The ``orchestra`` command: parse arguments, call :mod:`orchestra.app.api`, map errors to exit codes.

Each verb group lives in its own module exposing ``register(subparsers)``; handlers take the
parsed namespace and return an exit code. Nothing heavy is imported here: ``orchestra --help``
must stay fast, so handlers import the api inside their bodies.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from types import ModuleType


def _import_argparse() -> ModuleType:
    """``argparse`` without ``gettext`` and ``locale`` (~1.5 ms of every command).

    argparse passes each of its messages through ``gettext.gettext``, which looks for a catalog
    of the ``messages`` domain on every call (Python ships none); orchestra's own messages are
    English, and argparse's stay English with them. The stand-in is seen by argparse alone: it
    leaves ``sys.modules`` before anything else can import ``gettext``.
    """
    if "argparse" in sys.modules or "gettext" in sys.modules:
        import argparse

        return argparse
    english = ModuleType("gettext")
    english.gettext = lambda message: message  # type: ignore[attr-defined]
    english.ngettext = lambda singular, plural, n: singular if n == 1 else plural  # type: ignore[attr-defined]
    sys.modules["gettext"] = english
    try:
        import argparse
    finally:
        del sys.modules["gettext"]
    return argparse


argparse = _import_argparse()

from orchestra import __version__  # noqa: E402
from orchestra.core import classcode, collector, modulecode, patterncode  # noqa: E402

# Before any of orchestra's dataclasses is created: their generated code is compiled once and kept
# like bytecode (the CLI creates ~60 of them per run; stage code importing orchestra.stage does not
# pay for reading the cache).
classcode.install()

from orchestra.core import log, settings  # noqa: E402
from orchestra.core.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, OrchestraError  # noqa: E402

# Verb modules, in help order. Each defines register(subparsers).
_COMMAND_MODULES = ("run", "runs", "sweeps", "inspect", "view", "env", "hooks", "schedule", "gc", "completion")


class _Parser(argparse.ArgumentParser):
    """argparse with orchestra's one-line, exit-2 usage errors."""

    def error(self, message: str) -> None:  # type: ignore[override]
        usage = " ".join(self.format_usage().split())  # one line; a long one is left to --help
        shown = f"{usage}; " if len(usage) <= 160 else ""
        self.exit(EXIT_BAD_INPUT, f"orchestra: error: {message} ({shown}see '{self.prog} --help')\n")


def _innermost(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.ArgumentParser:
    """The (sub)parser of the verb ``argv`` names: its usage is the one a wrong flag should show."""
    for arg in argv:
        choices = next((action.choices for action in parser._actions  # noqa: SLF001 - argparse has no public way
                        if isinstance(action, argparse._SubParsersAction)), None)  # noqa: SLF001
        if choices is None:
            break
        if arg in choices:
            parser = choices[arg]
    return parser


# Which module registers each top-level verb: parsing `orchestra run ...` builds only that verb's
# parser (argparse for every verb costs ~20 ms, a tenth of a warm 200-stage run).
_VERB_MODULE = {"run": "run", "plan": "run", "runs": "runs", "sweeps": "sweeps", "validate": "inspect", "dag": "inspect", "ui": "view",
                "report": "view", "logs": "view",
                "env": "env", "hooks": "hooks", "schedule": "schedule", "scheduler": "schedule", "gc": "gc", "completion": "completion"}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="orchestra",
        description="Run the entry points of an MLproject as the stages of a cached, parallel DAG.",
    )
    parser.add_argument("-V", "--version", action="version", version=f"orchestra {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.set_defaults(build_parser=build_parser)  # `orchestra completion` walks the whole tree
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    modules = (only,) if only else _COMMAND_MODULES
    for name in modules:
        importlib.import_module(f"orchestra.cli.{name}").register(sub)
    return parser


def _verb(argv: Sequence[str]) -> str | None:
    for arg in argv:
        if not arg.startswith("-"):
            return _VERB_MODULE.get(arg)
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns (and exits with) the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["__complete"]:  # the shell completion's helper: no parser, no logging, no webhooks
        from orchestra.cli.completion import complete

        return complete(argv[1:])
    bad = next((arg for arg in argv if not _utf8(arg)), None)
    if bad is not None:  # before anything is parsed, fetched or stored
        shown = _cut(bad.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace"))
        print(f"orchestra: error: argument '{shown}' is not valid UTF-8 (hint: orchestra stores and shows every "
              "value, path and parameter as UTF-8; re-encode it or rename the path)", file=sys.stderr)
        return EXIT_BAD_INPUT
    verb = _verb(argv)
    modulecode.install(verb or "cli")  # the modules this command imports, from one file
    patterncode.install(verb or "cli")  # and the regular expressions it compiles
    parser = build_parser(verb)
    args, extra = parser.parse_known_args(argv)
    # The program (orchestra/__main__.py) paused the collector through the imports; `run`
    # resumes it as its stages are about to start (the session), every other command here.
    if not getattr(args, "collects_late", False):
        collector.resume()
    if extra:  # argparse would blame the top-level parser; show the verb's own usage instead
        _innermost(parser, argv).error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return EXIT_BAD_INPUT
    args.argv = argv  # `run` keeps it on the run, to print (and `runs resume`) the exact resume line
    try:
        debug = args.debug or settings.current().debug
    except OrchestraError as exc:  # a bad ORCHESTRA_* variable
        print(f"orchestra: error: {exc}", file=sys.stderr)
        return exc.exit_code
    log.configure(debug)
    try:
        code = int(args.handler(args) or 0)
    except OrchestraError as exc:
        if debug:
            raise
        print(f"orchestra: error: {exc}", file=sys.stderr)
        code = exc.exit_code
    except KeyboardInterrupt:
        print("orchestra: interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    except BrokenPipeError:
        code = 0
    except Exception as exc:  # noqa: BLE001 - only a full disk becomes one line; the rest propagates
        if debug or not _disk_full(exc):
            raise
        print(f"orchestra: error: no space left on the filesystem of orchestra's state ({exc})", file=sys.stderr)
        code = 1
    if args.command not in ("hooks", None) and "--help" not in argv:
        _resume_webhooks()
    sys.stdout.flush()
    return code


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # bytes that were not UTF-8, kept as surrogates by the decoder
        return False
    return True


def _cut(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} characters)"


def _disk_full(exc: BaseException) -> bool:
    """ENOSPC/EDQUOT, or SQLite's "database or disk is full" (sqlite3 is not imported for it)."""
    if isinstance(exc, OSError):
        return exc.errno in (28, 122)
    return type(exc).__name__ == "OperationalError" and "database or disk is full" in str(exc)


def _resume_webhooks() -> None:
    """Deliveries left pending by an earlier (killed) process go out with any later command."""
    try:
        from orchestra.integrations.hooks import resume_pending

        resume_pending(1.0)
    except Exception:  # noqa: BLE001 - a webhook never changes a command's outcome
        pass


def run_main() -> None:  # pragma: no cover - console script wrapper
    _exit(main())


def _exit(code: int) -> None:
    """End the process without the interpreter's teardown when nothing is left to wait for.

    Clearing ~270 modules and collecting their objects takes ~15 ms after every command, a tenth
    of a one-stage run. It is skipped only when no other non-daemon thread is alive (those are
    waited for as usual); the ``atexit`` handlers still run, the standard streams are flushed,
    and SQLite needs no close (a WAL store is consistent after any exit of its process).
    """
    import atexit
    import os
    import threading

    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(code)
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):
        pass
    os._exit(code)
