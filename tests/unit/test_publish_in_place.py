"""A staging directory that publishing empties becomes the outputs tree itself (no second tmp
directory to make and remove); one that keeps something (a subdirectory, a symlink) does not,
so the outputs hold exactly the manifest's files either way."""

from __future__ import annotations

import os

from orchestra.store import artifacts


def _entries(root):
    return sorted(os.path.relpath(os.path.join(d, n), root) for d, dirs, files in os.walk(root) for n in dirs + files)


def test_a_flat_staging_directory_becomes_the_outputs(tmp_path):
    stage = tmp_path / "stage"
    staging = stage / ".staging-1"
    staging.mkdir(parents=True)
    (staging / "me.txt").write_text("hello\n")
    inode = staging.stat().st_ino
    manifest = artifacts.publish(staging, stage / "out")
    assert set(manifest) == {"me.txt"}
    assert not staging.exists() and (stage / "out").stat().st_ino == inode
    assert sorted(os.listdir(stage)) == ["out"]  # no tmp directory left beside it
    obj = artifacts.object_path(str(manifest["me.txt"]["sha256"]))
    assert (stage / "out" / "me.txt").stat().st_ino == obj.stat().st_ino
    assert artifacts.load(manifest, tmp_path / "again").ok


def test_an_empty_staging_directory_becomes_the_empty_outputs(tmp_path):
    staging = tmp_path / ".staging-1"
    staging.mkdir()
    assert artifacts.publish(staging, tmp_path / "out") == {}
    assert not staging.exists() and (tmp_path / "out").is_dir() and not any((tmp_path / "out").iterdir())


def test_leftovers_in_staging_never_reach_the_outputs(tmp_path):
    staging = tmp_path / ".staging-1"
    (staging / "empty_dir").mkdir(parents=True)
    (staging / "sub").mkdir()
    (staging / "sub" / "a.txt").write_text("a")
    os.symlink("sub/a.txt", staging / "link.txt")
    manifest = artifacts.publish(staging, tmp_path / "out")
    assert set(manifest) == {"sub/a.txt", "link.txt"}
    assert _entries(tmp_path / "out") == ["link.txt", "sub", "sub/a.txt"]
    assert not (tmp_path / "out" / "link.txt").is_symlink()
