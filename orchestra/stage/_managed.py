"""``managed_artifact`` / ``managed_artifact_dir``: write in a private place, publish on a clean
exit, and load a step an earlier run already computed.

What the orchestrator tells the stage (set for every stage process):

- ``ORCHESTRA_STEP_BASE``: the stage's step base, ``sha256`` over its entry point, the project's
  code digest, its environment key and its upstream outputs (not its params);
- ``ORCHESTRA_STEP_LOADING=off``: ``--no-cache`` or ``--force STAGE`` (steps are computed, and
  still published);
- ``ORCHESTRA_LOAD_FROM`` + ``ORCHESTRA_LOAD_STEPS``: ``--load-from RUN --load-steps a,b``.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any, Mapping

from orchestra.stage import _steps
from orchestra.stage._tracking import append, inside, output_dir

_TMP = ".orchestra-tmp"
_loaded: list[str] = []  # this process's loaded steps, in order (the orchestra.loaded_steps tag)
_computed: list[str] = []


class ManagedArtifact:
    """What ``managed_artifact(_dir)`` yields.

    Attributes:
        path: where to write the artifact (or, when ``loaded``, where the loaded copy is).
        loaded: True when ``path`` is a verified, read-only copy of an earlier run's step.
        loaded_from: ``RUN/STAGE`` the step was loaded from (None when computed here).
    """

    def __init__(self, name: str, step: str | None, key: Mapping[str, Any] | None, kind: str) -> None:
        if not name or not isinstance(name, str):
            raise ValueError("managed_artifact: name must be a non-empty relative path")
        if step is not None and (not isinstance(step, str) or not step):
            raise ValueError("managed_artifact: step must be a non-empty string")
        if key is not None and step is None:
            raise ValueError("managed_artifact: key= only means something with step=")
        self.name = name
        self.step = step
        self.key = dict(key or {})
        self.kind = kind
        self.target = inside(output_dir(), name)  # checked now: a bad name fails before any work
        self.loaded = False
        self.loaded_from: str | None = None
        self._root: Path | None = None
        self._record: dict[str, Any] = {}
        self.path = Path()

    def get_path(self, sub: str = "") -> Path:
        """``path``, or the path of ``sub`` inside a directory artifact (parents created unless loaded)."""
        if not sub:
            return self.path
        target = inside(self.path, sub)
        if not self.loaded:
            target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def __fspath__(self) -> str:
        return str(self.path)

    def __enter__(self) -> ManagedArtifact:
        scratch = output_dir() / _TMP
        scratch.mkdir(parents=True, exist_ok=True)
        self._root = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=scratch))
        self.path = self._root / self.target.name
        if self.step is not None:
            self._try_load()
        if not self.loaded and self.kind == "dir":
            self.path.mkdir()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        root = self._root
        assert root is not None
        try:
            if exc_type is None:
                self._finish(root)
        finally:
            _steps.make_writable(root)
            shutil.rmtree(root, ignore_errors=True)
            try:
                root.parent.rmdir()  # the scratch directory, once no artifact is open
            except OSError:
                pass

    def _finish(self, root: Path) -> None:
        if not self.path.exists():
            raise FileNotFoundError(f"managed artifact {self.name!r} was not written at {self.path}")
        if self.step is not None and not self.loaded:
            self._publish(root)
        elif self.step is not None:
            record = self._record
            _steps.register(record, os.environ.get("ORCHESTRA_RUN_ID", ""), os.environ.get("ORCHESTRA_STAGE", ""))
        _steps.make_writable(root)
        self.target.parent.mkdir(parents=True, exist_ok=True)
        if self.target.is_dir() and not self.target.is_symlink():
            shutil.rmtree(self.target)
        elif self.target.exists() or self.target.is_symlink():
            self.target.unlink()
        os.rename(self.path, self.target)
        self.path = self.target

    def _publish(self, root: Path) -> None:
        run_id, stage = os.environ.get("ORCHESTRA_RUN_ID"), os.environ.get("ORCHESTRA_STAGE")
        if not run_id or not stage:
            return  # not under orchestra: an artifact, not a reusable step
        base = os.environ.get("ORCHESTRA_STEP_BASE")
        key = _steps.step_key(base, self.step, self.name, self.kind, self.key) if base else None
        _steps.publish(root, base=base, key=key, step=self.step, name=self.name, kind=self.kind,
                       run_id=run_id, stage=stage)
        _computed.append(self.step)
        append({"type": "tag", "key": "orchestra.steps", "value": ",".join(dict.fromkeys(_computed))})

    def _try_load(self) -> None:
        if os.environ.get("ORCHESTRA_STEP_LOADING") == "off":
            return
        assert self.step is not None and self._root is not None
        for record in self._candidates():
            if record.get("name") != self.name or record.get("kind") != self.kind:
                continue
            problem = _steps.materialize(record, self._root)
            if problem is None:
                self._record = record
                self.loaded = True
                self.loaded_from = f"{record['run_id']}/{record['stage']}"
                _loaded.append(self.step)
                append({"type": "tag", "key": "orchestra.loaded_steps", "value": ",".join(dict.fromkeys(_loaded))})
                append({"type": "tag", "key": f"orchestra.step.{self.step}.loaded_from", "value": self.loaded_from})
                return
            print(f"orchestra: step {self.step}: cannot load from run {str(record['run_id'])[:8]}: {problem}; "
                  "computing it", file=sys.stderr)
            _steps.make_writable(self._root)
            for child in list(self._root.iterdir()):
                shutil.rmtree(child) if child.is_dir() else child.unlink()

    def _candidates(self) -> list[dict[str, Any]]:
        """Records to try, in order: ``--load-steps`` (trusted, whatever its key), then by key."""
        step = self.step
        assert step is not None
        found: list[dict[str, Any]] = []
        wanted = [s for s in os.environ.get("ORCHESTRA_LOAD_STEPS", "").split(",") if s]
        load_from = os.environ.get("ORCHESTRA_LOAD_FROM")
        if step in wanted and load_from:
            record = _steps.read(_steps.by_run_path(load_from, os.environ.get("ORCHESTRA_STAGE", ""), step))
            if record is None:
                print(f"orchestra: step {step}: run {load_from[:8]} published no step {step!r} in this stage",
                      file=sys.stderr)
            else:
                found.append(record)
        base = os.environ.get("ORCHESTRA_STEP_BASE")
        if base:
            record = _steps.read(_steps.by_key_path(base, _steps.step_key(base, step, self.name, self.kind, self.key)))
            if record is not None:
                found.append(record)
        return found

