"""A validated MLproject is remembered by digest, with its parsed form: the next load reads neither
the YAML nor the schema, builds the same spec, and a damaged or foreign entry is only a miss."""

from __future__ import annotations

import pytest

from orchestra.mlproject import load as specload

TEXT = """name: cached
entry_points:
  prepare:
    parameters: {1: {type: int, default: 0x10}, n: {default: yes}, f: {type: float, default: .NaN}}
    command: "echo {n} {f} > {outputs}/x"
  train:
    parameters: {lst: {default: [1, {2: b}]}, flag: {type: bool, default: on}}
    command: "cat {inputs.prepare}/x && echo {lst} {flag}"
    depends_on: [prepare]
"""


def _markers(home):
    return list((home / "cache" / "validated-specs").iterdir())


def _shape(spec):
    return [(s.name, s.command, [(p.name, type(p.name), p.type, repr(p.default)) for p in s.parameters], s.depends_on)
            for s in spec.entry_points.values()]


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("ORCHESTRA_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_a_second_load_reads_neither_yaml_nor_schema_and_builds_the_same(tmp_path, home, monkeypatch):
    (tmp_path / "MLproject").write_text(TEXT)
    first = specload.load(tmp_path)
    assert len(_markers(home)) == 1

    def unused(*args, **kwargs):
        raise AssertionError("a validated file is read from the cache")

    monkeypatch.setattr(specload, "_parse_yaml", unused)
    monkeypatch.setattr(specload, "_validate", unused)
    assert _shape(specload.load(tmp_path)) == _shape(first)  # int names, bools and NaN kept exactly


def test_a_file_with_a_date_is_not_remembered_and_loads_the_same(tmp_path, home):
    (tmp_path / "MLproject").write_text(TEXT.replace("default: yes", "default: 2024-01-02"))
    first = specload.load(tmp_path)
    assert not (home / "cache" / "validated-specs").exists()  # marshal keeps no dates: read again
    assert _shape(specload.load(tmp_path)) == _shape(first)
    assert "datetime.date(2024, 1, 2)" in str(_shape(first))


@pytest.mark.parametrize("damage", [
    lambda blob: blob[: len(blob) // 2],  # torn
    lambda blob: blob[:-3] + bytes([blob[-3] ^ 0x40]) + blob[-2:],  # a flipped bit
    lambda blob: b'{"name": "json from an older version"}',  # the former format
    lambda blob: blob.replace(b"orchestra-validated-spec-2 ", b"orchestra-validated-spec-2 other-"),  # another Python
])
def test_a_damaged_or_foreign_entry_is_a_miss_and_is_rewritten(tmp_path, home, damage):
    (tmp_path / "MLproject").write_text(TEXT)
    expected = _shape(specload.load(tmp_path))
    (marker,) = _markers(home)
    good = marker.read_bytes()
    marker.write_bytes(damage(good))
    assert _shape(specload.load(tmp_path)) == expected
    assert marker.read_bytes() == good


def test_planning_in_a_fresh_home_creates_no_store(tmp_path, orchestra_home):
    """``plan`` writes nothing: with no store yet, nothing has run, and asking creates none."""
    from orchestra.app import api

    (tmp_path / "MLproject").write_text(TEXT.replace("{1: {type: int, default: 0x10}, ", "{"))
    the_plan = api.plan(str(tmp_path), api.RunOptions())
    assert [(s.name, s.action) for s in the_plan.stages] == [("prepare", "RUN"), ("train", "RUN")]
    assert the_plan.stages[0].reasons == ("never ran",)
    assert not (orchestra_home / "runs.sqlite").exists()
    api.run(str(tmp_path), api.RunOptions())  # a run creates it; the next plan loads from it
    assert (orchestra_home / "runs.sqlite").exists()
    assert [s.action for s in api.plan(str(tmp_path), api.RunOptions()).stages] == ["LOAD", "LOAD"]
