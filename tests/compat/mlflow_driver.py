"""Runs a batch of ``mlflow run`` invocations in one interpreter of the mlflow virtualenv.

``mlflow run`` costs seconds per call, most of it importing mlflow; the compatibility suite
runs every case through mlflow's own click command (``mlflow.cli.cli``, the code behind the
``mlflow`` executable) in this one process instead. Each case sets its working directory and
environment; the exit code is what the ``mlflow`` executable would return: click's own for
usage errors (2), 1 for ``ExecutionException`` (mlflow's CLI catches it) and for any other
exception (an uncaught traceback).

Usage: python mlflow_driver.py CASES.json RESULTS.json
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sys
import time
import traceback


def run_case(case: dict) -> dict:
    from mlflow.cli import cli

    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    os.environ.update(case.get("env", {}))
    os.chdir(case["cwd"])
    err = io.StringIO()
    handler = logging.StreamHandler(err)
    logging.getLogger("mlflow").addHandler(handler)  # mlflow logs its "=== error ===" lines
    code = 0
    started = time.monotonic()
    try:
        with contextlib.redirect_stderr(err):
            cli.main(args=["run", *case["args"]], prog_name="mlflow", standalone_mode=True)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - the executable would die with a traceback: exit 1
        err.write(traceback.format_exc())
        code = 1
    finally:
        logging.getLogger("mlflow").removeHandler(handler)
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    return {"name": case["name"], "exit_code": code, "stderr": err.getvalue()[-4000:],
            "seconds": round(time.monotonic() - started, 3)}


def main() -> None:
    cases = json.loads(open(sys.argv[1]).read())
    results = [run_case(case) for case in cases]
    with open(sys.argv[2], "w") as handle:
        json.dump(results, handle)


if __name__ == "__main__":
    main()
