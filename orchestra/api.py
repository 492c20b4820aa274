"""What the CLI and the scheduler call: run(), plan(), runs(), ...

Every function here takes plain values and returns plain values or frozen dataclasses; the CLI
only renders them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence


@dataclass(frozen=True, slots=True)
class RunOptions:
    """Everything ``orchestra run`` accepts besides the URI.

    Attributes:
        version: git branch/tag/commit.
        entry_points: target stages (``-e``); empty = default targets.
        params: raw ``-P`` strings (``k=v`` or ``stage.k=v``).
        jobs: parallel stages (None = number of CPUs).
        keep_going: after a failure, let independent branches finish.
        no_cache: run every stage.
        force: stages to rerun even if they could load.
        load_from: run id whose outputs are preferred.
        load_stages: stages loaded from ``load_from`` even when keys differ.
        dry_run: plan only.
        env_manager: ``local|uv|virtualenv|conda`` override.
        experiment: experiment name.
        hooks_uris: extra hook config sources (``--hooks``).
        trust_project_hooks: honour hooks inside remote projects.
        hooks_drain: seconds to wait for webhook deliveries at the end.
        tags: extra run tags (the scheduler adds its schedule name and slot).
        extra_env: extra variables for every stage (ORCHESTRA_SCHEDULE, ...).
        executor: ``local`` or ``dask://host:port``.
        tracking_uri: MLflow tracking server to mirror to (None: ``MLFLOW_TRACKING_URI`` if set).
        mlflow_artifacts: also upload stage outputs (and the manifest) to the MLflow runs.
        quiet: no live output on stderr.
    """

    version: str | None = None
    entry_points: Sequence[str] = ()
    params: Sequence[str] = ()
    jobs: int | None = None
    keep_going: bool = False
    no_cache: bool = False
    force: Sequence[str] = ()
    load_from: str | None = None
    load_stages: Sequence[str] = ()
    dry_run: bool = False
    env_manager: str | None = None
    experiment: str = "Default"
    hooks_uris: Sequence[str] = ()
    trust_project_hooks: bool = False
    hooks_drain: float = 10.0
    tags: Mapping[str, str] = field(default_factory=dict)
    extra_env: Mapping[str, str] = field(default_factory=dict)
    executor: str = "local"
    tracking_uri: str | None = None
    mlflow_artifacts: bool = False
    quiet: bool = False


@dataclass(frozen=True, slots=True)
class RunResult:
    """The outcome of ``run()``: the run's id, final status, exit code and stored record."""

    run_id: str | None
    status: str
    exit_code: int
    record: Mapping[str, Any] = field(default_factory=dict)


def run(uri: str, options: RunOptions = RunOptions()) -> RunResult:
    """Fetch the project, plan it, drive the plan, record everything; see DESIGN §1.

    Raises:
        BadInputError: bad URI, MLproject, params, hooks config (exit 2); nothing is stored.
    """
    from orchestra import runner

    return runner.run(uri, options)


def plan(uri: str, options: RunOptions = RunOptions()):  # -> orchestra.plan.Plan
    """The plan ``run`` would follow, without running, building or writing anything."""
    from orchestra import runner

    return runner.plan_only(uri, options).plan


def validate(uri: str, version: str | None = None):  # -> tuple[ProjectSpec, StageGraph]
    """Load and check a project; raises SpecError on the first problem."""
    from orchestra import graph, source
    from orchestra.spec import load

    project = source.fetch(uri, version)
    try:
        spec = load.load(project.path)
        built = graph.build(spec)
        if spec.schedules:  # cron and zones are checked where they are understood
            from orchestra.schedule import model

            for name, entry in spec.schedules.items():
                model.from_mlproject(str(name), entry, project.uri, where=spec.display_file)
        return spec, built
    finally:
        project.cleanup()


def get_run(run_id: str) -> dict[str, Any]:
    from orchestra.store import runs

    runs.reap_stale_runs()  # a run whose orchestra was SIGKILLed shows as KILLED, not RUNNING
    return runs.get_run(run_id)


def list_runs(experiment: str | None = None, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    from orchestra.store import runs

    runs.reap_stale_runs()
    return runs.list_runs(experiment, status, limit)
