"""A stage command in its docker image: the ``docker run`` line, and how the container is stopped.

MLflow's line: ``docker run --rm [-A args] [-v volumes] [-e variables] IMAGE <command>``, the
whole of it run by ``bash -c`` on the host (so, as with ``mlflow run``, shell operators in the
MLproject command are the host shell's; write ``sh -c '…'`` to run a pipeline in the
container). orchestra adds:

- ``--init`` (signals reach the command; no zombies) and ``--name`` from run, stage and attempt,
  so the container can be removed (``docker rm -f``) when the stage's process group is killed:
  on cancellation, timeout or any end of the attempt;
- ``--network host`` unless ``-A network=…`` says otherwise: stages reach servers on the
  host's 127.0.0.1 (the MLflow tracking server, orchestra's own endpoint) as they would on it;
- ``--user UID:GID`` of the caller when orchestra does not run as root (unless ``-A user=…``):
  files the stage writes into ``{outputs}`` stay the caller's, so they can be published;
- the project bind-mounted at ``/mlflow/projects/code`` and used as the working directory (a
  ``--build-image`` image carries it there instead);
- the stage's own directory (``{outputs}``, its tracking file) and every ``{inputs.X}`` and
  ``path`` parameter mounted at their host paths, so the rendered command's paths work inside
  (and a local tracking store's directory, read-write);
- variables passed by name only (``-e NAME``): the docker client copies their values from its
  own environment, so no value (a tracking token, say) appears on a command line.
"""

from __future__ import annotations

import os
import re
from typing import Iterable, Mapping, Sequence
from urllib.parse import urlparse

from orchestra.envs import Container
from orchestra.envs.docker_image import WORKDIR
from orchestra.execution.process import quote_argv

# Variables a stage on the host would see from the caller, passed into its container too.
TRACKING_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME",
                      "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_INSECURE_TLS", "MLFLOW_EXPERIMENT_ID",
                      "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID")


def container_name(run_id: str, stage: str, attempt: int) -> str:
    """A docker container name for one attempt (``[a-zA-Z0-9][a-zA-Z0-9_.-]*``)."""
    return re.sub(r"[^a-zA-Z0-9_.-]+", "-", f"orchestra-{run_id}-{stage}-{attempt}")[:200]


def docker_args(pairs: Iterable[tuple[str, str | None]]) -> list[str]:
    """MLflow's ``-A`` rule: ``name=value`` → ``--name value`` (``-n value`` for one letter),
    ``name`` alone → ``--name`` (``-t`` for one letter)."""
    argv: list[str] = []
    for name, value in pairs:
        argv.append(("-" if len(name) == 1 else "--") + name)
        if value is not None:
            argv.append(value)
    return argv


def mounts(project_dir: str | None, writable: Sequence[str], readable: Sequence[str]) -> list[str]:
    """``-v`` arguments: the project at WORKDIR, then host paths at the same paths (a readable
    path that does not exist is left out; a writable one is the stage's directory, made before
    the attempt starts)."""
    argv: list[str] = []
    if project_dir is not None:
        argv += ["-v", f"{project_dir}:{WORKDIR}", "-w", WORKDIR]
    seen: set[str] = set()
    for paths, mode in ((writable, "rw"), (readable, "ro")):
        for path in paths:
            if path in seen or ":" in path or (mode == "ro" and not os.path.exists(path)):
                continue
            seen.add(path)
            argv += ["-v", f"{path}:{path}:{mode}"]
    return argv


def tracking_paths(env: Mapping[str, str]) -> list[str]:
    """The local directory behind a ``file:``/``sqlite:``/plain-path ``MLFLOW_TRACKING_URI``, so
    the stage's own mlflow client finds the same store at the same path (MLflow mounts it too)."""
    uri = env.get("MLFLOW_TRACKING_URI", "")
    parsed = urlparse(uri)
    if parsed.scheme == "sqlite" and uri.startswith("sqlite:////"):
        path = os.path.dirname(uri[len("sqlite:///"):])
    elif parsed.scheme in ("", "file") and not parsed.netloc:
        path = parsed.path
    else:
        return []
    return [path] if os.path.isabs(path) and os.path.isdir(path) else []


def wrap(container: Container, command: str, *, name: str, env: Mapping[str, str], passed: Iterable[str],
         project_dir: str, writable: Sequence[str] = (), readable: Sequence[str] = ()) -> tuple[str, tuple[str, ...]]:
    """``(host command, cleanup argv)``: ``command`` run in ``container``, and how to remove it.

    Args:
        env: the docker client's environment (holds the values of the variables passed).
        passed: names of the variables the stage gets (those absent from ``env`` are skipped).
        writable, readable: host paths mounted at the same path, read-write or read-only.
    """
    argv = [container.exe, "run", "--rm", "--init", "--name", name, *docker_args(container.args)]
    given = {key for key, _value in container.args}
    if not given & {"network", "net"}:
        argv += ["--network", "host"]
    if os.geteuid() != 0 and not given & {"user", "u"}:
        argv += ["--user", f"{os.getuid()}:{os.getgid()}"]  # outputs stay the caller's to publish
    argv += mounts(project_dir if container.project_mounted else None, writable, readable)
    for volume in container.volumes:
        argv += ["-v", volume]
    names = dict.fromkeys([*passed, *TRACKING_VARIABLES, *container.env_names])
    for variable in names:
        if variable in env:
            argv += ["-e", variable]
    argv.append(container.image)
    return f"{quote_argv(argv)} {command}", (container.exe, "rm", "--force", name)
