"""What the fault tests share: the last run's record, object paths, a tmpfs mount."""

from __future__ import annotations

import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from orchestra.core.records import RunRecord
from orchestra.store import db, runs as runstore


def last_run() -> RunRecord:
    db.reset_connections()
    return runstore.list_runs(limit=1)[0]


def stages(record: RunRecord) -> dict[str, object]:
    return {stage.name: stage for stage in record.stages}


def objects(home: Path) -> set[Path]:
    return {p for p in (home / "objects").rglob("*") if p.is_file()}


def wait_for(predicate, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@contextmanager
def tmpfs(where: Path, *, size: str, inodes: int) -> Iterator[Path]:
    """A real tmpfs with byte and inode limits (root only), unmounted afterwards."""
    import pytest

    where.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},nr_inodes={inodes}", "tmpfs", str(where)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN): {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        db.reset_connections()
        subprocess.run(["umount", "-l", str(where)], check=False)
