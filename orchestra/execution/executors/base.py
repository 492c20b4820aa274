"""The executor interface and the one function every executor runs per stage attempt.

Executors only submit and wait: readiness, failure policy and cancellation live in
``orchestra.execution.engine``. ``execute()`` is the worker side: run the command, then publish
outputs or discard them — the same code whether the pool is local threads or a remote cluster.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from orchestra.core.records import Metric
from orchestra.core.status import AttemptStatus
from orchestra.execution import process
from orchestra.execution.process import LineSink, ProcessRegistry
from orchestra.store import artifacts, inputs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class StageTask:
    """One attempt of one stage, fully resolved (picklable: it may travel to a remote worker)."""

    run_id: str
    stage: str
    attempt: int
    command: str
    cwd: str
    env: Mapping[str, str]
    log_dir: str
    staging_dir: str
    outputs_dir: str
    metrics_file: str
    declared_outputs: tuple[str, ...] = ()
    timeout: float | None = None
    resources: Mapping[str, Any] = field(default_factory=dict)
    # For remote workers, which build the stage's environment from their own: the variables
    # orchestra sets (ORCHESTRA_*, --extra env), the EnvSpec to resolve there, the driver's
    # paths of the project and of each upstream output, and those outputs' manifests.
    overlay_env: Mapping[str, str] = field(default_factory=dict)
    env_spec: Any = None
    env_manager: str | None = None
    input_dirs: Mapping[str, str] = field(default_factory=dict)
    input_manifests: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=dict)
    # Run once the attempt has ended, however it ended (a docker_env stage: remove its container).
    cleanup: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TaskOutcome:
    """What happened to one attempt, and the metrics, params and tags its stage code logged."""

    stage: str
    attempt: int
    status: AttemptStatus
    exit_code: int | None
    start_time: float
    end_time: float
    manifest: Mapping[str, Mapping[str, Any]] | None = None
    manifest_digest: str | None = None
    message: str | None = None
    last_stderr: tuple[str, ...] = ()
    metrics: tuple[Metric, ...] = ()
    params: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)


if TYPE_CHECKING:  # a protocol for type checkers only: `typing` stays off a run's path
    class Executor(Protocol):
        """Runs StageTasks. ``wait_any`` returns the outcomes finished so far (at least one, unless
        ``timeout`` passes). ``cancel`` kills every running task; ``close`` releases resources."""

        def submit(self, task: StageTask) -> None: ...

        def wait_any(self, timeout: float | None = None) -> list[TaskOutcome]: ...

        def cancel(self) -> None: ...

        def close(self) -> None: ...


def execute(task: StageTask, registry: ProcessRegistry, sink: LineSink | None = None,
            on_start: Any = None, *, publisher: Callable[[Path], Mapping[str, Any] | None] | None = None,
            prepared: bool = False) -> TaskOutcome:
    """Run one attempt and publish its outputs on success; discard them otherwise.

    Args:
        publisher: publishes the staging directory and returns the manifest (default: into the
            local object store). A publisher returning None leaves the files in place for the
            driver to publish (a remote worker on a shared filesystem).
        prepared: the caller made the log directory and an empty staging directory (``prepare``).
    """
    started = time.time()
    staging = Path(task.staging_dir)
    log_dir = Path(task.log_dir)
    if not prepared:
        prepare(task)
    metrics_file = Path(task.metrics_file)
    metrics_file.unlink(missing_ok=True)
    guard, damaged = inputs.watch(task.input_dirs, task.input_manifests)
    if damaged is not None:
        shutil.rmtree(staging, ignore_errors=True)
        return TaskOutcome(stage=task.stage, attempt=task.attempt, status=AttemptStatus.FAILED, exit_code=None,
                           start_time=started, end_time=time.time(), message=damaged)
    result = process.run(
        task.command, cwd=Path(task.cwd), env=task.env, stdout_path=log_dir / "stdout.log",
        stderr_path=log_dir / "stderr.log", timeout=task.timeout, registry=registry, sink=sink, on_start=on_start,
        cleanup=task.cleanup,
    )
    metrics, params, tags = read_tracking_file(metrics_file)
    manifest = digest = message = None
    status = result.status
    damaged = guard.check() if guard is not None else None
    if damaged is not None:  # whatever the attempt wrote came from damaged inputs: not published
        status, message = AttemptStatus.FAILED, damaged
    if status == AttemptStatus.OK:
        try:
            if publisher is None:
                manifest = artifacts.publish(staging, Path(task.outputs_dir), task.declared_outputs)
                inputs.remember(artifacts.tokens(manifest))  # as recorded: what the next stage checks
            else:
                manifest = publisher(staging)
            digest = artifacts.manifest_digest(manifest) if manifest is not None else None
        except artifacts.OutputError as exc:
            status, message = AttemptStatus.FAILED, str(exc)
    elif status == AttemptStatus.TIMEOUT:
        message = f"timed out after {task.timeout:g}s"
    elif status == AttemptStatus.FAILED and message is None:
        message = f"exited with code {result.exit_code}"
    if not (status == AttemptStatus.OK and manifest is None and publisher is not None):
        try:
            staging.rmdir()  # empty after a publish: files moved into the object store
        except FileNotFoundError:
            pass  # the publish made it the outputs directory
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
    return TaskOutcome(
        stage=task.stage, attempt=task.attempt, status=status, exit_code=result.exit_code, start_time=started,
        end_time=time.time(), manifest=manifest, manifest_digest=digest, message=message,
        last_stderr=result.last_stderr, metrics=metrics, params=params, tags=tags,
    )


def prepare(task: StageTask) -> None:
    """Make the attempt's log directory and its staging directory, empty (a new directory costs
    ~45 us here: a stage submitted ahead has them made before its parent ends)."""
    Path(task.log_dir).mkdir(parents=True, exist_ok=True)
    staging = Path(task.staging_dir)
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)


def unprepare(task: StageTask) -> None:
    """Remove what ``prepare`` made for an attempt that never ran (empty directories only)."""
    for path in (task.staging_dir, task.log_dir, str(Path(task.log_dir).parent)):
        try:
            os.rmdir(path)
        except OSError:
            pass


def read_tracking_file(path: Path) -> tuple[tuple[Metric, ...], dict[str, str], dict[str, str]]:
    """Parse the JSON-lines file stage code writes via ``orchestra.stage`` (bad lines skipped)."""
    metrics: list[Metric] = []
    params: dict[str, str] = {}
    tags: dict[str, str] = {}
    try:
        lines = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return (), params, tags
    for line in lines:
        try:
            item = json.loads(line)
            kind = item.get("type", "metric")
            if kind == "metric":
                metrics.append(Metric(str(item["key"]), float(item["value"]), int(item.get("step", 0)),
                                      float(item.get("timestamp", time.time()))))
            elif kind == "param":
                params[str(item["key"])] = str(item["value"])
            elif kind == "tag":
                tags[str(item["key"])] = str(item["value"])
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
    return tuple(metrics), params, tags


def latest_metrics(metrics: Sequence[Metric]) -> dict[str, float]:
    """Each metric's value at its highest step (the latest timestamp among equals; the later
    logged among full ties)."""
    latest: dict[str, Metric] = {}
    for metric in metrics:
        seen = latest.get(metric.key)
        if seen is None or (metric.step, metric.timestamp) >= (seen.step, seen.timestamp):
            latest[metric.key] = metric
    return {key: metric.value for key, metric in latest.items()}
