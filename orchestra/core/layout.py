"""Where orchestra keeps its state: ``ORCHESTRA_HOME`` (default ``~/.orchestra``), and the paths
inside a run directory (``runs/RUN/STAGE/{out,logs,.staging-N,tracking.jsonl}``)."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

from orchestra.core import settings
from orchestra.core.digest import sha256


# The JSON Schemas shipped with the package (orchestra/schemas → the repository's schemas/).
SCHEMAS_DIR = Path(__file__).resolve().parents[1] / "schemas"

_made: dict[tuple[str, ...], Path] = {}


def orchestra_home() -> Path:
    """Return the home directory, created on first use."""
    return home_path()


def home_path(*parts: str) -> Path:
    """A directory under the home, created on first use (remembered: no syscall when warm)."""
    configured = settings.home()
    key = (configured, *parts)
    path = _made.get(key)
    if path is None or not path.is_dir():
        path = configured.resolve().joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        _made[key] = path
    return path


def safe_name(name: str) -> str:
    """A stage name as one path component: ``[A-Za-z0-9._-]`` kept, anything else ``_`` plus a
    short digest of the original, so two names never share a directory."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    if safe != name:
        safe += "-" + sha256(name.encode()).hexdigest()[:6]
    return safe


@functools.lru_cache(maxsize=65536)  # a chain's stage i names all i ancestors
def input_variable(stage: str) -> str:
    """The variable naming an upstream stage's outputs: ``ORCHESTRA_INPUT_<STAGE>``."""
    return "ORCHESTRA_INPUT_" + re.sub(r"[^A-Za-z0-9]", "_", stage).upper()


@dataclass(frozen=True, slots=True)
class RunLayout:
    """The paths of one run's stages under ``run_dir`` (computed once per stage: a long chain asks
    for every ancestor's paths at every stage)."""

    run_dir: Path
    _stages: dict[str, Path] = field(default_factory=dict, compare=False, repr=False)

    def stage_dir(self, stage: str) -> Path:
        path = self._stages.get(stage)
        if path is None:
            path = self._stages[stage] = self.run_dir / safe_name(stage)
        return path

    def outputs_dir(self, stage: str) -> Path:
        return self.stage_dir(stage) / "out"

    def outputs_text(self, stage: str) -> str:
        """``outputs_dir`` as text, without Path objects (a run names every stage's once)."""
        return f"{self.run_dir}/{safe_name(stage)}/out"

    def staging_dir(self, stage: str, attempt: int) -> Path:
        return self.stage_dir(stage) / f".staging-{attempt}"

    def log_dir(self, stage: str) -> Path:
        return self.stage_dir(stage) / "logs"

    def metrics_file(self, stage: str) -> Path:
        return self.stage_dir(stage) / "tracking.jsonl"
