"""The table printed at the end of every run: stage, status, time and headline metrics."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

_WORDS = {"FINISHED": "ran", "LOADED": "loaded", "FAILED": "failed", "SKIPPED": "skipped", "KILLED": "killed",
          "PENDING": "pending", "RUNNING": "running"}
MAX_ROWS = 60
MAX_METRICS = 3


@dataclass(frozen=True, slots=True)
class StageSummary:
    """One stage's row: its final status, how long it ran (None when it did not), its metrics."""

    name: str
    status: str
    duration_s: float | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)


def _metrics(metrics: Mapping[str, float]) -> str:
    shown = [f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}"
             for key, value in list(metrics.items())[:MAX_METRICS]]
    more = len(metrics) - MAX_METRICS
    return " ".join(shown) + (f" (+{more})" if more > 0 else "")


def table(rows: Sequence[StageSummary], color: Callable[[str, str], str], run_id: str) -> list[str]:
    """The lines of the table (at most :data:`MAX_ROWS` stages; the rest are counted)."""
    if not rows:
        return []
    shown = rows[:MAX_ROWS]
    name_w = max(5, *(len(r.name) for r in shown))
    lines = [f"  {'stage':<{name_w}}  {'status':<8}  {'time':>8}  metrics"]
    for row in shown:
        word = _WORDS.get(row.status, row.status.lower())
        took = f"{row.duration_s:.2f}s" if row.duration_s is not None else "—"
        lines.append(f"  {row.name:<{name_w}}  {color(f'{word:<8}', row.status)}  {took:>8}  "
                     f"{_metrics(row.metrics)}".rstrip())
    if len(rows) > MAX_ROWS:
        lines.append(f"  … {len(rows) - MAX_ROWS} more stage(s): orchestra runs show {run_id[:8]}")
    return lines
