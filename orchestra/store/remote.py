"""The shared artifact store of multi-machine runs: ``ORCHESTRA_ARTIFACTS=URL`` (fsspec).

``file:///shared/orchestra`` on a shared filesystem, ``s3://bucket/prefix`` with s3fs (endpoint
and credentials come from the usual environment: ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``…,
or fsspec's ``FSSPEC_S3_ENDPOINT_URL``). Layout under the root::

    objects/ab/abcdef…            file contents, keyed by sha256 (explicit per-file keys: never
                                  a recursive put, whose meaning depends on what already exists)
    runs/RUN/STAGE/ATTEMPT/manifest.json   written last: an attempt counts once it exists
    runs/RUN/STAGE/ATTEMPT/logs/stdout.log, stderr.log

Every download is hashed and checked against its key before it is renamed into place. The run
store (SQLite) stays with the driver: this module never touches it, except ``pull`` which runs
on the driver and records the objects it brings into the local object store.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat as statmod
import tempfile
import uuid
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from orchestra.core import settings
from orchestra.core.digest import sha256_file, stat_token
from orchestra.core.errors import BadInputError, StoreError
from orchestra.core.layout import safe_name
from orchestra.store import artifacts
from orchestra.store import runs as runstore
from orchestra.store.artifacts import OutputError

ENV_VAR = "ORCHESTRA_ARTIFACTS"
_CHUNK = 1 << 20
_EXTRA_FOR = {"s3": "s3", "s3a": "s3"}
Manifest = Mapping[str, Mapping[str, Any]]


def configured_url() -> str | None:
    """The artifact store URL from the environment, or None (paths are shared)."""
    return settings.current().artifacts_url


def _redact(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password or parts.username:
        return urlunsplit(parts._replace(netloc=parts.hostname or ""))
    return url


class RemoteStore:
    """One artifact root, opened through fsspec."""

    def __init__(self, url: str) -> None:
        self.url = url
        shown = _redact(url)
        try:
            import fsspec
        except ImportError:
            raise BadInputError(f"{ENV_VAR}={shown}: fsspec is not installed",
                                hint="pip install 'orchestra[s3]'") from None
        protocol = url.split("://", 1)[0] if "://" in url else "file"
        try:
            self.fs, root = fsspec.core.url_to_fs(url)
        except ImportError:
            extra = _EXTRA_FOR.get(protocol)
            raise BadInputError(f"{ENV_VAR}={shown}: no filesystem for {protocol}:// is installed",
                                hint=f"pip install 'orchestra[{extra}]'" if extra else
                                f"install fsspec's implementation of {protocol}:// (gcsfs for gs://, adlfs for az://)"
                                ) from None
        except ValueError as exc:
            raise BadInputError(f"{ENV_VAR}={shown}: {exc}",
                                hint="a URL such as file:///shared/orchestra or s3://bucket/prefix") from None
        self.root = root.rstrip("/")
        self.local = protocol in ("file", "local")
        self._known: set[str] = set()

    # -- keys -----------------------------------------------------------------------
    def object_key(self, sha: str) -> str:
        return f"{self.root}/objects/{sha[:2]}/{sha}"

    def attempt_key(self, run_id: str, stage: str, attempt: int) -> str:
        return f"{self.root}/runs/{run_id}/{safe_name(stage)}/{attempt}"

    # -- objects --------------------------------------------------------------------
    def has(self, sha: str, size: int) -> bool:
        if sha in self._known:
            return True
        try:
            found = self.fs.size(self.object_key(sha)) == size
        except FileNotFoundError:
            return False
        if found:
            self._known.add(sha)
        return found

    def _put_file(self, local: Path, key: str) -> None:
        if self.local:  # a rename makes the file appear complete or not at all
            tmp = f"{key}.tmp-{uuid.uuid4().hex}"
            self.fs.makedirs(key.rsplit("/", 1)[0], exist_ok=True)
            self.fs.put_file(str(local), tmp)
            self.fs.mv(tmp, key)
        else:  # an object PUT is atomic
            self.fs.put_file(str(local), key)

    def put_object(self, local: Path, sha: str, size: int) -> None:
        """Upload one file under its content key, unless the store already has it."""
        if not self.has(sha, size):
            self._put_file(local, self.object_key(sha))
            self._known.add(sha)

    def get_object(self, sha: str, size: int, dest: Path, mode: int = 0o644) -> None:
        """Download one object to ``dest``, verified against its sha256 and size, atomically."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".get-", dir=dest.parent)
        tmp = Path(tmp_name)
        try:
            digest = hashlib.sha256()
            got = 0
            with os.fdopen(fd, "wb") as out:
                try:
                    with self.fs.open(self.object_key(sha), "rb") as src:
                        while chunk := src.read(_CHUNK):
                            digest.update(chunk)
                            got += len(chunk)
                            out.write(chunk)
                except FileNotFoundError:
                    raise StoreError(f"object {sha[:12]} is missing from {_redact(self.url)}") from None
            if digest.hexdigest() != sha or got != size:
                raise StoreError(f"object {sha[:12]} in {_redact(self.url)} does not match its sha256 "
                                 f"({got} bytes, expected {size})")
            os.chmod(tmp, mode)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)

    # -- trees and manifests --------------------------------------------------------
    def push_tree(self, directory: Path, declared: Iterable[str] = (), skip: frozenset[str] = frozenset()) -> dict[str, dict[str, Any]]:
        """Upload every file of ``directory`` by content; return its manifest.

        Symlinks are published as copies of their targets; one pointing outside the directory
        is refused (as by the local publish).

        Raises:
            OutputError: a declared output is missing, or a symlink escapes.
        """
        directory = directory.resolve()
        for name in declared:
            if not (directory / name).exists():
                raise OutputError(f"declared output '{name}' was not written",
                                  hint=f"write it under $ORCHESTRA_OUTPUT_DIR/{name}")
        manifest: dict[str, dict[str, Any]] = {}
        for path in _files(directory, skip):
            rel = path.relative_to(directory).as_posix()
            real = path.resolve()
            if path.is_symlink() and not real.is_relative_to(directory):
                raise OutputError(f"output '{rel}' is a symlink to {os.readlink(path)}, outside the output directory",
                                  hint="write the file itself, not a link to it")
            if not real.is_file():
                continue
            st = real.stat()
            sha = sha256_file(real)
            self.put_object(real, sha, st.st_size)
            manifest[rel] = {"sha256": sha, "size": st.st_size,
                             "mode": 0o755 if st.st_mode & statmod.S_IXUSR else 0o644}
        return manifest

    def fetch_tree(self, manifest: Manifest, dest: Path) -> None:
        """Materialise ``manifest`` at ``dest`` (tmp dir + rename: complete or absent)."""
        if dest.is_dir():
            return  # keyed by the manifest's digest: an existing tree is this tree
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
        try:
            for rel, entry in manifest.items():
                self.get_object(str(entry["sha256"]), int(entry["size"]), tmp / rel, int(entry["mode"]))
            try:
                os.rename(tmp, dest)
            except OSError:
                if not dest.is_dir():  # else another task of this host won the race: same content
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def write_json(self, key: str, value: Any) -> None:
        """Write a small JSON document (atomically on file://; a PUT is atomic on object stores)."""
        if self.local:  # written where it goes, then renamed: no local copy to upload
            tmp = f"{key}.tmp-{uuid.uuid4().hex}"
            self.fs.makedirs(key.rsplit("/", 1)[0], exist_ok=True)
            try:
                with self.fs.open(tmp, "w") as out:
                    json.dump(value, out, sort_keys=True)
                self.fs.mv(tmp, key)
            except BaseException:
                try:
                    self.fs.rm(tmp)
                except OSError:
                    pass
                raise
            return
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
            json.dump(value, handle, sort_keys=True)
        try:
            self._put_file(Path(handle.name), key)
        finally:
            os.unlink(handle.name)

    def read_json(self, key: str) -> Any:
        with self.fs.open(key, "rb") as handle:
            return json.loads(handle.read())

    def put_logs(self, attempt_key: str, log_dir: Path) -> None:
        """Upload the attempt's non-empty logs (an absent one reads as empty)."""
        for name in ("stdout.log", "stderr.log"):
            path = log_dir / name
            try:
                if path.stat().st_size == 0:
                    continue
            except FileNotFoundError:
                continue
            self._put_file(path, f"{attempt_key}/logs/{name}")

    def append_logs(self, attempt_key: str, log_dir: Path) -> None:
        """Append an attempt's remote logs to the driver's log files (attempts accumulate)."""
        log_dir.mkdir(parents=True, exist_ok=True)
        for name in ("stdout.log", "stderr.log"):
            try:
                with self.fs.open(f"{attempt_key}/logs/{name}", "rb") as src, open(log_dir / name, "ab") as out:
                    shutil.copyfileobj(src, out)
            except FileNotFoundError:
                continue



