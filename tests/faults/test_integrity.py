"""Data integrity: nothing a stage does to its inputs or outputs can poison the object store.

Real runs of the CLI in subprocesses, real files; the store is inspected afterwards."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from orchestra.app import api
from orchestra.core.digest import sha256_file
from tests.faults.helpers import last_run, objects, stages

pytestmark = pytest.mark.integration

# b appends to its input; c waits for b's write, then copies the (tainted) input to its outputs.
TAINT = """
entry_points:
  a: {{command: "echo clean > {{outputs}}/a.txt"}}
  b:
    depends_on: [a]
    command: "echo tainted >> {{inputs.a}}/a.txt; touch {marker}; sleep 1"
  c:
    depends_on: [a]
    command: "while [ ! -e {marker} ]; do sleep 0.05; done; cat {{inputs.a}}/a.txt > {{outputs}}/c.txt"
"""


def test_a_stage_rewriting_its_input_fails_and_poisons_nothing(cli, make_project, orchestra_home, tmp_path):
    marker = tmp_path / "written"
    root = make_project(TAINT.format(marker=marker))
    first = cli("run", str(root), "-j", "3")
    assert first.code == 1, first.err
    record = last_run()
    by_name = stages(record)
    assert record.status == "FAILED"
    assert by_name["b"].status == "FAILED" and "input a/a.txt" in (by_name["b"].message or "")
    assert by_name["c"].status == "FAILED"  # it read the tainted bytes: nothing it wrote is published
    assert by_name["c"].manifest is None
    clean = sha256_file_bytes(b"clean\n")
    assert not any(p.name.startswith(clean[2:]) for p in objects(orchestra_home)), "tainted object still loadable"
    assert any(p.name.startswith(clean) for p in (orchestra_home / "quarantine").iterdir())
    assert "input a/a.txt" in first.err

    second = cli("run", str(root), "-e", "c")  # the marker exists: c does not wait
    assert second.code == 0, second.err
    by_name = stages(last_run())
    assert by_name["a"].status == "FINISHED", "a's quarantined object must not be loaded"
    assert by_name["c"].status == "FINISHED" and by_name["c"].loaded_from is None
    assert (Path(by_name["c"].outputs_dir) / "c.txt").read_text() == "clean\n"
    assert cli("gc").code == 0
    assert not list((orchestra_home / "quarantine").iterdir())


def sha256_file_bytes(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def test_a_same_size_edit_with_mtime_restored_is_noticed(cli, make_project, orchestra_home):
    root = make_project("""
        entry_points:
          a: {command: "echo 12345 > {outputs}/a.txt"}
          b: {command: "cat {inputs.a}/a.txt > {outputs}/b.txt", depends_on: [a]}
    """)
    assert cli("run", str(root)).code == 0
    obj = next(p for p in objects(orchestra_home))
    st = obj.stat()
    os.chmod(obj, 0o644)
    obj.write_bytes(b"99999\n")  # same size
    os.chmod(obj, st.st_mode & 0o777)
    os.utime(obj, ns=(st.st_atime_ns, st.st_mtime_ns))  # mtime put back; ctime cannot be
    result = cli("run", str(root))
    assert result.code == 0, result.err
    by_name = stages(last_run())
    assert by_name["a"].status == "FINISHED" and by_name["a"].loaded_from is None
    shown = stages(api.get_run(last_run().run_id))  # b loaded: its tree is linked when read
    assert (Path(shown["b"].outputs_dir) / "b.txt").read_text() == "12345\n"


def test_a_hardlinked_outside_file_is_copied_never_chmodded(cli, make_project, tmp_path, orchestra_home):
    outside = tmp_path / "precious.txt"
    outside.write_text("mine\n")
    outside.chmod(0o600)
    root = make_project(f"""
        entry_points:
          main: {{command: "ln {outside} {{outputs}}/p.txt"}}
    """)
    result = cli("run", str(root))
    assert result.code == 0, result.err
    st = outside.stat()
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_nlink == 1, "publish changed or adopted an outside file"
    stored = [p for p in objects(orchestra_home) if p.name.startswith(sha256_file(outside)[2:])]
    assert stored and not os.path.samefile(stored[0], outside)


@pytest.mark.parametrize("make,kind", [("mkfifo {outputs}/pipe", "a FIFO"),
                                       ("python3 -c \"import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])\" {outputs}/sock",
                                        "a socket"),
                                       pytest.param("mknod {outputs}/dev c 1 3", "a device file", marks=pytest.mark.skipif(
                                           os.geteuid() != 0, reason="mknod needs root"))])
def test_special_files_in_outputs_are_refused_not_opened(cli, make_project, make, kind):
    root = make_project(f"""
        entry_points:
          main: {{command: '{make}'}}
    """)
    result = cli("run", str(root), timeout=60)
    assert result.code == 1
    assert f"is {kind}, not a regular file" in result.err
    assert stages(last_run())["main"].status == "FAILED"
