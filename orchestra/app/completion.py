"""What shell completion offers besides verbs and flags: run ids and entry point names.

Read-only and quiet: nothing is written, created or printed on stderr (a completion runs on
every TAB press, inside the user's shell line).
"""

from __future__ import annotations

import logging
from pathlib import Path

from orchestra.mlproject import load as specload

RUN_IDS_SHOWN = 200


def run_ids(limit: int = RUN_IDS_SHOWN) -> list[str]:
    """The newest runs' ids (full: any unique prefix of them is accepted on the command line)."""
    from orchestra.store import readonly

    try:
        rows = readonly.query("runs", "SELECT run_id FROM runs ORDER BY start_time DESC LIMIT ?", (limit,))
    except Exception:  # noqa: BLE001 - a store being migrated or locked completes nothing, never fails
        return []
    return [row["run_id"] for row in rows]


def entry_points(uri: str | None) -> list[str]:
    """The entry point names of the local project at ``uri`` (a directory, its MLproject file, or
    the current directory), in file order; nothing for remote URIs or an unreadable project."""
    root = Path(uri or ".").expanduser()
    if root.is_file() and root.name.lower() == "mlproject":
        root = root.parent
    if not root.is_dir():
        return []
    logger = logging.getLogger("orchestra")
    disabled, logger.disabled = logger.disabled, True  # its warnings belong to `orchestra validate`
    try:
        return list(specload.load(root).entry_points)
    except Exception:  # noqa: BLE001 - an invalid MLproject completes nothing; validate says why
        return []
    finally:
        logger.disabled = disabled
