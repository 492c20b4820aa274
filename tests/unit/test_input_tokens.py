"""The input check remembers the stat tokens it read or recorded (a long chain would otherwise ask
the store about every ancestor's objects at every attempt); it never lets a remembered token
hide a damaged input, and a token another process recorded since is taken from the store."""

from __future__ import annotations

import os

from orchestra.store import artifacts, inputs, runs as runstore


def _published(tmp_path, text="payload\n"):
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / "data.txt").write_text(text)
    out = tmp_path / "up" / "out"
    manifest = artifacts.publish(staging, out)
    return {"up": str(out)}, {"up": manifest}, out / "data.txt"


def test_a_remembered_token_does_not_hide_a_same_size_edit(tmp_path):
    dirs, manifests, path = _published(tmp_path)
    guard, problem = inputs.watch(dirs, manifests)
    assert problem is None and guard is not None and guard.check() is None
    st = path.stat()
    path.chmod(0o644)
    path.write_text("PAYLOAD\n")  # same size, mtime set back: only ctime tells
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    guard, problem = inputs.watch(dirs, manifests)
    assert guard is None and problem is not None and "does not match its manifest" in problem
    assert "quarantined" in problem


def test_a_token_recorded_elsewhere_since_is_read_from_the_store(tmp_path, monkeypatch):
    dirs, manifests, path = _published(tmp_path)
    assert inputs.watch(dirs, manifests)[1] is None  # remembered now
    # Another process links the object (its ctime changes) and records the new token.
    artifacts.link_tree(manifests["up"], tmp_path / "other" / "out")
    hashed = []
    real = inputs.sha256_file
    monkeypatch.setattr(inputs, "sha256_file", lambda p: hashed.append(p) or real(p))
    guard, problem = inputs.watch(dirs, manifests)
    assert problem is None and guard is not None
    assert hashed == []  # the store's newer token matched: nothing to hash again
    key = str(manifests["up"]["data.txt"]["sha256"])
    assert runstore.object_stats([key])[key] == inputs._TOKENS[str(inputs.orchestra_home())][key]
