"""Lifecycle webhooks: configuration, outbox, signed delivery.

The run code calls :func:`make_listener` before anything runs (bad hook config is exit 2 then,
not halfway through a pipeline) and adds the listener to its EventBus; the CLI's final
``bus.close(options.notification.hooks_drain)`` bounds the wait for receivers. Any later command may call
:func:`resume_pending` to finish deliveries an earlier process left behind. Importing this
package imports neither requests nor jsonschema.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from orchestra.core.layout import orchestra_home
from orchestra.core.report import STDERR

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from orchestra.core.events import Listener
    from orchestra.core.options import RunOptions
    from orchestra.core.report import Reporter
    from orchestra.integrations.hooks.deliver import Policy
    from orchestra.source.project import ProjectDir

__all__ = ["make_listener", "resume_pending"]


def make_listener(spec_hooks: Mapping[str, Any] | None, project: ProjectDir, options: RunOptions,
                  *, policy: Policy | None = None, reporter: Reporter = STDERR) -> Listener | None:
    """Build the webhook listener of one run, or None when no hook is configured.

    Sources (merged in this order): the MLproject's ``hooks`` (ignored with a notice for a remote
    project unless ``options.notification.trust_project_hooks``), ``options.notification.hooks_uris``, ``ORCHESTRA_HOOKS_URI``,
    ``MLFLOW_HOOKS_URI``. Hooks a receiver disabled with HTTP 410 are skipped with a notice.

    Args:
        spec_hooks: the MLproject's raw ``hooks`` mapping (ProjectSpec.hooks).
        project: the fetched project (``is_remote`` decides whether its hooks are trusted).
        options: the run's options (``hooks_uris``, ``trust_project_hooks``).
        policy: delivery timeouts and retry schedule (tests only).
        reporter: where notices go (the run's console, which respects ``-q``).

    Raises:
        HooksConfigError: a source is unreadable or invalid, or a ``secret_env`` is unset.
    """
    from orchestra.integrations.hooks import config as cfg
    from orchestra.integrations.hooks import outbox
    from orchestra.integrations.hooks.deliver import Policy
    from orchestra.integrations.hooks.listener import HookListener

    trusted = spec_hooks
    if spec_hooks and project.is_remote and not options.notification.trust_project_hooks:
        reporter.notice(f"ignoring hooks in the MLproject of remote project {project.uri} "
                        f"({_describe_raw(spec_hooks)}); pass --trust-project-hooks to use them")
        trusted = None
    config = cfg.load(trusted, options.notification.hooks_uris)
    if not config:
        return None
    cfg.check_secrets(config)
    home = orchestra_home()
    conn = outbox.open_db(home)
    disabled = outbox.disabled_hooks(conn)
    kept = []
    for hook in config.hooks:
        if hook.url in disabled:
            reporter.notice(f"hook '{hook.name}' ({hook.display_url}) is disabled since it answered HTTP 410; "
                            f"skipped (re-enable: orchestra hooks test {hook.name})")
            continue
        kept.append(hook)
    if not kept:
        return None
    outbox.prune(conn)
    return HookListener(cfg.HooksConfig(tuple(kept)), home=home, policy=policy or Policy(), reporter=reporter)


def resume_pending(drain_s: float, *, policy: Policy | None = None, home: Path | None = None) -> int:
    """Deliver what earlier processes left pending, waiting at most ``drain_s`` seconds.

    Cheap when there is nothing to do: without a ``hooks.sqlite`` or a pending delivery that is
    due within ``drain_s``, it returns at once and imports nothing heavy.

    Returns:
        The number of deliveries still pending afterwards.
    """
    import time

    if home is None:
        home = orchestra_home()
    if not (home / "hooks.sqlite").exists():  # the common case: checked before any import
        return 0
    from orchestra.integrations.outbox.peek import earliest_due

    earliest = earliest_due(home / "hooks.sqlite")
    if earliest is None:
        return 0
    from orchestra.integrations.hooks import outbox

    if earliest > time.time() + drain_s:
        return outbox.pending_count(outbox.open_db(home))
    from orchestra.integrations.hooks.deliver import Policy
    from orchestra.integrations.hooks.sender import Sender

    sender = Sender(home, policy or Policy())
    try:
        return sender.drain(drain_s)
    finally:
        sender.stop()


def _describe_raw(spec_hooks: Mapping[str, Any]) -> str:
    """``run_ended: ci`` style summary of unvalidated hooks (names only; URLs may hold tokens)."""
    parts = []
    for event, entries in spec_hooks.items():
        names = [str(e.get("name") or f"{event}-hook") for e in entries or () if isinstance(e, Mapping)]
        parts.append(f"{event}: {', '.join(names) or '?'}")
    return "; ".join(parts) or "none"
