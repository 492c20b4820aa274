"""RunRecorder: the event listener that writes one run to the run store.

It is the first essential listener on the run's bus, so a stage's row is written before any
other listener (webhooks, the MLflow mirror, which reads the row back) sees the event. LOADED
stages are written in batches: a warm run loads hundreds of stages in a row, one transaction
for all of them; the batch is written before anything else is (and at the end of the engine).
"""

from __future__ import annotations

from collections.abc import Sequence

from orchestra.app.identity import RunIdentity
from orchestra.core import events
from orchestra.core.records import StageUpdate
from orchestra.core.status import RunStatus, StageStatus
from orchestra.store import attempts
from orchestra.store import runs as runstore
from orchestra.store.objects_lock import Hold


class RunRecorder:
    """Writes the run's row at ``run_started``, each stage change, and the end at ``run_ended``.

    Args:
        identity: the run (its id, experiment, project, params and tags are stored).
        targets: the selected entry points.
        stages: every stage of the run, in order (stored PENDING).
        hold: the objects' shared lock the driver took for the loaded stages, released once they
            are written.
    """

    def __init__(self, identity: RunIdentity, *, targets: Sequence[str], stages: Sequence[str],
                 hold: Hold | None = None) -> None:
        self.identity = identity
        self.run_id = identity.run_id
        self.targets = tuple(targets)
        self.stages = tuple(stages)
        self._deferred: list[tuple[str, StageUpdate]] = []
        self._attempt_started: dict[str, float] = {}
        self._loaded_from: dict[str, None] = {}  # the runs stages were loaded from, in order
        self.hold = hold

    def handle(self, event: events.Event) -> None:
        if event.name == events.RUN_STARTED:
            self.flush()
            identity = self.identity
            runstore.create_run(self.run_id, experiment=identity.experiment, project_uri=identity.project["uri"],
                                targets=self.targets, params=identity.params, tags=identity.tags, stages=self.stages)
        elif event.name == events.STAGE_RETRYING and event.stage is not None and event.outcome is not None:
            attempts.record_failed(self.run_id, event.stage, event.attempt or 0,
                                   start_time=self._attempt_started.get(event.stage), end_time=event.timestamp,
                                   status=event.outcome.status, message=event.message)
        elif event.stage is not None and event.change is not None:
            self._stage(event.stage, event)
        elif event.name == events.RUN_ENDED:
            self.flush()
            self._tag_loaded_from()
            runstore.finish_run(self.run_id, event.run_status or RunStatus.FAILED)

    def _stage(self, name: str, event: events.Event) -> None:
        change = event.change
        assert change is not None
        if change.status == StageStatus.LOADED:
            if change.loaded_from is not None:
                self._loaded_from.setdefault(change.loaded_from.run_id)
            self._deferred.append((name, change))
            return
        self.flush()
        if event.name == events.STAGE_STARTED and change.start_time is not None:
            self._attempt_started[name] = change.start_time
        if event.name == events.STAGE_ENDED and event.outcome is not None:
            runstore.log_metrics(self.run_id, name, event.outcome.metrics)
        runstore.update_stage(self.run_id, name, change)

    def _tag_loaded_from(self) -> None:
        """With ``--load-from``, the tag names every run stages were loaded from (stages decided
        during the run may fall back to runs the plan did not name)."""
        planned = self.identity.tags.get("orchestra.loaded_from")
        if planned:
            actual = ",".join(dict.fromkeys((planned.split(",")[0], *self._loaded_from)))
            if actual != planned:
                runstore.merge_run_tags(self.run_id, {"orchestra.loaded_from": actual})

    def flush(self) -> None:
        """Write the deferred LOADED stages (one transaction)."""
        try:
            if self._deferred:
                runstore.update_stages(self.run_id, self._deferred)
                self._deferred = []
        finally:
            if self.hold is not None:
                self.hold.release()

    def close(self, drain_s: float) -> None:
        self.flush()
