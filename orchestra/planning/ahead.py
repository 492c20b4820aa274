"""Whether a stage will run whatever its unfinished upstream stages produce.

An executor that can start a stage the moment its parent ends, without a round trip through
the driver, needs the driver to submit it before that end; that is right only when the stage
cannot load, whatever outputs the parent publishes. The store is asked: no reusable stage of
that name has the same key components apart from the upstream digests (the key hashes them
all, the entry point included, so no outputs could ever match), or caching is off for it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping

from orchestra.core.status import StageStatus
from orchestra.planning import fingerprint
from orchestra.planning.plan import RUN, PlanOptions, StageInputs, StagePlan
from orchestra.store import runs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# Past this many reusable records of a stage's name with the same code and command, the store is
# not read further: the stage is decided after its parent ends, as usual.
MAX_COMPARED = 64
_WITH_OUTPUTS = ", ".join(f"'{status}'" for status in StageStatus if status.has_outputs)


def sure_to_run(stage: StageInputs, upstream: Mapping[str, str | None], options: PlanOptions) -> StagePlan | None:
    """The RUN decision of ``stage`` whatever the upstream stages whose digest is None produce,
    or None when it might load. Its ``components`` carry those digests as None (the key is not
    known yet); the decision made once they are known replaces it."""
    name = stage.name
    if options.load_from or stage.env_key is None or fingerprint.NOT_DOWNLOADED in stage.path_inputs.values():
        return None
    parts: dict[str, Any] = fingerprint.components(
        entry_point=name, command=stage.command, params=stage.params.values, extras=dict(stage.params.extras),
        env_key=stage.env_key, code_digest=stage.code_digest, path_inputs=stage.path_inputs, upstream={})
    parts["upstream"] = dict(sorted(upstream.items()))
    if options.no_cache:
        why = "--no-cache"
    elif not stage.cache:
        why = "cache: false"
    elif name in options.force:
        why = "--force"
    elif not _could_load(name, parts):
        why = "no earlier run with this key"
    else:
        return None
    return StagePlan(name, RUN, None, parts, (why,))


def _could_load(name: str, parts: Mapping[str, Any]) -> bool:
    """Whether a reusable record of ``name`` has the components ``parts`` has, upstream aside."""
    mine = _canonical(parts)
    query = (f"SELECT components FROM stages WHERE name = ? AND status IN ({_WITH_OUTPUTS}) AND manifest IS NOT NULL"
             " AND json_extract(components, '$.code') = ? AND json_extract(components, '$.command') = ? LIMIT ?")
    try:
        rows = runs.db().execute(query, (name, parts["code"], parts["command"], MAX_COMPARED + 1)).fetchall()
    except sqlite3.OperationalError:  # an SQLite without JSON functions: every record of the name
        rows = runs.db().execute(query.split(" AND json_extract")[0] + " LIMIT ?", (name, MAX_COMPARED + 1)).fetchall()
    if len(rows) > MAX_COMPARED:
        return True
    for row in rows:
        try:
            if _canonical(json.loads(row[0] or "{}")) == mine:
                return True
        except (ValueError, TypeError, AttributeError):
            return True
    return False


def _canonical(parts: Mapping[str, Any]) -> str:
    return json.dumps({k: v for k, v in parts.items() if k != "upstream"}, sort_keys=True, separators=(",", ":"),
                      default=str)
