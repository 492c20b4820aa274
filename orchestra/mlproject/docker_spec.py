"""``docker_env: {image, volumes, environment}`` → an EnvSpec (MLflow's keys; others are ignored,
as there). The schema has checked the shapes; this checks what it cannot say: each
``environment`` entry is ``NAME`` (copied from the caller) or ``[NAME, value]``."""

from __future__ import annotations

from typing import Any, Mapping

from orchestra.core.errors import SpecError
from orchestra.mlproject.model import EnvSpec


def env_spec(raw: Mapping[str, Any], at: str) -> EnvSpec:
    """The EnvSpec of a ``docker_env`` mapping found at ``at`` (``MLproject: docker_env``)."""
    environment: list[str | tuple[str, str]] = []
    for index, item in enumerate(raw.get("environment") or ()):
        if isinstance(item, list):
            if len(item) != 2 or not isinstance(item[0], str) or not item[0] or isinstance(item[1], (list, dict)):
                raise SpecError(f"environment entry {item!r} is not [NAME, value]", where=f"{at}.environment[{index}]",
                                hint="write [NAME, value] to set a variable, or NAME to copy the caller's")
            environment.append((item[0], "" if item[1] is None else str(item[1])))
        else:
            environment.append(item)
    return EnvSpec(kind="docker", declared_at=at, image=raw["image"], volumes=tuple(raw.get("volumes") or ()),
                   environment=tuple(environment))
