"""``log_model`` / ``load_model``: MLflow-format model directories without the mlflow package.

The directory is what ``mlflow.sklearn.save_model`` / ``mlflow.pyfunc.save_model`` write, so
``mlflow.pyfunc.load_model`` (and ``mlflow models serve``) load it:

- ``MLmodel``: the flavors. ``sklearn``: ``python_function`` with ``loader_module:
  mlflow.sklearn`` and ``model_path``, plus the ``sklearn`` flavor (``pickled_model``,
  ``serialization_format``, ``sklearn_version``). ``pyfunc``: ``python_function`` with the
  caller's ``loader_module`` (its ``_load_pyfunc(data_path)`` gets ``model.pkl``, or
  ``data/<name>`` when ``model`` is the path of a persisted model, as mlflow_client's
  ``load_entry_point``), or, without one, a small loader written into ``code/`` that unpickles the model and calls its ``predict``.
- ``model.pkl``: the model, by cloudpickle when it is installed (objects defined in a script
  survive), else by pickle.
- ``requirements.txt``, ``python_env.yaml``, ``conda.yaml``: the environment to serve it in.
"""

from __future__ import annotations

import json
import os
import pickle
import platform
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

FLAVORS = ("sklearn", "pyfunc")
MODEL_FILE = "model.pkl"
LOADER_MODULE = "_orchestra_pyfunc_loader"  # written into code/; named so no real package shadows it

_LOADER_SOURCE = '''"""Loads a model written by orchestra.stage.log_model (pickled object with a predict method)."""
import pickle


class _Model:
    def __init__(self, model):
        self.model = model

    def predict(self, model_input, params=None):
        return self.model.predict(model_input)

    def unwrap_python_model(self):
        return self.model


def _load_pyfunc(path):
    with open(path, "rb") as handle:
        return _Model(pickle.load(handle))
'''


def _version(distribution: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _dump(model: Any, path: Path) -> str:
    try:
        import cloudpickle
    except ImportError:
        with open(path, "wb") as handle:
            pickle.dump(model, handle)
        return "pickle"
    with open(path, "wb") as handle:
        cloudpickle.dump(model, handle)
    return "cloudpickle"


def _yaml(value: Any, indent: int = 0) -> list[str]:
    """Block YAML for nested mappings and lists of scalars (strings JSON-quoted: valid YAML)."""
    pad = "  " * indent
    lines: list[str] = []
    for key, item in value.items():
        if isinstance(item, Mapping):
            lines += [f"{pad}{key}:", *_yaml(item, indent + 1)] if item else [f"{pad}{key}: {{}}"]
        elif isinstance(item, (list, tuple)):
            lines.append(f"{pad}{key}:")
            for element in item:
                if isinstance(element, Mapping):
                    (inner_key, inner), = element.items()
                    lines.append(f"{pad}- {inner_key}:")
                    lines += [f"{pad}  - {_scalar(x)}" for x in inner]
                else:
                    lines.append(f"{pad}- {_scalar(element)}")
        else:
            lines.append(f"{pad}{key}: {_scalar(item)}")
    return lines


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))


def _requirements(flavor: str, serializer: str | None, given: Sequence[str] | None) -> list[str]:
    if given is not None:
        return [str(r) for r in given]
    found = ["mlflow"]
    if flavor == "sklearn":
        found.append(f"scikit-learn=={_version('scikit-learn')}" if _version("scikit-learn") else "scikit-learn")
    if serializer == "cloudpickle" and _version("cloudpickle"):
        found.append(f"cloudpickle=={_version('cloudpickle')}")
    return found


