"""Stage-side helpers: call these from stage code to log metrics and find inputs/outputs.

They work in any environment where orchestra is importable and cost nothing to import. Stages
without orchestra installed can append JSON lines (``{"type": "metric", "key", "value",
"step"}``, or ``param``/``tag`` with ``key``/``value``) to the file named by
``ORCHESTRA_METRICS_FILE`` themselves.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

from orchestra.stage._tracking import append, inside, output_dir


def log_metric(key: str, value: float, step: int = 0) -> None:
    """Record a metric value on the current stage (latest step wins in summaries)."""
    append({"type": "metric", "key": key, "value": float(value), "step": int(step), "timestamp": time.time()})


def log_metrics(metrics: dict[str, float], step: int = 0) -> None:
    for key, value in metrics.items():
        log_metric(key, value, step)


def log_param(key: str, value: object) -> None:
    append({"type": "param", "key": key, "value": str(value)})


def set_tag(key: str, value: object) -> None:
    append({"type": "tag", "key": key, "value": str(value)})


def output_path(name: str) -> Path:
    """Where to write output ``name`` (parent directories are created)."""
    path = inside(output_dir(), name)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def input_path(stage: str, name: str = "") -> Path:
    """The path of ``name`` inside the outputs of upstream ``stage``."""
    var = "ORCHESTRA_INPUT_" + re.sub(r"[^A-Za-z0-9]", "_", stage).upper()
    base = os.environ.get(var) or _far_input(stage)
    if not base:
        raise KeyError(f"no input from stage {stage!r} (is it in depends_on?)")
    return inside(Path(base), name) if name else Path(base)


def _far_input(stage: str) -> str | None:
    """An upstream stage's outputs from ``ORCHESTRA_INPUTS_FILE`` (a stage with more upstream
    stages than variables: a long chain): only a stage upstream of this one is found."""
    file, me = os.environ.get("ORCHESTRA_INPUTS_FILE"), os.environ.get("ORCHESTRA_STAGE")
    if not file or not me:
        return None
    import json

    try:
        stages = json.loads(Path(file).read_text())
    except (OSError, ValueError):
        return None
    seen, stack = set(), list(stages.get(me, {}).get("parents", ()))
    while stack:
        node = stack.pop()
        if node == stage:
            entry = stages[node]
            if "manifest" in entry and not os.path.isdir(entry["outputs"]):  # loaded, not linked yet
                from orchestra.stage._inputs import link

                link(entry["outputs"], entry["manifest"], entry["objects"])
            return entry["outputs"]
        if node not in seen:
            seen.add(node)
            stack.extend(stages.get(node, {}).get("parents", ()))
    return None


def log_artifact(path: str | os.PathLike[str], name: str | None = None) -> Path:
    """Copy a file (or directory) into this stage's outputs; returns the new path."""
    source = Path(path)
    target = output_path(name or source.name)
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=True)
    else:
        shutil.copyfile(source, target)
    return target


# The functions below import their module when called: ``import orchestra.stage`` stays cheap
# (pickle, sqlite3 and inspect-like work are paid only by the stages that use them).

def managed_artifact(name: str, step: str | None = None, *, key: Mapping[str, Any] | None = None) -> Any:
    """A file artifact written in a private temporary place and published into the stage's outputs
    as ``name`` when the ``with`` block exits cleanly (an exception publishes nothing).

    With ``step``, the artifact is a reusable step: ``.loaded`` is true and ``.path`` is a
    verified, read-only copy when ``--load-from RUN --load-steps STEP`` asks for it or an earlier
    run published the same step key (see docs/coming-from-mlflowhelper.md for what the key holds;
    ``key`` adds what else the step depends on, e.g. ``{"rows": rows}``)::

        with stage.managed_artifact("data.csv", step="load_data") as artifact:
            if not artifact.loaded:
                download(artifact.path)
            frame = read(artifact.path)
    """
    from orchestra.stage._managed import ManagedArtifact

    return ManagedArtifact(name, step, key, "file")


def managed_artifact_dir(name: str, step: str | None = None, *, key: Mapping[str, Any] | None = None) -> Any:
    """A directory artifact (``.get_path("train.csv")``); otherwise as :func:`managed_artifact`."""
    from orchestra.stage._managed import ManagedArtifact

    return ManagedArtifact(name, step, key, "dir")


def log_vars(exclude: Iterable[str] = (), prefix: str = "") -> dict[str, Any]:
    """Log the calling function's arguments as params, as mlflowhelper's ``log_vars`` does: named
    arguments (defaults included), ``*args`` as ``vararg_0, vararg_1, …`` and each ``**kwargs``
    item by its own name; ``exclude`` names are left out, ``prefix`` is put before every name.
    Returns what was logged::

        def main(param1, param2, param3="defaultvalue", verbose=0, *args, **kwargs):
            stage.log_vars(exclude=["verbose"])  # param1, param2, param3 and each kwarg
    """
    from orchestra.stage._vars import log_vars as log

    return log(exclude, prefix, depth=2)


def persistent_dict(name: str) -> Any:
    """A dict of JSON values that outlives runs, one per ``name`` and project, safe for parallel
    stages (mlflowhelper's ``MlflowDict``). For small state only (counters, best scores)::

        seen = stage.persistent_dict("seen")
        with seen.locked():               # read-modify-write as one transaction
            seen["runs"] = seen.get("runs", 0) + 1
    """
    from orchestra.stage._pdict import PersistentDict

    return PersistentDict(name)


def log_model(model: Any, name: str = "model", flavor: str = "sklearn", loader_module: str | None = None,
              code_paths: Iterable[str] = (), pip_requirements: Iterable[str] | None = None) -> Path:
    """Write ``model`` as an MLflow model directory ``name`` into the stage's outputs, without the
    mlflow package; ``mlflow.pyfunc.load_model`` loads it, and so does :func:`load_model`.

    Args:
        flavor: ``"sklearn"`` (a scikit-learn estimator) or ``"pyfunc"`` (any object with
            ``predict``, or what ``loader_module._load_pyfunc(path)`` returns for the pickled
            model — or for the copy of ``model`` when it is the path of a persisted model).
        loader_module: for ``pyfunc``, the module that loads it (ship it with ``code_paths``).
        code_paths: files or directories copied into the model's ``code/`` (on ``sys.path``
            when it is loaded).
        pip_requirements: the serving environment's requirements (default: mlflow, plus
            scikit-learn and cloudpickle at the installed versions when used).

    Under orchestra's tracking endpoint (``MLFLOW_TRACKING_URI``/``MLFLOW_RUN_ID`` set for the
    stage) it is also registered as a logged model of the stage's run, as ``mlflow.<flavor>.log_model``
    does; if that fails, a warning on stderr and the stage goes on.

    Returns the model directory in the outputs.
    """
    from orchestra.stage._managed import ManagedArtifact
    from orchestra.stage._models import write
    from orchestra.stage._register import register

    requirements = None if pip_requirements is None else list(pip_requirements)
    with ManagedArtifact(name, None, None, "dir") as folder:
        write(folder.path, model, flavor=flavor, loader_module=loader_module, code_paths=code_paths,
              pip_requirements=requirements)
    append({"type": "tag", "key": f"orchestra.model.{name}", "value": flavor})
    register(folder.path, name, flavor)
    return folder.path


def load_model(path: str | os.PathLike[str]) -> Any:
    """Load a model :func:`log_model` wrote (``input_path("train", "model")``), without mlflow:
    the estimator for ``sklearn``, an object with ``predict`` for ``pyfunc``."""
    from orchestra.stage._models import load

    return load(path)
