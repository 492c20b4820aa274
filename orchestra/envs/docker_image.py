"""``docker_env``: the image a stage runs in, checked (or built) on a docker engine.

MLflow's semantics: without ``--build-image`` the ``image`` runs as given (pulled only when the
engine does not have it); with ``--build-image`` an image ``<project name>:<digest>`` is built
FROM it with the project copied to ``/mlflow/projects/code``, its WORKDIR. The image's id (not
its name) is the environment's key, so a stage reruns when the image behind a tag changes.

A built image is named by a digest of (base image id, project code digest, Dockerfile): it is
built once per digest across threads and processes (a file lock under ``ORCHESTRA_HOME/envs``,
checked again once held) and reused afterwards. Nothing here runs a stage: ``Container`` says
how the execution layer writes the stage's ``docker run``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from orchestra.core import settings as settingsmod
from orchestra.core.digest import sha256
from orchestra.core.errors import EnvError
from orchestra.envs import store
from orchestra.mlproject.model import EnvSpec

WORKDIR = "/mlflow/projects/code"
_PROBE_TIMEOUT = 30.0
_INSTALL_HINT = "install a docker engine and start it (Debian: apt-get install docker.io; dockerd)"


@dataclass(frozen=True, slots=True)
class DockerSettings:
    """The run's docker options: ``--build-image``, ``-A`` pairs, and what names a built image."""

    build_image: bool = False
    args: tuple[tuple[str, str | None], ...] = ()
    project_name: str | None = None
    code_digest: str = ""


@dataclass(frozen=True, slots=True)
class Container:
    """How a stage's command runs in its image.

    Attributes:
        exe: the docker client.
        image: the image id the stage runs (what the cache key names).
        ref: the image as named: the MLproject's ``image``, or the built ``<name>:<digest>``.
        project_mounted: the project is bind-mounted at ``WORKDIR`` and is the working directory
            (False for a built image, which carries the project there).
        volumes: ``docker_env.volumes`` (``docker run -v`` values).
        env_names: variables from ``docker_env.environment`` (their values are in the client's env).
        args: ``-A`` pairs (name, value or None).
    """

    exe: str
    image: str
    ref: str
    project_mounted: bool = True
    volumes: tuple[str, ...] = ()
    env_names: tuple[str, ...] = ()
    args: tuple[tuple[str, str | None], ...] = ()