def _files(root: Path, skip: frozenset[str]) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if d not in skip and not (base / d).is_symlink())
        for name in sorted(filenames):
            yield base / name


# -- driver side: between the store and the local object store ---------------------------
def push(store: RemoteStore, manifest: Manifest) -> None:
    """Make sure every object of a locally published manifest is in the shared store (no lock
    when the store is known to hold them all: a chain's stages push every ancestor's manifest)."""
    if all(str(entry["sha256"]) in store._known for entry in manifest.values()):
        return
    with artifacts.shared_lock():
        for entry in manifest.values():
            sha, size = str(entry["sha256"]), int(entry["size"])
            if not store.has(sha, size):
                store.put_object(artifacts.object_path(sha, bool(int(entry["mode"]) & 0o100)), sha, size)


def pull(store: RemoteStore, manifest: Manifest, dest: Path) -> None:
    """Bring a remotely published manifest into the local object store and link it at ``dest``."""
    records = []
    with artifacts.shared_lock():
        for entry in manifest.values():
            sha, size = str(entry["sha256"]), int(entry["size"])
            executable = bool(int(entry["mode"]) & 0o100)
            obj = artifacts.object_path(sha, executable)
            store._known.add(sha)  # it came from there: a later push need not ask
            if not obj.exists():
                store.get_object(sha, size, obj, 0o555 if executable else 0o444)
                st = obj.stat()
                records.append((sha + (".x" if executable else ""), st.st_size, stat_token(st)))
        runstore.record_objects(records)
        artifacts.link_tree(manifest, dest)
