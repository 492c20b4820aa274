"""The command line a run was started with, kept on the run so it can be resumed exactly.

``orchestra run`` stores its argv (credentials redacted) and working directory as the run tag
``orchestra.invocation`` (JSON). :func:`resume_argv` turns it into the argv that resumes the run:
the same flags and ``-P`` values, any earlier ``--load-from`` replaced by ``--load-from RUN``.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping, Sequence

from orchestra.core.tracking_uri import redact

TAG = "orchestra.invocation"
REDACTED = "REDACTED"
_SECRET_NAME = r"(?i)(password|passwd|secret|token|api[_-]?key|credential)"  # compiled at the first NAME=value
_ALWAYS_DROP = ("--load-from",)  # replaced by the run being resumed
_FLAG_VALUES = ("-P", "--param", "--param-list")


def _redact_arg(arg: str) -> str:
    text = redact(arg)
    name, sep, _ = text.partition("=")
    if sep and re.search(_SECRET_NAME, name):
        return f"{name}={REDACTED}"
    return text


def record(argv: Sequence[str], cwd: str) -> str:
    """The tag value for ``argv`` run in ``cwd``: URL userinfo and values of ``*token*=``,
    ``*password*=``, ``*secret*=`` params replaced, so no credential reaches the store."""
    return json.dumps({"argv": [_redact_arg(a) for a in argv], "cwd": cwd}, separators=(",", ":"))


def read(tags: Mapping[str, str]) -> tuple[list[str], str] | None:
    """(argv, cwd) from a run's tags, or None for a run that did not keep its invocation."""
    text = tags.get(TAG)
    if not text:
        return None
    try:
        value = json.loads(text)
        return [str(a) for a in value["argv"]], str(value.get("cwd") or "")
    except (ValueError, KeyError, TypeError):
        return None


def resume_argv(argv: Sequence[str], run_id: str) -> list[str]:
    """``argv`` with every ``--load-from X`` (or ``--load-from=X``) dropped and ``--load-from run_id`` added."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in _ALWAYS_DROP:
            skip = True
            continue
        if any(arg.startswith(flag + "=") for flag in _ALWAYS_DROP):
            continue
        out.append(arg)
    return [*out, "--load-from", run_id]


_SWEEP_VALUED = ("--sweep", "--sweep-file", "--sort")
_SWEEP_FLAGS = ("--fail-fast", "--yes")


def member_argv(argv: Sequence[str], values: Sequence[tuple[str, str]]) -> list[str]:
    """The command line of one sweep member: the sweep's without its sweep flags, plus its values as ``-P``."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in _SWEEP_VALUED:
            skip = True
        elif arg in _SWEEP_FLAGS or any(arg.startswith(flag + "=") for flag in _SWEEP_VALUED):
            continue
        else:
            out.append(arg)
    for key, value in values:
        out += ["-P", f"{key}={value}"]
    return out


def line(argv: Sequence[str]) -> str:
    """``orchestra ARGV`` shell-quoted."""
    return " ".join(shlex.quote(part) for part in ["orchestra", *argv])


def redacted(argv: Sequence[str]) -> bool:
    return any(REDACTED in arg for arg in argv)