def client(where: str = "") -> str:
    """The docker client, checked against its engine; EnvError (exit 2) naming what is missing."""
    exe = shutil.which("docker")
    if exe is None:
        raise EnvError("docker_env needs docker, and no `docker` executable is on PATH", where=where or None,
                       hint=_INSTALL_HINT)
    try:
        probe = subprocess.run([exe, "version", "--format", "{{.Server.Version}}"], stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=_PROBE_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EnvError(f"docker_env needs a docker engine, and `docker version` failed: {exc}",
                       where=where or None, hint=_INSTALL_HINT) from None
    if probe.returncode != 0:
        engine = os.environ.get("DOCKER_HOST") or "the default socket"
        raise EnvError(f"docker_env needs a running docker engine, and none answers at {engine}"
                       f" ({_last_line(probe.stderr)})", where=where or None,
                       hint="start dockerd, or point DOCKER_HOST at a running engine")
    return exe


def image_id(exe: str, ref: str) -> str | None:
    """The id of the image ``ref`` on the engine, or None when the engine does not have it."""
    try:
        found = subprocess.run([exe, "image", "inspect", "--format", "{{.Id}}", ref], stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=_PROBE_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired):
        return None  # the caller probes the engine and says what is wrong
    value = found.stdout.strip()
    return value if found.returncode == 0 and value else None


def variables(spec: EnvSpec) -> dict[str, str]:
    """``docker_env.environment`` as values: ``[NAME, value]`` as given, ``NAME`` from the caller."""
    values: dict[str, str] = {}
    for entry in spec.environment:
        if isinstance(entry, tuple):
            values[entry[0]] = entry[1]
            continue
        value = os.environ.get(entry)
        if value is None:
            raise EnvError(f"environment variable {entry} is not set", where=f"{spec.declared_at}.environment",
                           hint="docker_env copies it from the caller's environment: set it, or write [NAME, value]")
        values[entry] = value
    return values


def ensure(spec: EnvSpec, settings: DockerSettings, project_root: Path) -> tuple[Container, dict[str, str], bool]:
    """``(container, variables, built)`` for a docker stage; pulls or builds only when needed.

    Raises:
        EnvError: no docker client or engine, an image that is neither here nor pullable, a
            failed build, a copy-from-host variable that is not set (all exit 2).
    """
    values = variables(spec)
    exe = shutil.which("docker")
    ref = spec.image or ""
    base = image_id(exe, ref) if exe else None  # warm path: one call; the engine is probed on a miss
    if base is None:
        exe = client(spec.declared_at)
        base = image_id(exe, ref) or _pull(exe, ref, spec.declared_at)
    built = False
    if settings.build_image:
        ref, base, built = _build(exe, ref, base, settings, project_root, spec.declared_at)
    return _container(exe, spec, settings, base, ref), values, built


def peek(spec: EnvSpec, settings: DockerSettings) -> Container | None:
    """The container ``ensure`` would give, when the engine already has its image; else None."""
    exe = shutil.which("docker")
    if exe is None:
        return None
    try:
        ref = spec.image or ""
        base = image_id(exe, ref)
        if base is not None and settings.build_image:
            ref = _built_tag(ref, base, settings)
            base = image_id(exe, ref)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return None if base is None else _container(exe, spec, settings, base, ref)


def _container(exe: str, spec: EnvSpec, settings: DockerSettings, image: str, ref: str) -> Container:
    names = tuple(entry[0] if isinstance(entry, tuple) else entry for entry in spec.environment)
    return Container(exe=exe, image=image, ref=ref, project_mounted=not settings.build_image, volumes=spec.volumes,
                     env_names=names, args=settings.args)


def _pull(exe: str, ref: str, where: str) -> str:
    pulled = subprocess.run([exe, "pull", "--quiet", ref], stdin=subprocess.DEVNULL, capture_output=True, text=True)
    found = image_id(exe, ref) if pulled.returncode == 0 else None
    if found is None:
        raise EnvError(f"docker image {ref!r} is not on this engine and `docker pull` failed"
                       f" ({_last_line(pulled.stderr)})", where=where,
                       hint="build or load the image first (docker build / docker load / docker import)")
    return found


def _dockerfile(base: str) -> str:
    return f"FROM {base}\nCOPY . {WORKDIR}\nWORKDIR {WORKDIR}\n"


def _built_tag(base_ref: str, base: str, settings: DockerSettings) -> str:
    text = f"{base}\n{settings.code_digest}\n{_dockerfile(base_ref)}"
    digest = sha256(text.encode()).hexdigest()
    name = re.sub(r"[^a-z0-9._-]+", "-", (settings.project_name or "").lower()).strip("._-")
    return f"{name or 'docker-project'}:{digest[:12]}"


def _build(exe: str, base_ref: str, base: str, settings: DockerSettings, project_root: Path,
           where: str) -> tuple[str, str, bool]:
    """``(tag, image id, built)`` of the project's image FROM ``base``, built once per digest."""
    tag = _built_tag(base_ref, base, settings)
    existing = image_id(exe, tag)
    if existing is not None:
        return tag, existing, False
    from filelock import FileLock, Timeout

    lock = FileLock(str(store.root() / f"docker-{tag.replace(':', '-')}.lock"))
    try:
        lock.acquire(timeout=settingsmod.current().env_lock_timeout_s or 3600.0)
    except Timeout:
        raise EnvError(f"timed out waiting for another process to build docker image {tag}", where=where,
                       hint=f"raise {store.LOCK_TIMEOUT_ENV} or stop that process") from None
    try:
        existing = image_id(exe, tag)  # built by the process we waited for
        if existing is not None:
            return tag, existing, False
        done = subprocess.run([exe, "build", "--quiet", "--rm", "--force-rm", "-t", tag, "-f", "-", str(project_root)],
                              input=_dockerfile(base_ref), capture_output=True, text=True)
        found = image_id(exe, tag) if done.returncode == 0 else None
        if found is None:
            raise EnvError(f"docker build of {tag} FROM {base_ref} failed ({_last_line(done.stderr)})", where=where,
                           hint="check that the image can run `COPY`, and the project directory is readable")
        store.log_event("built", f"docker-{tag}", image=found, base=base)
        return tag, found, True
    finally:
        lock.release()


def _last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(("DEPRECATED", "Install the buildx", "https://docs"))]
    return lines[-1] if lines else "no output"


def description(container: Container) -> str:
    """One line for logs: the image as named and the start of its id."""
    short = container.image.split(":", 1)[-1][:12]
    return f"docker image {container.ref} ({short})"
