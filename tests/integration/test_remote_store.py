"""The shared artifact store on file:// and on s3:// (a moto server on 127.0.0.1)."""

from __future__ import annotations

import os
import stat
import uuid
from pathlib import Path

import pytest

from orchestra.core.errors import BadInputError, StoreError
from orchestra.store.artifacts import OutputError, manifest_digest

pytestmark = pytest.mark.integration


@pytest.fixture(params=["file", "s3"])
def store(request, tmp_path, monkeypatch):
    pytest.importorskip("fsspec")
    from orchestra.store.remote import RemoteStore

    if request.param == "file":
        return RemoteStore(f"file://{tmp_path / 'shared'}")
    from tests.integration.daskcluster import s3_env

    for key, value in s3_env(f"store-{uuid.uuid4().hex}").items():
        monkeypatch.setenv(key, value)
    return RemoteStore(os.environ["ORCHESTRA_ARTIFACTS"])


def tree(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("alpha")
    (root / "sub" / "b.bin").write_bytes(bytes(range(256)) * 64)
    (root / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "run.sh").chmod(0o755)
    (root / "link").symlink_to("a.txt")
    return root


def keys(store) -> list[str]:
    return sorted(p for p in store.fs.find(store.root))


def test_round_trip_keeps_bytes_paths_and_modes(store, tmp_path):
    manifest = store.push_tree(tree(tmp_path / "src"))
    assert set(manifest) == {"a.txt", "sub/b.bin", "run.sh", "link"}
    assert manifest["link"]["sha256"] == manifest["a.txt"]["sha256"]  # a link is published as a copy
    assert manifest["run.sh"]["mode"] == 0o755 and manifest["a.txt"]["mode"] == 0o644
    dest = tmp_path / "dest"
    store.fetch_tree(manifest, dest)
    assert (dest / "sub" / "b.bin").read_bytes() == bytes(range(256)) * 64
    assert (dest / "link").read_text() == "alpha" and not (dest / "link").is_symlink()
    assert os.stat(dest / "run.sh").st_mode & stat.S_IXUSR
    assert not [p for p in dest.parent.iterdir() if p.name.startswith(".")]  # no temporary left


def test_reupload_into_an_existing_prefix_writes_the_same_keys(store, tmp_path):
    # fsspec's recursive put nests the second copy (bucket/a/src/...) once the target exists;
    # explicit per-file keys cannot.
    first = store.push_tree(tree(tmp_path / "src"))
    before = keys(store)
    from orchestra.store.remote import RemoteStore

    again = RemoteStore(store.url).push_tree(tmp_path / "src")  # a fresh client: no memory of uploads
    assert again == first and keys(store) == before
    assert all(k.split("/")[-3] == "objects" for k in before)
    assert len(before) == 3  # three distinct contents: a.txt (= link), b.bin, run.sh


def test_corrupt_or_missing_objects_are_refused_on_download(store, tmp_path):
    manifest = store.push_tree(tree(tmp_path / "src"))
    sha = manifest["a.txt"]["sha256"]
    with store.fs.open(store.object_key(sha), "wb") as handle:
        handle.write(b"ALPHA")  # same size, other bytes
    with pytest.raises(StoreError, match="does not match its sha256"):
        store.fetch_tree(manifest, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()
    store.fs.rm(store.object_key(sha))
    with pytest.raises(StoreError, match="missing"):
        store.fetch_tree(manifest, tmp_path / "dest")


def test_declared_outputs_and_escaping_links_are_refused(store, tmp_path):
    src = tree(tmp_path / "src")
    with pytest.raises(OutputError, match="declared output 'model.pkl' was not written"):
        store.push_tree(src, declared=("model.pkl",))
    (tmp_path / "secret").write_text("x")
    (src / "leak").symlink_to(tmp_path / "secret")
    with pytest.raises(OutputError, match="outside the output directory"):
        store.push_tree(src)


def test_manifest_json_and_logs(store, tmp_path):
    key = store.attempt_key("r" * 32, "my stage", 2)
    assert key.endswith("/runs/" + "r" * 32 + "/my_stage-" + key.split("my_stage-")[1])
    store.write_json(f"{key}/manifest.json", {"manifest": {}, "digest": manifest_digest({})})
    assert store.read_json(f"{key}/manifest.json")["digest"] == manifest_digest({})
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "stdout.log").write_text("out\n")
    (logs / "stderr.log").write_text("")
    store.put_logs(key, logs)
    assert not store.fs.exists(f"{key}/logs/stderr.log")  # empty: nothing to upload, it reads as empty
    driver = tmp_path / "driver-logs"
    store.append_logs(key, driver)
    store.append_logs(key, driver)  # attempts accumulate, as local logs do
    assert (driver / "stdout.log").read_text() == "out\nout\n"
    assert not (driver / "stderr.log").exists()


def test_pull_brings_objects_into_the_local_store(store, tmp_path):
    from orchestra.store import artifacts, remote

    manifest = store.push_tree(tree(tmp_path / "src"))
    out = tmp_path / "out"
    remote.pull(store, manifest, out)
    assert (out / "a.txt").read_text() == "alpha"
    obj = artifacts.object_path(manifest["run.sh"]["sha256"], True)
    assert obj.exists() and not os.stat(obj).st_mode & stat.S_IWUSR  # read-only, as local objects
    assert artifacts.verify(manifest).ok
    # ...and back: a manifest known only locally can be pushed to another store.
    other = remote.RemoteStore(f"file://{tmp_path / 'other'}")
    remote.push(other, manifest)
    other.fetch_tree(manifest, tmp_path / "again")
    assert (tmp_path / "again" / "sub" / "b.bin").read_bytes() == bytes(range(256)) * 64


def test_unknown_protocol_is_bad_input():
    pytest.importorskip("fsspec")
    from orchestra.store.remote import RemoteStore

    with pytest.raises(BadInputError, match="ORCHESTRA_ARTIFACTS=nope://x"):
        RemoteStore("nope://x/y")
