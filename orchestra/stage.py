"""Stage-side helpers: call these from stage code to log metrics and find inputs/outputs.

They work in any environment where orchestra is importable and cost nothing to import. Stages
without orchestra installed can append JSON lines (``{"type": "metric", "key", "value",
"step"}``, or ``param``/``tag`` with ``key``/``value``) to the file named by
``ORCHESTRA_METRICS_FILE`` themselves.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path


def _append(item: dict) -> None:
    path = os.environ.get("ORCHESTRA_METRICS_FILE")
    if not path:
        return  # not running under orchestra: logging is a no-op, as mlflow without a run
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(item) + "\n")


def log_metric(key: str, value: float, step: int = 0) -> None:
    """Record a metric value on the current stage (latest step wins in summaries)."""
    _append({"type": "metric", "key": key, "value": float(value), "step": int(step), "timestamp": time.time()})


def log_metrics(metrics: dict[str, float], step: int = 0) -> None:
    for key, value in metrics.items():
        log_metric(key, value, step)


def log_param(key: str, value: object) -> None:
    _append({"type": "param", "key": key, "value": str(value)})


def set_tag(key: str, value: object) -> None:
    _append({"type": "tag", "key": key, "value": str(value)})


def _output_dir() -> Path:
    path = os.environ.get("ORCHESTRA_OUTPUT_DIR")
    if not path:
        raise RuntimeError("ORCHESTRA_OUTPUT_DIR is not set: this code is not running as an orchestra stage")
    return Path(path)


def _inside(base: Path, name: str) -> Path:
    target = (base / name).resolve()
    if not target.is_relative_to(base.resolve()):
        raise ValueError(f"{name!r} escapes the directory {base}")
    return target


def output_path(name: str) -> Path:
    """Where to write output ``name`` (parent directories are created)."""
    path = _inside(_output_dir(), name)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def input_path(stage: str, name: str = "") -> Path:
    """The path of ``name`` inside the outputs of upstream ``stage``."""
    var = "ORCHESTRA_INPUT_" + re.sub(r"[^A-Za-z0-9]", "_", stage).upper()
    base = os.environ.get(var)
    if not base:
        raise KeyError(f"no input from stage {stage!r} (is it in depends_on?)")
    return _inside(Path(base), name) if name else Path(base)


def log_artifact(path: str | os.PathLike[str], name: str | None = None) -> Path:
    """Copy a file (or directory) into this stage's outputs; returns the new path."""
    source = Path(path)
    target = output_path(name or source.name)
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=True)
    else:
        shutil.copyfile(source, target)
    return target
