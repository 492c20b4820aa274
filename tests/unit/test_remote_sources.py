"""The pure parts of remote sources: zip URI rule, runs:/ parsing, remote ``path`` values in the
params (URI kept, credentials removed, command gets the downloaded path), the plan's answer for
an input it did not download, and the archive checks on crafted zips."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import pytest

from orchestra.core.errors import ParamError, SourceError
from orchestra.mlproject.model import ParamSpec, StageSpec
from orchestra.mlproject.params import StageParams, render, resolve
from orchestra.planning import fingerprint
from orchestra.planning.plan import RUN, PlanOptions, StageInputs, decide
from orchestra.source import archive
from orchestra.source.project import is_zip_uri
from orchestra.source.remote_path import parse_runs_uri
from tests.unit.test_plan import MemoryView


def test_zip_uri_rule_is_mlflows_suffix():
    assert is_zip_uri("p.zip") and is_zip_uri("file:///x/p.ZIP") and is_zip_uri("https://h/a/p.zip?x=1")
    assert not is_zip_uri("https://github.com/o/r.git") and not is_zip_uri(".zip") and not is_zip_uri("/x/zip")


def test_runs_uri_parts_and_refusals():
    assert parse_runs_uri("runs:/abc/model/w.txt") == parse_runs_uri("runs:///abc/model/w.txt/")
    assert parse_runs_uri("runs:/abc").path == ""
    for bad in ("runs:/", "runs:/abc/../x"):
        with pytest.raises(SourceError):
            parse_runs_uri(bad)


STAGE = StageSpec("main", "cat {data}", (ParamSpec("data", "path", None),))


def params(value: str) -> StageParams:
    from orchestra.mlproject.params import Assignment

    return resolve(STAGE, [Assignment("data", value)], cwd=Path("/"), project_root=Path("/"), allow_extras=False)


def test_remote_path_keeps_the_uri_without_credentials_and_renders_the_download():
    p = params("https://bob:secret@host/d.txt")
    assert p.values["data"] == p.text["data"] == "https://host/d.txt"
    assert p.remote_paths == (("data", "https://bob:secret@host/d.txt"),) and p.path_files == ()
    downloaded = StageParams(values=p.values, text=p.text, remote_paths=p.remote_paths,
                             downloaded={"data": "/runs/x/.downloads/main.data/d file.txt"})
    assert render(STAGE, downloaded, outputs="/o", inputs={}) == "cat '/runs/x/.downloads/main.data/d file.txt'"
    assert params("runs:/0123/model").remote_paths and params("s3://b/k").remote_paths


def test_other_remote_schemes_are_refused_naming_the_supported_ones():
    with pytest.raises(ParamError, match="runs:/RUN_ID/PATH"):
        params("gs://bucket/key")


def test_a_plan_says_the_remote_input_is_not_downloaded():
    stage = StageInputs("main", "cat {data}", params("s3://b/k"), "local:py", "sha256:c",
                        {"s3://b/k": fingerprint.NOT_DOWNLOADED})
    decision = decide(stage, {}, PlanOptions(), MemoryView())
    assert decision.action == RUN and "downloaded when the run starts" in decision.reasons[0]


def crafted(tmp_path: Path, name: str, data: bytes = b"x", mode: int | None = None, size: int | None = None) -> Path:
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w") as out:
        info = zipfile.ZipInfo(name)
        if mode is not None:
            info.external_attr = mode << 16
        out.writestr(info, data)
    if size is not None:  # a header that lies about the unpacked size
        raw = path.read_bytes().replace((len(data)).to_bytes(4, "little"), size.to_bytes(4, "little"))
        path.write_bytes(raw)
    return path


@pytest.mark.parametrize("name", ["../x", "/abs", "a/../../x", "C:/x", "..\\x"])
def test_escaping_names_are_refused_before_anything_is_written(tmp_path, name):
    with pytest.raises(SourceError, match="unsafe member"):
        archive.unpack(crafted(tmp_path, name), tmp_path / "out", shown="a.zip")
    assert not (tmp_path / "out").exists() and not (tmp_path / "x").exists()


def test_links_are_refused_and_executable_bits_kept(tmp_path):
    with pytest.raises(SourceError, match="symbolic links"):
        archive.unpack(crafted(tmp_path, "l", b"/etc/passwd", stat.S_IFLNK | 0o777), tmp_path / "out", shown="a.zip")
    archive.unpack(crafted(tmp_path, "run.sh", b"#!/bin/sh\n", stat.S_IFREG | 0o755), tmp_path / "ok", shown="a.zip")
    assert (tmp_path / "ok" / "run.sh").stat().st_mode & 0o111


def test_a_header_that_understates_the_size_cannot_write_more(tmp_path):
    path = crafted(tmp_path, "f.txt", b"0123456789" * 10, size=5)
    with pytest.raises(SourceError):
        archive.unpack(path, tmp_path / "out", shown="a.zip")
    written = tmp_path / "out" / "f.txt"
    assert not written.exists() or written.stat().st_size <= 5
