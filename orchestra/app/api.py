"""What the CLI and the scheduler call: run(), plan(), runs(), ...

Every function here takes plain values and returns plain values or frozen dataclasses; the CLI
only renders them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from orchestra import source
from orchestra.app import reaper, session
from orchestra.app.prepare import plan_only
from orchestra.core import extras
from orchestra.core.options import RunOptions
from orchestra.core.records import RunRecord, RunResult
from orchestra.mlproject import graph, load
from orchestra.planning.fingerprint import step_base
from orchestra.planning.plan import RUN
from orchestra.store import loaded, runs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from orchestra.integrations.tracking import TrackingURI
    from orchestra.integrations.tracking.sync import SyncReport

__all__ = ["RunOptions", "RunRecord", "RunResult", "get_run", "list_runs", "plan", "run", "runs_frame", "sync_run",
           "validate"]


def run(uri: str, options: RunOptions = RunOptions(), *, record: bool = True) -> RunResult:
    """Fetch the project, plan it, drive the plan, record everything; see docs/ARCHITECTURE.md.

    Args:
        record: return the stored run, with the output trees of the loaded stages no stage of the
            run read made, so every ``outputs_dir`` in it exists (False: ``record`` is None, and
            those trees are made when first read, ``get_run``; the CLI, unless ``--json``).

    Raises:
        BadInputError: bad URI, MLproject, params, hooks config (exit 2); nothing is stored.
    """
    result = session.run(uri, options, record=record)
    if result.record is not None:
        loaded.ensure_stages(result.record.stages)
    return result


def plan(uri: str, options: RunOptions = RunOptions()):  # -> orchestra.planning.plan.Plan
    """The plan ``run`` would follow, without running, building or writing anything."""
    return plan_only(uri, options).plan


def published_steps(the_plan, load_steps: Sequence[str] = ()) -> dict[str, list]:  # stage -> [PublishedStep]
    """For each stage that will run and may load steps: the steps ``--load-steps`` takes from the
    ``--load-from`` run, then those earlier runs published under its step base (they load if the
    stage code's ``key=`` matches too). Stages whose upstream has to run first have no step base
    yet; only their ``--load-steps`` are listed."""
    from orchestra.store import steps  # read only by plan

    found: dict[str, list] = {}
    options = the_plan.options
    for decision in the_plan.stages:
        if decision.action != RUN or options.no_cache or decision.name in options.force:
            continue
        listed = [replace(step, trusted=True) for name in load_steps if options.load_from
                  and (step := steps.in_run(options.load_from, decision.name, name)) is not None]
        base = step_base(decision.components)
        listed += steps.published(base) if base else []
        if listed:
            found[decision.name] = listed
    return found


def validate(uri: str, version: str | None = None):  # -> tuple[ProjectSpec, StageGraph]
    """Load and check a project; raises SpecError on the first problem."""
    project = source.fetch(uri, version)
    try:
        spec = load.load(project.path)
        built = graph.build(spec)
        if spec.schedules:  # cron and zones are checked where they are understood
            from orchestra.app.schedule import model

            for name, entry in spec.schedules.items():
                model.from_mlproject(str(name), entry, project.uri, where=spec.display_file)
        return spec, built
    finally:
        project.cleanup()


def get_run(run_id: str) -> RunRecord:
    """One stored run (a unique prefix of 6+ characters is accepted). Raises RunNotFoundError."""
    reaper.reap_stale_runs()  # a run whose orchestra was SIGKILLed shows as KILLED, not RUNNING
    record = runs.get_run(run_id)
    loaded.ensure_stages(record.stages)  # the trees of loaded stages no stage read yet: linked now
    return record


def list_runs(experiment: str | None = None, status: str | None = None, limit: int = 100) -> list[RunRecord]:
    """Stored runs, newest first."""
    reaper.reap_stale_runs()
    return runs.list_runs(experiment, status, limit)


def runs_frame(filter: str = "",  # noqa: A002 - the name mlflow.search_runs users know
               columns: Sequence[str] | None = None, *, sort: str = "-start_time",
               limit: int = 1000, sweep: str | None = None):  # -> pandas.DataFrame
    """Stored runs as a pandas DataFrame, one row per run, like ``mlflow.search_runs``: the
    attributes (``run_id``, ``run_name``, ``status``, ``start_time``, ``duration_s``…) then
    ``params.*``, ``metrics.<stage>.<metric>`` and ``tags.*`` columns.

    Args:
        filter: the runs filter grammar (``"metrics.evaluate.rmse < 0.3 and params.alpha = '0.5'"``).
        columns: keep only the attributes and these ``params.``/``metrics.``/``tags.`` columns.
        sort: ``[-]COLUMN`` as ``orchestra runs list --sort``.
        sweep: only the members of this sweep.

    Raises:
        BadInputError: a bad filter, column or sort key.
        MissingExtraError: pandas is not installed (``pip install 'orchestra[pandas]'``).
    """
    from orchestra.app import compare

    pd = extras.load("pandas", "runs_frame()")

    wanted = compare.parse_columns(",".join(columns)) if columns else None
    records = compare.select(filter, sort, limit, sweep=sweep)
    rows = [compare.flat(record) for record in records]
    frame = pd.DataFrame(rows, columns=list(compare.ATTRIBUTES) + sorted({k for r in rows for k in r if "." in k and k.split(".")[0] in compare.PREFIXES},
                                                                         key=_column_order))
    if wanted is not None:
        frame = frame.reindex(columns=[c for c in frame.columns if "." not in c or c in wanted] +
                              [c for c in wanted if c not in frame.columns])
    return frame


def _column_order(column: str) -> tuple[int, str]:
    return ({"params": 0, "metrics": 1, "tags": 2}[column.split(".")[0]], column)


def sync_run(run_id: str, uri: TrackingURI, *, upload_outputs: bool = False, timeout_s: float = 300.0,
             experiment: str | None = None) -> SyncReport:
    """``orchestra runs sync``: finish (or replay) the MLflow mirror of a run that has ended."""
    from orchestra.integrations import tracking

    reaper.reap_stale_runs()  # a run whose orchestra died is KILLED, and can be synced
    return tracking.sync_run(run_id, uri, upload_outputs=upload_outputs, timeout_s=timeout_s, experiment=experiment)
