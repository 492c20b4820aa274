"""Loaded stages without link trees: their objects verified when a run loads them, their tree of
links made only when something reads it.

A LOADED stage is its record: the manifest of the earlier outputs it reuses (content-addressed,
read-only objects that ``gc`` keeps while any stage's manifest names them) and the outputs
directory it would have. Most loaded stages are never read in the run that loads them (a warm
run of a long chain loads every stage and runs none), so linking each one's tree — a directory,
a link per file, a rename, and the objects' new stat tokens — is deferred to the first reader:
a running stage given it as input (the run's driver), ``runs show``/``api.get_run``, a ``runs:/``
parameter, the UI (which serves the object itself). The tree is made as before, atomically
(tmp dir + rename), from objects verified again first.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from orchestra.store import artifacts
from orchestra.store import runs as runstore
from orchestra.store.objects_lock import shared_lock

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    Manifest = Mapping[str, Mapping[str, Any]]


def object_keys(manifests: Iterable[Manifest]) -> list[str]:
    """Every object key (``sha`` or ``sha.x``) of ``manifests``, once each."""
    keys: dict[str, None] = {}
    for manifest in manifests:
        for entry in manifest.values():
            keys[str(entry["sha256"]) + (".x" if int(entry["mode"]) & 0o100 else "")] = None
    return list(keys)


def link(items: Sequence[tuple[Manifest, Path]], known: dict[str, str] | None = None) -> dict[Path, str]:
    """Make the trees of loaded stages not linked yet (``(manifest, outputs_dir)`` pairs) under
    the objects' shared lock: each verified first (with ``known`` tokens, read once), then linked;
    the objects' new stat tokens are recorded in one transaction for all of them. A tree already
    there (made by another reader) is kept.

    Returns:
        the problem of each tree that could not be made (an object missing or damaged: it is
        quarantined, so nothing links it again), by outputs directory.
    """
    problems: dict[Path, str] = {}
    todo = [(manifest, Path(dest)) for manifest, dest in items if not os.path.isdir(dest)]
    if not todo:
        return problems
    if known is None:
        known = runstore.object_stats(object_keys(manifest for manifest, _ in todo))
    with shared_lock():
        linked: list[Manifest] = []
        try:
            for manifest, dest in todo:
                result = artifacts.verify(manifest, known)
                if not result.ok:
                    problems[dest] = result.problem or "cannot be verified"
                    continue
                artifacts.link_tree(manifest, dest, record=False, replace=False)
                linked.append(manifest)
        finally:
            rows = {row[0]: row for manifest in linked for row in artifacts.tokens(manifest)}
            runstore.record_objects(list(rows.values()))
            known.update((key, token) for key, _size, token in rows.values())
    return problems


def ensure(manifest: Manifest | None, outputs_dir: str | None) -> str | None:
    """The tree of one stage's outputs at ``outputs_dir``, linked now if it is not there yet (a
    loaded stage read for the first time). Returns None, or why it cannot be made."""
    if manifest is None or not outputs_dir or os.path.isdir(outputs_dir):
        return None
    return link([(manifest, Path(outputs_dir))]).get(Path(outputs_dir))


def ensure_stages(stages: Iterable[Any]) -> dict[str, str]:
    """:func:`ensure` for every stage record with outputs (``StageRecord``s of one run): the
    problem of each that could not be linked, by stage name."""
    todo = {Path(s.outputs_dir): (s.name, s.manifest) for s in stages
            if s.status.has_outputs and s.manifest is not None and s.outputs_dir and not os.path.isdir(s.outputs_dir)}
    problems = link([(manifest, dest) for dest, (_name, manifest) in todo.items()]) if todo else {}
    return {todo[dest][0]: problem for dest, problem in problems.items()}
