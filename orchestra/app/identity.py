"""What every event and the run's record say about the run: its id, experiment, project, params, tags.

Computed once per run (:func:`identify`) and read everywhere else: the run store's row, every
lifecycle event (so webhooks and the MLflow mirror see the same params and tags).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from orchestra.core import events
from orchestra.core.options import RunOptions
from orchestra.planning.prepared import Prepared

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


@dataclass(frozen=True, slots=True)
class RunIdentity:
    """One run as its events and record name it.

    Attributes:
        run_id: the run.
        experiment: its experiment name.
        project: ``uri``, ``commit`` and ``entry_point`` (the targets, comma-separated).
        params: run-level params (see :func:`run_params`).
        tags: run-level tags (see :func:`run_tags`).
    """

    run_id: str
    experiment: str
    project: Mapping[str, Any] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)

    def event(self, name: str, **fields: Any) -> events.Event:
        """The lifecycle event ``name`` of this run, with the given fields."""
        return events.Event(name=name, run_id=self.run_id, experiment=self.experiment, project=self.project,
                            params=self.params, tags=self.tags, **fields)


def identify(run_id: str, prepared: Prepared, options: RunOptions) -> RunIdentity:
    project = prepared.project
    return RunIdentity(
        run_id=run_id, experiment=options.recording.experiment,
        project={"uri": project.uri, "commit": project.commit, "entry_point": ",".join(prepared.targets)},
        params=run_params(prepared), tags=run_tags(prepared, options))


def run_tags(prepared: Prepared, options: RunOptions) -> dict[str, str]:
    """MLflow's system tags of a project run (user, source, entry point, backend, env), git
    state, what was loaded or trusted, then the user's ``--run-name`` and schedule tags."""
    project = prepared.project
    executor = options.execution.executor
    tags = {
        "mlflow.user": _user(), "mlflow.source.name": project.uri, "mlflow.source.type": "PROJECT",
        "mlflow.project.entryPoint": ",".join(prepared.targets),
        "mlflow.project.backend": "local" if executor in ("", "local") else executor.split(":", 1)[0],
        "mlflow.project.env": ",".join(sorted({e.kind for e in prepared.environments.values() if e})) or "local",
    }
    if project.commit:
        tags["mlflow.source.git.commit"] = project.commit
    if project.repo_url:
        tags["mlflow.source.git.repoURL"] = project.repo_url
    if project.branch:
        tags["mlflow.source.git.branch"] = project.branch
    if project.dirty is not None:
        tags["orchestra.source.git.dirty"] = str(project.dirty).lower()
    if project.archive_sha256:
        tags["orchestra.source.archive.sha256"] = project.archive_sha256
    if prepared.options.load_from:
        # Every run the plan loads from: --load-from first, then the runs stages fell back to.
        planned = (decision.source.run_id for decision in prepared.plan.stages if decision.source is not None)
        tags["orchestra.loaded_from"] = ",".join(dict.fromkeys((prepared.options.load_from, *planned)))
    if prepared.options.load_stages:
        tags["orchestra.trusted_stages"] = ",".join(sorted(prepared.options.load_stages))
    tags.update(options.recording.tags)
    return tags


def _user() -> str:
    """``getpass.getuser()``, without importing ``getpass`` (and ``termios``) for it."""
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        if user := os.environ.get(name):
            return user
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError, OSError):
        return "unknown"


def run_params(prepared: Prepared) -> dict[str, str]:
    """Run-level params: ``name`` when every stage agrees on its value, else ``stage.name``."""
    seen: dict[str, set[str]] = {}
    for p in prepared.params.values():
        for key, value in p.text.items():
            seen.setdefault(key, set()).add(value)
    result: dict[str, str] = {}
    for stage, p in prepared.params.items():
        for key, value in p.text.items():
            result[key if len(seen[key]) == 1 else f"{stage}.{key}"] = value
        for key, value in p.extras:
            result[key] = value
    return result