def write(folder: Path, model: Any, *, flavor: str, loader_module: str | None, code_paths: Iterable[str],
          pip_requirements: Sequence[str] | None) -> Path:
    """Write the model directory into ``folder`` (which exists and is empty)."""
    if flavor not in FLAVORS:
        raise ValueError(f"log_model: flavor {flavor!r} is not one of {', '.join(FLAVORS)}")
    if flavor == "sklearn" and loader_module is not None:
        raise ValueError("log_model: loader_module is for flavor='pyfunc' (sklearn models load with mlflow.sklearn)")
    if flavor == "pyfunc" and loader_module and isinstance(model, (str, os.PathLike)):
        data, serializer = _copy_data(folder, Path(model)), None  # mlflow_client's persisted model
    else:
        data, serializer = MODEL_FILE, _dump(model, folder / MODEL_FILE)
    python = platform.python_version()
    env = {"conda": "conda.yaml", "virtualenv": "python_env.yaml"}
    code = _copy_code(folder, code_paths, write_loader=flavor == "pyfunc" and loader_module is None)
    if flavor == "sklearn":
        flavors: dict[str, Any] = {
            "python_function": {"env": env, "loader_module": "mlflow.sklearn", "model_path": data,
                                "predict_fn": "predict", "python_version": python, "code": code},
            "sklearn": {"code": code, "pickled_model": data, "serialization_format": serializer,
                        "sklearn_version": _version("scikit-learn")},
        }
    else:
        flavors = {"python_function": {"env": env, "loader_module": loader_module or LOADER_MODULE,
                                       "data": data, "code": code, "python_version": python}}
    requirements = _requirements(flavor, serializer, pip_requirements)
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    meta = {"flavors": flavors, "model_size_bytes": size, "model_uuid": uuid.uuid4().hex,
            "utc_time_created": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()) + ".000000"}
    (folder / "MLmodel").write_text("\n".join(_yaml(meta)) + "\n")
    (folder / "requirements.txt").write_text("\n".join(requirements) + "\n")
    (folder / "python_env.yaml").write_text("\n".join(_yaml({
        "python": python, "build_dependencies": ["pip", "setuptools", "wheel"],
        "dependencies": ["-r requirements.txt"]})) + "\n")
    (folder / "conda.yaml").write_text("\n".join(_yaml({
        "channels": ["conda-forge"], "dependencies": [f"python={python}", "pip", {"pip": requirements}],
        "name": "mlflow-env"})) + "\n")
    return folder


def _copy_data(folder: Path, source: Path) -> str:
    """Copy a persisted model (file or directory) to ``data/<name>`` as mlflow's ``data_path`` does."""
    if not source.exists():
        raise FileNotFoundError(f"log_model: model path {source} does not exist")
    target = folder / "data" / source.name
    target.parent.mkdir()
    shutil.copytree(source, target) if source.is_dir() else shutil.copyfile(source, target)
    return f"data/{source.name}"


def _copy_code(folder: Path, code_paths: Iterable[str], *, write_loader: bool) -> str | None:
    paths = [Path(p) for p in code_paths]
    if not paths and not write_loader:
        return None
    code = folder / "code"
    code.mkdir()
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"log_model: code path {path} does not exist")
        target = code / path.name
        shutil.copytree(path, target) if path.is_dir() else shutil.copyfile(path, target)
    if write_loader:
        (code / f"{LOADER_MODULE}.py").write_text(_LOADER_SOURCE)
    return "code"


def read_mlmodel(text: str) -> dict[str, Any]:
    """Parse the MLmodel YAML that :func:`write` emits (PyYAML when installed, for any MLmodel)."""
    try:
        import yaml
    except ImportError:
        return _parse_block(text)
    return yaml.safe_load(text)


def _parse_block(text: str) -> dict[str, Any]:
    root: dict[str, Any] = {}
    stack: list[tuple[int, dict[str, Any]]] = [(-1, root)]
    for raw in text.splitlines():
        if not raw.strip() or raw.lstrip().startswith("- "):
            continue  # lists (environment files) are not needed to load a model
        indent = len(raw) - len(raw.lstrip())
        key, _, value = raw.strip().partition(":")
        while stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1]
        if value.strip() in ("",):
            parent[key] = {}
            stack.append((indent, parent[key]))
        else:
            parent[key] = json.loads(value.strip()) if value.strip() not in ("{}",) else {}
    return root


def load(path: str | os.PathLike[str]) -> Any:
    """The model of a directory :func:`write` made: the estimator (sklearn), or what the loader
    module's ``_load_pyfunc`` returns (pyfunc; something with ``predict``)."""
    folder = Path(path)
    meta = read_mlmodel((folder / "MLmodel").read_text())
    flavors = meta.get("flavors") or {}
    if "sklearn" in flavors:
        with open(folder / flavors["sklearn"]["pickled_model"], "rb") as handle:
            return pickle.load(handle)
    conf = flavors.get("python_function")
    if not conf or not conf.get("loader_module"):
        raise ValueError(f"{folder}: no sklearn or python_function flavor with a loader_module in MLmodel")
    if conf.get("code"):
        code = str(folder / conf["code"])
        if code not in sys.path:
            sys.path.insert(0, code)
    import importlib

    module = importlib.import_module(conf["loader_module"])
    return module._load_pyfunc(str(folder / conf["data"]) if conf.get("data") else str(folder))
