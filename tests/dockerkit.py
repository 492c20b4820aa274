"""A real docker engine for the docker_env tests, and small local images made without pulling.

Images are ``docker import``ed from a tarball holding a root with Debian's ``busybox-static``
(``/bin/busybox``: sh, env, wget, sleep, …), built here from the host's binary. Tests skip
only when no engine can exist on this machine (no docker client or dockerd installed, or the
busybox binary is missing or not static), saying why; when ``.ci/run`` started an engine it
exports ``ORCHESTRA_TEST_DOCKER=1`` and a missing engine is a failure instead.
"""

from __future__ import annotations

import io
import os
import shutil
import struct
import subprocess
import tarfile
import uuid
from pathlib import Path

import pytest

BUSYBOX = Path("/bin/busybox")
APPLETS = ("sh", "env", "wget", "cat", "sleep", "ls", "pwd", "mkdir", "sort", "touch", "test", "echo", "printenv",
           "grep", "date", "id", "true", "false", "cp", "mv", "rm", "chmod")
CI_STARTED = "ORCHESTRA_TEST_DOCKER"


def _unavailable(reason: str) -> None:
    if os.environ.get(CI_STARTED) == "1":
        pytest.fail(f"{CI_STARTED}=1 (.ci/run started a docker engine), but {reason}")
    pytest.skip(reason)


def _is_static(binary: Path) -> bool:
    """An ELF64 executable with no PT_INTERP segment (no dynamic loader needed)."""
    with open(binary, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:
            return False
        phoff, = struct.unpack_from("<Q", head, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    return all(struct.unpack_from("<I", table, i * phentsize)[0] != 3 for i in range(phnum))


def require_engine() -> str:
    """The docker client, once its engine answers; else skip (or fail under CI), with the reason."""
    exe = shutil.which("docker")
    if exe is None:
        _unavailable("no docker client on PATH (.ci/run installs Debian's docker.io)")
    probe = subprocess.run([exe, "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True,
                           timeout=60)
    if probe.returncode != 0:
        _unavailable(f"no docker engine answers ({probe.stderr.strip().splitlines()[-1:]}); .ci/run starts dockerd")
    if not BUSYBOX.is_file() or not _is_static(BUSYBOX):
        _unavailable(f"{BUSYBOX} is missing or not statically linked (.ci/run installs busybox-static)")
    return exe  # type: ignore[return-value]


def busybox_tarball(marker: str = "") -> bytes:
    """A root filesystem: /bin/busybox, its applets as symlinks, /tmp, and /etc/marker."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in ("bin", "tmp", "etc"):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if name == "tmp" else 0o755
            tar.addfile(info)
        tar.add(str(BUSYBOX), arcname="bin/busybox")
        for applet in APPLETS:
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(info)
        data = marker.encode()
        info = tarfile.TarInfo("etc/marker")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


IMPORTED: list[str] = []  # ids of the images imported here (a re-import leaves the old one untagged)


def import_image(exe: str, tag: str, marker: str = "") -> str:
    """``docker import`` a busybox root as ``tag``; returns the image id."""
    subprocess.run([exe, "import", "-", tag], input=busybox_tarball(marker), check=True, capture_output=True,
                   timeout=120)
    IMPORTED.append(image_id(exe, tag))
    return IMPORTED[-1]


def image_id(exe: str, ref: str) -> str:
    out = subprocess.run([exe, "image", "inspect", "--format", "{{.Id}}", ref], capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else ""


def containers(exe: str, name_part: str) -> list[str]:
    """Names of the containers (running or not) whose name contains ``name_part``."""
    out = subprocess.run([exe, "ps", "-a", "--filter", f"name={name_part}", "--format", "{{.Names}}"],
                         capture_output=True, text=True, check=True)
    return out.stdout.split()


def images_of(exe: str, repository: str) -> list[str]:
    """``repo:tag`` of every image of ``repository``."""
    out = subprocess.run([exe, "images", repository, "--format", "{{.Repository}}:{{.Tag}}"],
                         capture_output=True, text=True, check=True)
    return out.stdout.split()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def remove_images(exe: str, refs: list[str]) -> None:
    if refs:
        subprocess.run([exe, "rmi", "--force", *refs], capture_output=True)
