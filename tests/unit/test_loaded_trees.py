"""Loaded stages' trees made when first read (``store/loaded.py``): verified objects, linked
atomically, a tree another reader made first kept, a damaged object never linked."""

from __future__ import annotations

import os

from orchestra.store import artifacts, loaded


def _published(tmp_path, files: dict[str, bytes]):
    staging = tmp_path / "staging"
    staging.mkdir()
    for name, data in files.items():
        (staging / name).parent.mkdir(parents=True, exist_ok=True)
        (staging / name).write_bytes(data)
    return artifacts.publish(staging, tmp_path / "first")


def test_link_makes_the_trees_of_many_stages_from_the_objects(tmp_path):
    manifest = _published(tmp_path, {"a.txt": b"a", "sub/b.bin": b"b" * 100})
    dests = [tmp_path / "run" / f"s{i}" / "out" for i in range(3)]
    assert loaded.link([(manifest, dest) for dest in dests]) == {}
    for dest in dests:
        assert (dest / "sub" / "b.bin").read_bytes() == b"b" * 100
        assert (dest / "a.txt").stat().st_ino == (tmp_path / "first" / "a.txt").stat().st_ino
    assert sorted(os.listdir(tmp_path / "run" / "s0")) == ["out"]  # no tmp directory left
    # the objects' tokens after linking are recorded: the next check hashes nothing
    assert artifacts.verify(manifest).ok


def test_a_tree_another_reader_made_first_is_kept(tmp_path):
    manifest = _published(tmp_path, {"a.txt": b"a"})
    dest = tmp_path / "run" / "s0" / "out"
    dest.mkdir(parents=True)
    (dest / "a.txt").write_bytes(b"a")
    assert loaded.ensure(manifest, str(dest)) is None  # there: nothing to do
    assert sorted(os.listdir(dest.parent)) == ["out"] and (dest / "a.txt").stat().st_nlink == 1
    # and a rename that loses the race leaves the winner's tree, and no tmp directory
    assert artifacts.link_tree(manifest, dest, record=False, replace=False) is False
    assert sorted(os.listdir(dest.parent)) == ["out"] and (dest / "a.txt").stat().st_nlink == 1


def test_a_damaged_object_is_never_linked(tmp_path):
    manifest = _published(tmp_path, {"a.txt": b"aaaa"})
    obj = artifacts.object_path(str(manifest["a.txt"]["sha256"]))
    obj.chmod(0o644)
    obj.write_bytes(b"bbbb")  # same size, other bytes
    dest = tmp_path / "run" / "s0" / "out"
    problems = loaded.link([(manifest, dest)], known={})
    assert "sha256" in problems[dest] and not dest.exists()
    assert not obj.exists()  # quarantined: no later run links it
