"""A plain install (no extras) runs plain projects; what needs an extra says which, in one line.

The packages of the extras (py-rattler, conda-lock, uv, pandas, grandalf, Pillow) are hidden
from a real ``orchestra`` subprocess by a ``sys.meta_path`` finder that raises
ModuleNotFoundError for them, installed by a ``sitecustomize.py`` in a temporary directory put
first on PYTHONPATH (so the children orchestra starts — the rattler worker, stages — are blind
to them too). That is the only way to simulate a missing package here: the test command installs
``.[test]``, which pulls every extra into the one environment all tests share, and uninstalling
them would break the other tests (and could not be undone offline). For uv, whose binary is also
looked up on PATH, PATH holds only a directory with ``python`` and the system's ``/usr/bin:/bin``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, REPO_ROOT, write_project

pytestmark = pytest.mark.integration

OPTIONAL = ("rattler", "conda_lock", "uv", "pandas", "grandalf", "PIL")

_HIDER = '''
import sys

HIDDEN = frozenset({hidden!r})


class HideOptionalPackages:
    """Answers every import of a hidden package as Python does for a missing one."""

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in HIDDEN:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None


sys.meta_path.insert(0, HideOptionalPackages())
'''


def without(tmp_path: Path, *hidden: str) -> dict[str, str]:
    """The environment of an orchestra process to which ``hidden`` (import names) do not exist."""
    site = tmp_path / "hide"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(_HIDER.format(hidden=sorted(hidden)))
    bindir = tmp_path / "bin"  # python only: no uv binary on PATH either
    bindir.mkdir(exist_ok=True)
    if not (bindir / "python").exists():
        (bindir / "python").symlink_to(sys.executable)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO_ROOT)]),
            "PATH": os.pathsep.join([str(bindir), "/usr/bin", "/bin"])}


def orchestra(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orchestra", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_the_hider_hides(tmp_path):
    """The premise: in the test environment the packages exist, and the hider makes them not."""
    code = "import importlib.util as u; print(all(u.find_spec(m) is not None for m in %r))" % (OPTIONAL,)
    seen = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert seen == "True"
    probe = "import pandas"
    hidden = subprocess.run([sys.executable, "-c", probe], env=without(tmp_path, *OPTIONAL), capture_output=True,
                            text=True)
    assert hidden.returncode == 1 and "No module named 'pandas'" in hidden.stderr


def test_a_plain_run_and_help_need_no_extra(tmp_path):
    env = without(tmp_path, *OPTIONAL)
    assert orchestra(env, "--help").returncode == 0
    first = orchestra(env, "run", str(EXAMPLES / "quickstart"))
    assert first.returncode == 0 and "FINISHED" in first.stderr, first.stderr
    dag = orchestra(env, "dag", str(EXAMPLES / "quickstart"), "--format", "mermaid")
    assert dag.returncode == 0 and "flowchart LR" in dag.stdout


CONDA_PROJECT = """\
    name: needs-conda
    conda_env: conda.yaml
    entry_points:
      main:
        command: "python -c pass"
"""
CONDA_YAML = {"conda.yaml": "name: c\nchannels: [conda-forge]\ndependencies:\n  - python\n"}


def test_a_conda_env_without_the_conda_extra(tmp_path):
    """As ``mlflow run`` on a conda project without conda says how to get conda: the fix, or
    ``--env-manager local``, which then works."""
    root = write_project(tmp_path / "proj", CONDA_PROJECT, CONDA_YAML)
    env = without(tmp_path, "rattler", "conda_lock")
    line = one_line_error(orchestra(env, "run", str(root)))
    assert line == ("orchestra: error: MLproject: conda_env: solving a conda environment needs py-rattler, which is "
                    "not installed (pip install 'orchestra[conda]', or run in the current environment with "
                    "--env-manager local)")
    assert "needs py-rattler" in one_line_error(orchestra(env, "env", "create", str(root)))
    assert orchestra(env, "run", str(root), "--env-manager", "local").returncode == 0


def test_env_lock_without_conda_lock_fails_before_solving(tmp_path):
    root = write_project(tmp_path / "proj", CONDA_PROJECT, CONDA_YAML)
    line = one_line_error(orchestra(without(tmp_path, "conda_lock"), "env", "lock", str(root)))
    assert line.endswith("MLproject: conda_env: writing conda-lock.yml needs conda-lock, which is not installed "
                         "(pip install 'orchestra[conda]')")
    assert not (root / "conda-lock.yml").exists()


PYTHON_PROJECT = """\
    name: needs-uv
    python_env: python_env.yaml
    entry_points:
      main:
        command: "python -c pass"
"""


def test_a_python_env_without_uv_and_a_warm_one_that_needs_none(tmp_path):
    """A cold python_env names the extra; one built before (with uv) is reused without uv."""
    version = ".".join(map(str, sys.version_info[:2]))
    root = write_project(tmp_path / "proj", PYTHON_PROJECT,
                         {"python_env.yaml": f'python: "{version}"\ndependencies: []\n'})
    env = without(tmp_path, "uv")
    assert shutil.which("uv", path=env["PATH"]) is None, "this machine has a uv in /usr/bin or /bin"
    line = one_line_error(orchestra(env, "run", str(root)))
    assert line == ("orchestra: error: MLproject: python_env: building a python environment needs uv, which is not "
                    "installed (pip install 'orchestra[python-env]', put uv on PATH, or run in the current "
                    "environment with --env-manager local)")
    built = orchestra({**os.environ, "PYTHONPATH": str(REPO_ROOT)}, "run", str(root))
    assert built.returncode == 0, built.stderr
    warm = orchestra(env, "run", str(root), "--no-cache")
    assert warm.returncode == 0 and "FINISHED" in warm.stderr, warm.stderr


def test_dag_pictures_name_their_extra(tmp_path):
    svg = one_line_error(orchestra(without(tmp_path, "grandalf"), "dag", str(EXAMPLES / "quickstart"),
                                   "--format", "svg"))
    assert svg == ("orchestra: error: --format svg: dag --format svg needs grandalf, which is not installed "
                   "(pip install 'orchestra[svg]', or use --format html, mermaid or dot)")
    png = one_line_error(orchestra(without(tmp_path, "PIL"), "dag", str(EXAMPLES / "quickstart"), "--format", "png",
                                   "-o", str(tmp_path / "dag.png")))
    assert "dag --format png needs Pillow" in png and "pip install 'orchestra[png]'" in png
    assert not (tmp_path / "dag.png").exists()


def test_runs_frame_without_pandas(tmp_path):
    code = textwrap.dedent("""\
        from orchestra.app import api
        from orchestra.core.errors import MissingExtraError
        try:
            api.runs_frame()
        except MissingExtraError as exc:
            print(exc.exit_code, exc)
    """)
    out = subprocess.run([sys.executable, "-c", code], env=without(tmp_path, "pandas"), capture_output=True,
                         text=True, timeout=120)
    expected = "2 runs_frame() needs pandas, which is not installed (pip install 'orchestra[pandas]')"
    assert out.stdout.strip() == expected, out.stderr
