"""Sweep members from --sweep axes and sweep files; the stored command line and its resume argv."""

from __future__ import annotations

import json

import pytest

from orchestra.core import invocation, sweepspec
from orchestra.core.errors import BadInputError


@pytest.mark.parametrize("text, values", [
    ("alpha=0.1,0.5, 1.0", ["0.1", "0.5", "1.0"]),
    ("train.l1=0:1:0.25", ["0", "0.25", "0.5", "0.75", "1"]),
    ("l1=0:1:0.3", ["0", "0.3", "0.6", "0.9"]),          # 1 is not on a step
    ("n=1:10:3", ["1", "4", "7", "10"]),                  # integers stay integers
    ("x=0.1:0.3:0.1", ["0.1", "0.2", "0.3"]),             # decimal steps: no 0.30000000000000004
    ("when=2024-01-01", ["2024-01-01"]),
])
def test_axes(text, values):
    assert sweepspec.parse_axis(text)[1] == values


@pytest.mark.parametrize("text", ["alpha", "=1,2", "alpha=", "alpha=1,,2", "alpha=1,1", "a=1:0:1", "a=0:1:-1",
                                  "a=x:1:1", "a=0:1000000:1"])
def test_bad_axes(text):
    with pytest.raises(BadInputError) as info:
        sweepspec.parse_axis(text)
    assert info.value.exit_code == 2


def test_members_are_the_product_of_file_combinations_and_axes():
    members = sweepspec.members(["a=1,2", "b=x,y"], [{"c": "3"}, {"c": "4"}])
    assert len(members) == 8
    assert members[0] == (("c", "3"), ("a", "1"), ("b", "x")) and members[-1] == (("c", "4"), ("a", "2"), ("b", "y"))
    assert sweepspec.members(["a=1,2"]) == [(("a", "1"),), (("a", "2"),)]
    with pytest.raises(BadInputError):
        sweepspec.members(["a=1", "a=2"])
    with pytest.raises(BadInputError):
        sweepspec.members(["a=1"], [{"a": "2"}])


def test_sweep_files_go_through_the_yaml_limits(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("- {alpha: 0.1, flag: true}\n- {alpha: 2}\n")
    assert sweepspec.read_file(str(path)) == [{"alpha": "0.1", "flag": "true"}, {"alpha": "2"}]
    path.write_text("a: &a [1]\n" + "".join(f"b{i}: *a\n" for i in range(200)))
    with pytest.raises(BadInputError):
        sweepspec.read_file(str(path))
    path.write_text("{alpha: 1}")
    with pytest.raises(BadInputError, match="list of combinations"):
        sweepspec.read_file(str(path))


def test_the_stored_command_line_is_redacted_and_resumes_with_load_from():
    argv = ["run", "https://u:pw@host/repo.git", "-P", "db_password=s3", "-P", "alpha=1", "--load-from", "abc",
            "--load-from=def", "-j", "2"]
    stored = invocation.read({invocation.TAG: invocation.record(argv, "/work")})
    assert stored is not None
    kept, cwd = stored
    assert cwd == "/work" and "pw" not in json.dumps(kept) and "s3" not in json.dumps(kept)
    assert invocation.redacted(kept)
    again = invocation.resume_argv(["run", ".", "-P", "alpha=a b", "--load-from", "abc", "-j", "2"], "f" * 32)
    assert again == ["run", ".", "-P", "alpha=a b", "-j", "2", "--load-from", "f" * 32]
    assert invocation.line(again) == f"orchestra run . -P 'alpha=a b' -j 2 --load-from {'f' * 32}"
    assert invocation.read({}) is None and invocation.read({invocation.TAG: "{bad"}) is None


def test_a_member_keeps_its_own_command_line():
    argv = ["run", ".", "--sweep", "alpha=1,2", "--sweep=l1=0:1:0.5", "--sweep-file", "s.yaml", "--sort=-e.rmse",
            "--fail-fast", "--yes", "-j", "2", "-P", "epochs=3"]
    assert invocation.member_argv(argv, [("alpha", "2"), ("l1", "0.5")]) == [
        "run", ".", "-j", "2", "-P", "epochs=3", "-P", "alpha=2", "-P", "l1=0.5"]
