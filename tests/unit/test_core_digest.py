"""sha256 without OpenSSL for short data and small files, hashlib's for large files: same values."""

from __future__ import annotations

import base64
import hashlib

from orchestra.core import digest, randomid


def test_short_data_and_files_of_every_size_hash_as_hashlib_does(tmp_path):
    assert digest.sha256(b"abc").hexdigest() == hashlib.sha256(b"abc").hexdigest()
    grown = digest.sha256(b"a")
    grown.update(b"bc")
    assert grown.hexdigest() == hashlib.sha256(b"abc").hexdigest()
    for size in (0, 1, digest._WHOLE - 1, digest._WHOLE, digest._WHOLE + 1, 3 * digest._WHOLE + 17):
        path = tmp_path / f"f{size}"
        path.write_bytes(bytes(i % 251 for i in range(size)))
        assert digest.sha256_file(path) == hashlib.sha256(path.read_bytes()).hexdigest(), size


def test_ids_and_tokens_are_fresh_and_shaped_as_secrets_makes_them():
    ids = {randomid.hex_id(16) for _ in range(100)}
    assert len(ids) == 100 and all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    token = randomid.url_token(24)
    assert len(token) == 32 and "=" not in token
    assert len(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))) == 24


def test_a_file_larger_than_its_size_said_is_still_hashed_whole(tmp_path, monkeypatch):
    """The size ``fstat`` gives only sizes the first read: a file that grew after it (simulated:
    a real writer racing the read cannot be timed here) is read on to its end."""
    path = tmp_path / "grown"
    path.write_bytes(b"x" * 5000)
    real_fstat = digest.os.fstat

    def stale(fd):
        st = real_fstat(fd)
        return type("Stat", (), {"st_size": 100, "__getattr__": lambda self, name: getattr(st, name)})()

    monkeypatch.setattr(digest.os, "fstat", stale)
    assert digest.sha256_file(path) == hashlib.sha256(b"x" * 5000).hexdigest()
