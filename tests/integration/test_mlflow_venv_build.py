"""The mlflow venv of the real-server tests is built on first use, once, and reused.

The package list is emptied here (an empty venv): what is tested is the build-once logic (lock,
marker, a cut-short build started again), not pip downloading mlflow again.
"""

from __future__ import annotations

import threading

import pytest

import tests.mlflow_server as rig

pytestmark = pytest.mark.integration


@pytest.fixture
def fresh_repo(tmp_path, monkeypatch):
    monkeypatch.delenv(rig.VENV_VAR, raising=False)
    monkeypatch.setattr(rig, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(rig, "MLFLOW_PACKAGES", ())
    return tmp_path


def test_built_once_under_a_lock_then_reused(fresh_repo):
    venvs: list = []
    threads = [threading.Thread(target=lambda: venvs.append(rig.mlflow_venv())) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    venv = fresh_repo / ".ci" / ".venvs" / "mlflow"
    assert venvs == [venv] * 3
    assert (venv / "bin" / "python").exists()
    marker = venv / ".complete"
    built = marker.stat().st_mtime_ns
    assert rig.mlflow_venv() == venv and marker.stat().st_mtime_ns == built  # reused, not rebuilt


def test_a_build_cut_short_is_started_again(fresh_repo):
    venv = fresh_repo / ".ci" / ".venvs" / "mlflow"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "leftover").write_text("half a build")  # no .complete marker
    assert rig.mlflow_venv() == venv
    assert (venv / ".complete").exists() and not (venv / "bin" / "leftover").exists()


def test_a_configured_venv_without_mlflow_fails(tmp_path, monkeypatch):
    monkeypatch.setenv(rig.VENV_VAR, str(tmp_path / "nothing"))
    with pytest.raises(pytest.fail.Exception, match="has no bin/mlflow"):
        rig.mlflow_venv()
