"""``sweep_started`` / ``sweep_ended`` webhooks, through the run hooks' outbox and sender.

The hooks are those a member run would use (the project's, trusted as ``orchestra run`` trusts
them, ``--hooks`` URIs, ``ORCHESTRA_HOOKS_URI`` / ``MLFLOW_HOOKS_URI``). An event is one outbox
transaction; ``sweep_ended`` is then drained for up to ``--hooks-drain`` seconds. A hook problem
is reported once, never fatal to the sweep.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Mapping

from orchestra.core import events
from orchestra.core.layout import orchestra_home
from orchestra.core.options import RunOptions
from orchestra.integrations.hooks import resume_pending
from orchestra.planning.prepared import Prepared

if TYPE_CHECKING:
    from orchestra.core.report import Reporter


def emit(name: str, status: str, prepared: Prepared, options: RunOptions, sweep: Mapping[str, Any],
         reporter: Reporter) -> None:
    """Queue one sweep event for every matching hook (nothing when no hook is configured)."""
    try:
        _emit(name, status, prepared, options, sweep)
        if name == events.SWEEP_ENDED:
            resume_pending(options.notification.hooks_drain)
    except Exception as exc:  # noqa: BLE001 - a webhook never changes a sweep's outcome
        reporter.line(f"orchestra: warning: {name} webhook not sent: {exc}")


def _emit(name: str, status: str, prepared: Prepared, options: RunOptions, sweep: Mapping[str, Any]) -> None:
    from orchestra.integrations.hooks import config as cfg
    from orchestra.integrations.hooks import outbox
    from orchestra.integrations.hooks.deliver import Target
    from orchestra.integrations.hooks.payload import SWEEP_TAG, build_body, encode, new_event_id

    spec_hooks = prepared.spec.hooks
    if spec_hooks and prepared.project.is_remote and not options.notification.trust_project_hooks:
        spec_hooks = None  # the member runs say so once each
    config = cfg.load(spec_hooks, options.notification.hooks_uris)
    hooks = config.matching(name, status) if config else []
    if not hooks:
        return
    event = events.Event(name=name, run_id="", experiment=options.recording.experiment, status=status,
                         project={"uri": prepared.project.uri, "commit": prepared.project.commit,
                                  "entry_point": ",".join(prepared.targets)},
                         tags={SWEEP_TAG: json.dumps(dict(sweep))})
    event_id = new_event_id()
    body = encode(build_body(event, event_id, 1))
    deliveries = [outbox.NewDelivery(Target(h.url, h.name, h.secret_envs, h.allow_http), body) for h in hooks]
    outbox.record_event(outbox.open_db(orchestra_home()), event_id=event_id, run_id=None, name=name, status=status,
                        stage=None, sequence=1, occurred_at=event.timestamp, deliveries=deliveries)
