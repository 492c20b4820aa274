"""Run one stage command: environment, cwd, captured logs, process group, timeout, cancellation.

Each stage is the leader of its own process group, so terminating it reaches everything it
started. Logs go to files (always complete) and, line by line, to a sink (the console).
A watchdog (a tiny shell loop started once per run) kills the stage groups that are still
alive if orchestra itself dies without a chance to clean up (SIGKILL), then runs their cleanup
commands (removing a docker_env stage's container, which no signal to the group reaches).
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from orchestra.core.pids import signal_group
from orchestra.core.status import AttemptStatus
from orchestra.execution import descendants
from orchestra.core.textlog import last_frame

LineSink = Callable[[str, str], None]  # (stream, line)

# Every command runs through bash -c, as mlflow run runs it: builtins (`pushd`, `source`,
# `shopt`), keywords (`time`) and bash syntax behave as under mlflow. bash execs the last simple
# command of a -c string itself, so a plain command costs one exec more, not one fork more.
_BASH = "/bin/bash" if os.path.exists("/bin/bash") else "bash"
GRACE_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class ProcessResult:
    """How a stage process ended."""

    exit_code: int | None
    status: AttemptStatus
    duration_s: float
    last_stderr: tuple[str, ...] = ()


def argv_for(command: str) -> list[str]:
    """The argv that runs ``command``: ``bash -c COMMAND``, as mlflow run's local backend."""
    return [_BASH, "-c", command]


