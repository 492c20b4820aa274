"""The object store: publish moves and links, load links (no copy), verify catches corruption."""

from __future__ import annotations

import os
import stat

import pytest

from orchestra.store import artifacts


def test_publish_dedupes_links_and_makes_objects_read_only(tmp_path):
    staging = tmp_path / "staging"
    (staging / "sub").mkdir(parents=True)
    (staging / "a.txt").write_text("same")
    (staging / "sub" / "b.txt").write_text("same")
    script = staging / "run.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    manifest = artifacts.publish(staging, tmp_path / "out")
    assert set(manifest) == {"a.txt", "sub/b.txt", "run.sh"}
    assert manifest["a.txt"]["sha256"] == manifest["sub/b.txt"]["sha256"]
    out = tmp_path / "out"
    assert (out / "a.txt").stat().st_ino == (out / "sub" / "b.txt").stat().st_ino
    assert not (out / "a.txt").stat().st_mode & stat.S_IWUSR
    assert os.access(out / "run.sh", os.X_OK) and manifest["run.sh"]["mode"] == 0o755
    assert not any(staging.rglob("*.txt"))  # moved, not copied


def test_load_links_and_verify_detects_tampering(tmp_path):
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / "blob").write_bytes(b"x" * 1000)
    manifest = artifacts.publish(staging, tmp_path / "first")
    assert artifacts.load(manifest, tmp_path / "second").ok
    assert (tmp_path / "second" / "blob").stat().st_ino == (tmp_path / "first" / "blob").stat().st_ino
    target = tmp_path / "first" / "blob"
    target.chmod(0o644)
    target.write_bytes(b"y" * 1000)  # same size, new bytes, through the hardlink
    result = artifacts.load(manifest, tmp_path / "third")
    assert not result.ok and "sha256" in result.problem
    assert not (tmp_path / "third").exists()
    assert not artifacts.load(manifest, tmp_path / "fourth").ok  # removed from the store


def test_escaping_symlink_is_refused_and_missing_declared_output(tmp_path):
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / "leak").symlink_to("/etc/hostname")
    with pytest.raises(artifacts.OutputError, match="outside the output directory"):
        artifacts.publish(staging, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    (staging / "leak").unlink()
    with pytest.raises(artifacts.OutputError, match="declared output 'model.pkl'"):
        artifacts.publish(staging, tmp_path / "out", ("model.pkl",))


def test_internal_symlink_is_published_as_its_target(tmp_path):
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / "real.txt").write_text("r")
    (staging / "alias.txt").symlink_to("real.txt")
    manifest = artifacts.publish(staging, tmp_path / "out")
    assert manifest["alias.txt"]["sha256"] == manifest["real.txt"]["sha256"]
    assert not (tmp_path / "out" / "alias.txt").is_symlink()


def test_collect_garbage_keeps_referenced_objects(tmp_path):
    staging = tmp_path / "s"
    staging.mkdir()
    (staging / "f").write_text("orphan")
    artifacts.publish(staging, tmp_path / "o")  # not recorded on any stage: unreferenced
    removed, freed = artifacts.collect_garbage(dry_run=True)
    assert removed == 1 and freed == len("orphan")
    assert artifacts.collect_garbage()[0] == 1
    assert artifacts.collect_garbage()[0] == 0


def test_link_sorting_after_its_target_still_publishes(tmp_path):
    staging = tmp_path / "staging"
    (staging / "d").mkdir(parents=True)
    (staging / "a.txt").write_text("a")
    (staging / "d" / "in.txt").write_text("i")
    (staging / "z_link").symlink_to("a.txt")
    (staging / "z_dirlink").symlink_to("d")
    manifest = artifacts.publish(staging, tmp_path / "out")
    assert manifest["z_link"] == manifest["a.txt"]
    assert set(manifest) == {"a.txt", "d/in.txt", "z_link"}
