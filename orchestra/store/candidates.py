"""An earlier stage whose outputs a run could load, as the planner's queries read it.

Its JSON columns are decoded into :class:`Stored` dicts that keep the stored text: a loaded
stage's record copies its source's manifest, components and metrics, and the run store writes
that text back as it was read instead of encoding it again (a warm run of a long chain copies
hundreds of them).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

CANDIDATE_COLUMNS = "run_id, name, cache_key, components, manifest, manifest_digest, outputs_dir, metrics, end_time"


class Stored(dict):  # type: ignore[type-arg]
    """A JSON object read from the store, with its text (never changed after it was read)."""

    __slots__ = ("text",)


def stored(text: str | None) -> Stored:
    text = text or "{}"
    value = Stored() if text == "{}" else Stored(json.loads(text))  # (most metrics: none)
    value.text = text
    return value


@dataclass(frozen=True, slots=True)
class Candidate:
    """An earlier stage whose outputs could be loaded."""

    run_id: str
    stage: str
    cache_key: str
    components: Mapping[str, Any]
    manifest: Mapping[str, Any]
    manifest_digest: str
    outputs_dir: str
    metrics: Mapping[str, Any]
    end_time: float


def candidate(row: sqlite3.Row) -> Candidate:
    """The candidate of a stages row (of at least ``CANDIDATE_COLUMNS``)."""
    return Candidate(
        run_id=row["run_id"], stage=row["name"], cache_key=row["cache_key"],
        components=stored(row["components"]), manifest=stored(row["manifest"]),
        manifest_digest=row["manifest_digest"], outputs_dir=row["outputs_dir"],
        metrics=stored(row["metrics"]), end_time=row["end_time"] or 0.0,
    )
