"""Real git servers on 127.0.0.1 for tests: a git daemon, and sshd with a throwaway key."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com"}


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV}).stdout.strip()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port}")


def make_repo(root: Path) -> dict[str, str]:
    """A repository with history: v1 (tagged), a commit outside the project subdir, a branch.

    Returns the interesting commit shas.
    """
    work = root / "work"
    work.mkdir(parents=True)
    git("init", "-q", "-b", "main", cwd=work)
    (work / "proj").mkdir()
    (work / "proj" / "MLproject").write_text(
        "entry_points:\n  main:\n    parameters: {word: {type: string, default: one}}\n"
        "    command: \"cat VERSION > {outputs}/version; echo {word} > {outputs}/word\"\n")
    (work / "proj" / "VERSION").write_text("v1\n")
    (work / "MLproject").write_text("entry_points:\n  main:\n    command: \"cat proj/VERSION > {outputs}/version\"\n")
    git("add", "-A", cwd=work)
    git("commit", "-qm", "v1", cwd=work)
    git("tag", "v1", cwd=work)
    shas = {"v1": git("rev-parse", "HEAD", cwd=work)}
    (work / "proj" / "VERSION").write_text("v2\n")
    git("commit", "-qam", "v2", cwd=work)
    shas["v2"] = git("rev-parse", "HEAD", cwd=work)
    (work / "README").write_text("outside the project\n")
    git("add", "-A", cwd=work)
    git("commit", "-qm", "docs", cwd=work)
    shas["docs"] = git("rev-parse", "HEAD", cwd=work)
    git("checkout", "-qb", "feature", cwd=work)
    (work / "proj" / "VERSION").write_text("feature\n")
    git("commit", "-qam", "feature", cwd=work)
    shas["feature"] = git("rev-parse", "HEAD", cwd=work)
    git("checkout", "-q", "main", cwd=work)
    git("clone", "-q", "--bare", str(work), str(root / "repo.git"))
    return shas


class GitDaemon:
    def __init__(self, base: Path) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["git", "daemon", "--reuseaddr", f"--base-path={base}", "--export-all", "--listen=127.0.0.1",
             f"--port={self.port}", "--informative-errors", str(base)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def url(self, name: str) -> str:
        return f"git://127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class SshServer:
    """sshd on 127.0.0.1 accepting one throwaway key for user ``git`` (created if absent)."""

    def __init__(self, root: Path, user: str = "git") -> None:
        self.root = root
        self.user = user
        self.port = free_port()
        keys = root / "keys"
        keys.mkdir(parents=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / "host")], check=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / "client")], check=True)
        # sshd reads authorized_keys as the target user: keep it somewhere that user can read
        # (pytest's temporary directories are private to root).
        import tempfile

        self.public = Path(tempfile.mkdtemp(prefix="orchestra-sshd-"))
        self.public.chmod(0o755)
        authorized = self.public / "authorized_keys"
        shutil.copy(keys / "client.pub", authorized)
        authorized.chmod(0o644)
        config = root / "sshd_config"
        config.write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {keys / 'host'}\nPidFile {root / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {authorized}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "UsePAM no\nStrictModes no\nPermitRootLogin yes\nAllowUsers " + user + "\n")
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
        self.log = root / "sshd.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(config)],
                                         stdout=log, stderr=log)
        try:
            wait_port(self.port)
        except RuntimeError:
            self.proc.kill()
            raise RuntimeError(f"sshd did not start: {self.log.read_text()[-500:]}") from None
        self.ssh_config = root / "ssh_config"
        known = root / "known_hosts"
        host_pub = (keys / "host.pub").read_text().split()
        known.write_text(f"[127.0.0.1]:{self.port} {host_pub[0]} {host_pub[1]}\n")
        self.ssh_config.write_text(
            f"Host 127.0.0.1\n  Port {self.port}\n  IdentityFile {keys / 'client'}\n  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {known}\n  StrictHostKeyChecking yes\n  BatchMode yes\n")

    @property
    def git_ssh_command(self) -> str:
        return f"ssh -F {self.ssh_config}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.public, ignore_errors=True)


def ensure_user(name: str) -> Path | None:
    """The home of system user ``name``, creating the user when running as root; else None."""
    import pwd

    try:
        home = Path(pwd.getpwnam(name).pw_dir)
    except KeyError:
        if os.geteuid() != 0 or not shutil.which("useradd"):
            return None
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", name], check=True, capture_output=True)
        home = Path(pwd.getpwnam(name).pw_dir)
    if os.geteuid() == 0:
        # useradd leaves the account locked ('!'), which sshd refuses even for key logins.
        subprocess.run(["usermod", "-p", "*", name], check=False, capture_output=True)
    return home
