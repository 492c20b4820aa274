"""The artifact proxy (``api/2.0/mlflow-artifacts/artifacts/<path>``): upload, download, list.

Artifact locations are ``<experiment>/<run_id>/artifacts/<rel>`` for runs and
``<experiment>/models/<model_id>/artifacts/<rel>`` for logged models, as ``mlflow server``
spells them. The files of a run or model of this pipeline live in its stage's outputs: while
the stage runs, in the attempt's staging directory (published with the stage's other outputs,
discarded if it fails); afterwards, in its published outputs. Uploads are accepted only from the
stage that owns the run or model, while it runs; a path never escapes the stage's directory.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path, PurePosixPath
from typing import IO, Any

from orchestra.integrations.endpoint.shapes import ApiError, NotHere, invalid
from orchestra.integrations.endpoint.state import Registry, StageSlot


def _split(location: str) -> tuple[str, str, str]:
    """``exp/<run>/artifacts/rel`` or ``exp/models/<id>/artifacts/rel`` → (kind, id, rel)."""
    parts = PurePosixPath(location.strip("/")).parts
    if any(p in ("..", ".") for p in parts) or "\\" in location or "\x00" in location:
        raise invalid(f"Invalid path: {location}")
    if len(parts) >= 4 and parts[1] == "models" and parts[3] == "artifacts":
        return "model", parts[2], "/".join(parts[4:])
    if len(parts) >= 3 and parts[2] == "artifacts":
        return "run", parts[1], "/".join(parts[3:])
    raise NotHere(f"Artifact location {location}")


def locate(registry: Registry, location: str) -> tuple[StageSlot, Path | None, str]:
    """The owning stage, the directory holding the run's or model's files now (None: gone), and rel."""
    kind, ident, rel = _split(location)
    with registry.lock:
        owner = registry.models.get(ident) if kind == "model" else registry.runs.get(ident)
        if owner is None:
            raise NotHere(f"Artifact location {location}")
        slot = registry.slots[owner.stage]
        base = slot.staging or slot.outputs
        return slot, (base / owner.prefix) if base is not None else None, rel


def upload(registry: Registry, caller: StageSlot, location: str, body: IO[bytes], length: int) -> dict[str, Any]:
    slot, root, rel = locate(registry, location)
    if slot is not caller or slot.staging is None or root is None:
        raise ApiError("PERMISSION_DENIED", f"{location}: only the running stage that owns it may write it", 403)
    if not rel:
        raise invalid("An artifact needs a file name")
    target = root / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".upload-", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            left = length
            while left > 0:
                chunk = body.read(min(left, 1 << 20))
                if not chunk:
                    raise invalid(f"{location}: the upload ended early")
                out.write(chunk)
                left -= len(chunk)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return {}


def download(registry: Registry, location: str) -> Path:
    _, root, rel = locate(registry, location)
    path = root / rel if root is not None and rel else None
    if path is None or not path.is_file():
        raise NotHere(f"Artifact {location}")
    return path


def listing(registry: Registry, location: str) -> dict[str, Any]:
    """``{"files": [{path, is_dir, file_size}]}`` of one directory (names relative to it)."""
    _, root, rel = locate(registry, location)
    where = (root / rel) if root is not None and rel else root
    if where is None or not where.exists():
        return {"files": []}
    if where.is_file():
        return {"files": [{"path": where.name, "is_dir": False, "file_size": where.stat().st_size}]}
    files = []
    for entry in sorted(os.scandir(where), key=lambda e: e.name):
        if entry.name.startswith(".upload-"):
            continue
        if entry.is_dir():
            files.append({"path": entry.name, "is_dir": True})
        else:
            files.append({"path": entry.name, "is_dir": False, "file_size": entry.stat().st_size})
    return {"files": files}


def model_listing(registry: Registry, model_id: str, experiment_id: str, sub: str) -> dict[str, Any]:
    """``logged-models/<id>/artifacts/directories``: the model's files."""
    location = f"{experiment_id}/models/{model_id}/artifacts/{sub.strip('/')}"
    return listing(registry, location)