class ProcessRegistry:
    """The stage processes alive in this orchestra process, for cancellation and the watchdog."""

    def __init__(self, pgid_file: Path | None = None) -> None:
        self._lock = threading.Lock()
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        self._cleanups: dict[int, Sequence[str]] = {}
        self.pgid_file = pgid_file
        self.cancelled = threading.Event()
        self._fd: int | None = None  # the pgid file, written in place (see _write_in_place)
        self._size = 0
        self._cleanup_written = False
        self._watchdog: subprocess.Popen[bytes] | None = None

    def arm(self) -> None:
        """Start the watchdog over the pgid file before the first stage process starts (a run
        whose stages all load never starts one)."""
        if self.pgid_file is None or self._watchdog is not None:
            return
        with self._lock:
            if self._watchdog is None:
                self._watchdog = start_watchdog(self.pgid_file)

    def add(self, proc: subprocess.Popen[bytes], cleanup: Sequence[str] = ()) -> None:
        with self._lock:
            self._procs[proc.pid] = proc
            if cleanup:
                self._cleanups[proc.pid] = cleanup
            self._write()

    def pids(self) -> set[int]:
        with self._lock:
            return set(self._procs)

    def not_swept(self) -> set[int]:
        """What a stage's sweep leaves alone: the other stages' processes, and the watchdog (a
        child of this process too, in no stage's group and without a stage's mark: excluded at
        once rather than read from ``/proc`` after every attempt)."""
        with self._lock:
            watchdog = self._watchdog
            return {*self._procs, watchdog.pid} if watchdog is not None else set(self._procs)

    def remove(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._procs.pop(proc.pid, None)
            self._cleanups.pop(proc.pid, None)
            self._write()

    def _write(self) -> None:
        if self.pgid_file is None:
            return
        text = "".join(f"{pid}\n" for pid in self._procs)
        if not self._write_in_place(text.encode()):
            self._replace(text)
        # What the watchdog runs after killing the groups (a stage's docker container).
        if self._cleanups or self._cleanup_written:
            cleanup_file = self.pgid_file.with_name(self.pgid_file.name + ".cleanup")
            tmp = self.pgid_file.with_suffix(".tmp")
            try:
                tmp.write_text("".join(f"{quote_argv(argv)}\n" for argv in self._cleanups.values()))
                os.replace(tmp, cleanup_file)
                self._cleanup_written = True
            except OSError:
                tmp.unlink(missing_ok=True)

    def _write_in_place(self, data: bytes) -> bool:
        """Overwrite the list with one ``pwrite`` into the open file, padded with blanks over a
        longer earlier list (readers split on whitespace). The watchdog and the reaper read it
        only once this process is dead, and a dead process's write of one page either happened
        or did not: no new inode, no rename, per stage start and end. Longer lists (or an error)
        take the temporary file and rename."""
        if len(data) > 4096:
            return False
        try:
            if self._fd is None:
                self._fd = os.open(self.pgid_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
                self._size = os.fstat(self._fd).st_size
            os.pwrite(self._fd, data.ljust(self._size, b" "), 0)
        except OSError:
            self.close()
            return False
        self._size = max(self._size, len(data))
        return True

    def _replace(self, text: str) -> None:
        assert self.pgid_file is not None
        self.close()  # the rename makes a new inode: the open one is no longer the list
        tmp = self.pgid_file.with_suffix(".tmp")
        try:
            tmp.write_text(text)
            os.replace(tmp, self.pgid_file)
        except OSError:  # a full disk: in place (no new inode), else the watchdog keeps the old list
            tmp.unlink(missing_ok=True)
            try:
                self.pgid_file.write_text(text)
            except OSError:
                pass

    def close(self) -> None:
        """Close the pgid file and stop the watchdog (the executor is done: no stage is left)."""
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None:
            watchdog.kill()
            watchdog.wait()
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None

    def terminate_all(self, grace: float = GRACE_SECONDS) -> None:
        """SIGTERM every stage group, then SIGKILL what is left after ``grace`` seconds."""
        self.cancelled.set()
        with self._lock:
            procs = list(self._procs.values())
        for proc in procs:
            signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in procs:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            signal_group(proc.pid, signal.SIGKILL)


def start_watchdog(pgid_file: Path) -> subprocess.Popen[bytes] | None:
    """Start the shell loop that kills the listed groups once this process is gone.

    (POSIX sh: ``kill -SIG -PGID`` without ``--``, which dash refuses.)"""
    script = (
        'while kill -0 "$1" 2>/dev/null; do sleep 0.5; done; '
        '[ -f "$2" ] && for g in $(cat "$2"); do kill -TERM "-$g" 2>/dev/null; done; '
        'sleep 2; [ -f "$2" ] && for g in $(cat "$2"); do kill -KILL "-$g" 2>/dev/null; done; '
        '[ -f "$2.cleanup" ] && /bin/sh "$2.cleanup" >/dev/null 2>&1; exit 0'
    )
    try:
        return subprocess.Popen(["/bin/sh", "-c", script, "orchestra-watchdog", str(os.getpid()), str(pgid_file)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
    except OSError:
        return None


def run(command: str, *, cwd: Path, env: Mapping[str, str], stdout_path: Path, stderr_path: Path,
        timeout: float | None, registry: ProcessRegistry, sink: LineSink | None = None,
        on_start: Callable[[int], None] | None = None, cleanup: Sequence[str] = ()) -> ProcessResult:
    """Run ``command`` to completion (or timeout, or cancellation) and capture its output.

    The calling thread multiplexes both pipes itself (no pump threads): a stage costs one
    process start and nothing else. ``cleanup`` is an argv run once the group is gone, unless the
    command ended by itself with success (it removes what the group cannot take with it: a
    docker container).
    """
    started = time.monotonic()
    if registry.cancelled.is_set():
        return ProcessResult(None, AttemptStatus.KILLED, 0.0)
    descendants.become_subreaper()
    registry.arm()
    mark = descendants.new_mark()
    env = {**env, descendants.MARK: mark}  # what the stage detaches still carries it
    deadline = None if timeout is None else started + timeout
    # Unbuffered: a log file shows what the stage printed as it prints it (orchestra logs -f, the UI).
    with open(stdout_path, "ab", buffering=0) as out_file, open(stderr_path, "ab", buffering=0) as err_file:
        try:
            proc = subprocess.Popen(argv_for(command), cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        except OSError as exc:
            err_file.write(f"orchestra: cannot start command: {exc}\n".encode())
            return ProcessResult(127, AttemptStatus.FAILED, time.monotonic() - started, (str(exc),))
        if cleanup:
            registry.add(proc, cleanup)
        else:
            registry.add(proc)
        if registry.cancelled.is_set():  # cancelled while it started: terminate_all did not see it
            _stop(proc)
        if on_start:
            on_start(proc.pid)
        tail: list[str] = []
        status = AttemptStatus.OK
        try:
            status = _pump(proc, out_file, err_file, sink, tail, deadline=deadline)
            if status == AttemptStatus.OK and not _wait_until(proc, deadline):
                status = AttemptStatus.TIMEOUT  # the pipes closed early; the deadline still holds
            if status == AttemptStatus.TIMEOUT:
                _stop(proc)
            proc.wait()
        finally:
            # Whatever the stage left behind in its group (background jobs), or detached from
            # it (setsid, double forks), ends with it.
            signal_group(proc.pid, signal.SIGKILL)
            if proc.returncode is None:
                proc.wait()
            if cleanup and not (status == AttemptStatus.OK and proc.returncode == 0):
                _run_cleanup(cleanup)  # a command that ended by itself, with success, left nothing
            registry.remove(proc)
            descendants.sweep(mark, proc.pid, exclude=registry.not_swept())
    code = proc.returncode
    if status == AttemptStatus.OK and registry.cancelled.is_set() and code != 0:
        status = AttemptStatus.KILLED
    elif status == AttemptStatus.OK and code != 0:
        status = AttemptStatus.FAILED
    return ProcessResult(code, status, time.monotonic() - started, tuple(tail[-20:]))


def _wait_until(proc: subprocess.Popen[bytes], deadline: float | None) -> bool:
    """Wait for the stage process until ``deadline``; False when it is still running then."""
    try:
        proc.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        return False
    return True


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """A timed-out stage: SIGTERM to its group, SIGKILL after the grace period."""
    signal_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        signal_group(proc.pid, signal.SIGKILL)


def _run_cleanup(argv: Sequence[str]) -> None:
    try:
        subprocess.run(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        pass


def _pump(proc: subprocess.Popen[bytes], out_file, err_file, sink: LineSink | None, tail: list[str],
          deadline: float | None) -> AttemptStatus:
    """Copy both pipes to their files (and lines to the sink) until EOF; TIMEOUT if late."""
    import selectors

    assert proc.stdout is not None and proc.stderr is not None
    selector = selectors.DefaultSelector()
    buffers = {"stdout": b"", "stderr": b""}
    selector.register(proc.stdout, selectors.EVENT_READ, ("stdout", out_file))
    selector.register(proc.stderr, selectors.EVENT_READ, ("stderr", err_file))
    try:
        while selector.get_map():
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                return AttemptStatus.TIMEOUT
            for key, _ in selector.select(wait):
                name, log_file = key.data
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    selector.unregister(key.fileobj)
                    if buffers[name]:
                        _emit(name, buffers[name], sink, tail)
                        buffers[name] = b""
                    continue
                log_file.write(chunk)
                if sink is not None or name == "stderr":
                    data = buffers[name] + chunk
                    *lines, buffers[name] = data.split(b"\n")
                    for line in lines:
                        _emit(name, line, sink, tail)
                    if len(buffers[name]) > 65536:  # a very long line: show it in pieces
                        _emit(name, buffers[name], sink, tail)
                        buffers[name] = b""
                    elif sink is not None and b"\r" in buffers[name]:  # a progress bar's frame: its latest
                        buffers[name] = buffers[name][buffers[name].rfind(b"\r") + 1:]
                        if buffers[name]:
                            sink(name, buffers[name].decode(errors="replace") + "\r")
        return AttemptStatus.OK
    finally:
        selector.close()
        proc.stdout.close()
        proc.stderr.close()


def _emit(name: str, raw: bytes, sink: LineSink | None, tail: list[str]) -> None:
    line = last_frame(raw.decode(errors="replace"))
    if sink is not None:
        sink(name, line)
    if name == "stderr":
        tail.append(line)
        if len(tail) > 40:
            del tail[:20]


def quote_argv(argv: Sequence[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)
