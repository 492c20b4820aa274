"""A full disk (no inodes left, or no bytes left: then SQLite says "database or disk is full")
while a stage's outputs are published. ORCHESTRA_HOME is a real, small tmpfs (root only)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.faults.helpers import last_run, objects, stages, tmpfs

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")]

# The stage fills the filesystem (files until no inode is left, or one file until no byte is),
# then exits 0: publishing is what meets the full disk.
FILL = {
    "inodes": 'i=0; while echo "$i" > {outputs}/f$i 2>/dev/null; do i=$((i+1)); done; true',
    "bytes": "head -c 64M /dev/urandom > {outputs}/big 2>/dev/null; true",
}


@pytest.mark.parametrize("limit", sorted(FILL))
def test_a_full_disk_fails_the_stage_and_leaves_nothing_half_published(cli, make_project, tmp_path, limit):
    root = make_project(f"""
        entry_points:
          fill: {{command: '{FILL[limit]}'}}
    """, name="proj")
    with tmpfs(tmp_path / "home", size="6m", inodes=300) as home:
        env = {"ORCHESTRA_HOME": str(home)}
        assert cli("run", str(make_project("entry_points:\n  main: {command: 'true'}\n", name="warm")),
                   env=env).code == 0  # the stores exist before the disk fills
        result = cli("run", str(root), "-e", "fill", env=env)
        assert result.code == 1, result.err
        assert "Traceback" not in result.err, result.err
        assert "no space left on" in result.err
        assert "orchestra: to resume:" in result.err
        os.environ["ORCHESTRA_HOME"] = str(home)
        record = last_run()
        assert record.status == "FAILED"
        fill = stages(record)["fill"]
        assert fill.status == "FAILED" and "no space left on" in (fill.message or "") and fill.manifest is None
        assert not (Path(home) / "runs" / record.run_id / "fill" / "out").exists()
        assert not list((Path(home) / "runs" / record.run_id / "fill").glob(".staging-*"))
        gc = cli("gc", env=env)
        assert gc.code == 0, gc.err
        assert not objects(Path(home)) or all(p.stat().st_size < 100 for p in objects(Path(home)))
