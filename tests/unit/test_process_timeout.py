"""A stage that ignores SIGTERM still ends at its timeout: after the grace period its group is
killed (and a cleanup argv, e.g. removing a docker container, runs once it is gone)."""

from __future__ import annotations

from orchestra.core.status import AttemptStatus
from orchestra.execution import process


def test_timeout_of_a_stage_that_ignores_sigterm(tmp_path, monkeypatch):
    monkeypatch.setattr(process, "GRACE_SECONDS", 0.5)
    marker = tmp_path / "cleaned"
    result = process.run("trap '' TERM; sleep 60", cwd=tmp_path, env={"PATH": "/usr/bin:/bin"},
                         stdout_path=tmp_path / "out", stderr_path=tmp_path / "err", timeout=0.5,
                         registry=process.ProcessRegistry(), cleanup=("touch", str(marker)))
    assert result.status == AttemptStatus.TIMEOUT
    assert marker.exists()


def test_no_cleanup_after_a_clean_exit(tmp_path):
    marker = tmp_path / "cleaned"
    result = process.run("true", cwd=tmp_path, env={"PATH": "/usr/bin:/bin"}, stdout_path=tmp_path / "out",
                         stderr_path=tmp_path / "err", timeout=None, registry=process.ProcessRegistry(),
                         cleanup=("touch", str(marker)))
    assert result.status == AttemptStatus.OK and not marker.exists()


def test_a_stage_cancelled_while_it_starts_is_stopped(tmp_path, monkeypatch):
    """Cancellation that lands between run()'s first check and the process start (here: while the
    watchdog is armed) finds no process to signal; the starting stage sees the flag and stops."""
    monkeypatch.setattr(process, "GRACE_SECONDS", 0.5)
    registry = process.ProcessRegistry(tmp_path / "pgids")
    monkeypatch.setattr(registry, "arm", lambda: registry.terminate_all(grace=0.1))
    result = process.run("sleep 120", cwd=tmp_path, env={"PATH": "/usr/bin:/bin"}, stdout_path=tmp_path / "out",
                         stderr_path=tmp_path / "err", timeout=None, registry=registry)
    assert result.status == AttemptStatus.KILLED  # unstopped, it would end OK after 120 s
    registry.close()
