"""Git project sources: a cached mirror per repository, one checkout per run.

``fetch_git`` keeps a bare mirror of each repository under ``ORCHESTRA_HOME/repos`` (fetched,
never re-cloned, under a file lock so concurrent runs are safe) and gives each run its own
checkout of the exact commit, so two versions can run at once and the user's work tree is never
touched. GitPython runs the git commands; it is imported only when a git URI is used.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from orchestra.core.errors import SourceError
from orchestra.core.layout import home_path
from orchestra.source.digest import git_tree_digest
from orchestra.source.local import git_state
from orchestra.source.project import ProjectDir, strip_credentials

_SCHEMES = ("file", "https", "http", "ssh", "git")
# user@host:path (scp-like). The host part may not start with '-' (option injection).
_SCP = re.compile(r"^(?:(?P<user>[A-Za-z0-9._~-]+)@)?(?P<host>[A-Za-z0-9._\[\]:-]+?):(?P<path>[^/\\\\].*|/.*)$")
_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]*@")
_SHA = re.compile(r"^[0-9a-fA-F]{4,40}$")


def validate_url(url: str) -> str:
    """Return the URL if git may fetch it; refuse options and unsafe transports.

    Raises:
        SourceError: the URL could be taken as an option, or uses a transport other than
            file, http(s), ssh, git or scp-style ``user@host:path``.
    """
    shown = strip_credentials(url)
    allowed = "file://, https://, ssh://, git://, user@host:path.git or a local directory"
    if not url or url.startswith("-") or any(c in url for c in "\n\r\0"):
        raise SourceError(f"refusing project URI {shown!r}: it could be read as a git option", hint=allowed)
    if "::" in url.split("/", 1)[0] or url.lower().startswith(("ext::", "fd::")):
        raise SourceError(f"refusing git transport in {shown!r}", hint=allowed)
    if "://" in url:
        scheme = url.split("://", 1)[0].lower()
        if scheme not in _SCHEMES:
            raise SourceError(f"unsupported URI scheme '{scheme}://' in {shown!r}", hint=allowed)
        host = urlsplit(url).hostname or ""
        if host.startswith("-"):
            raise SourceError(f"refusing host {host!r} in {shown!r}", hint=allowed)
        return url
    match = _SCP.match(url)
    if match is None or match.group("host").startswith("-") or match.group("path").startswith("-"):
        raise SourceError(f"not a project directory or git URL: {shown!r}", hint=allowed)
    return url


def normalize(url: str) -> str:
    """A stable identity for a repository URL: no credentials, lower-case host, no ``.git``/``/``."""
    text = strip_credentials(url).rstrip("/")
    if text.endswith(".git"):
        text = text[:-4]
    if "://" in text:
        parts = urlsplit(text)
        host = (parts.hostname or "").lower() + (f":{parts.port}" if parts.port else "")
        return f"{parts.scheme.lower()}://{host}{parts.path}"
    match = _SCP.match(text)
    if match:
        user = f"{match.group('user')}@" if match.group("user") else ""
        return f"{user}{match.group('host').lower()}:{match.group('path')}"
    return text


def redact(text: str) -> str:
    """Remove ``user:token@`` from any URL inside ``text`` (git's error output, for instance)."""
    return _CREDENTIALS.sub(lambda m: m.group("scheme"), text)


# A credential helper that answers from the git process's own environment: the user name and
# password of an http(s) URL reach git only through the environment of that one command, never
# its argv, a config file or the mirror's remote URL.
_HELPER = ('!f() { test "$1" = get || return 0; '
           'printf "username=%s\\npassword=%s\\n" "$ORCHESTRA_GIT_USERNAME" "$ORCHESTRA_GIT_PASSWORD"; }; f')


def split_credentials(url: str) -> tuple[str, dict[str, str]]:
    """``https://user:token@host/x`` → (``https://host/x``, the variables the helper reads).

    Only http(s) URLs carry credentials this way; other URLs are returned unchanged."""
    from urllib.parse import unquote

    if not url.lower().startswith(("http://", "https://")):
        return url, {}
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, {}
    return strip_credentials(url), {"ORCHESTRA_GIT_USERNAME": unquote(parts.username or ""),
                                    "ORCHESTRA_GIT_PASSWORD": unquote(parts.password or "")}


def _env() -> dict[str, str]:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "/bin/false", "SSH_ASKPASS": "/bin/false",
           "GCM_INTERACTIVE": "never", "LC_ALL": "C"}
    if "GIT_SSH_COMMAND" not in os.environ and "GIT_SSH" not in os.environ:
        # Never prompt (host keys, passwords): fail fast with git's message instead.
        env["GIT_SSH_COMMAND"] = "ssh -o BatchMode=yes -o ConnectTimeout=15"
    return env


def _git(args: list[str], cwd: Path | None = None, *, what: str, url: str, auth: dict[str, str] | None = None) -> str:
    import git  # GitPython; imported only for git projects (~100 ms)

    command = ["git", "-c", "protocol.ext.allow=never", "-c", "protocol.fd.allow=never"]
    env = _env()
    if auth:
        command += ["-c", "credential.helper=", "-c", f"credential.helper={_HELPER}"]
        env.update(auth)
    command += args
    try:
        return git.Git(str(cwd) if cwd else None).execute(command, env=env, with_extended_output=False,
                                                          strip_newline_in_stdout=True)
    except git.GitCommandError as exc:
        raise _explain(exc, what=what, url=url) from None


def _explain(exc, *, what: str, url: str) -> SourceError:
    stderr = redact(str(getattr(exc, "stderr", "") or "")).strip().strip("'\"").strip()
    lines = [line.strip().removeprefix("stderr: ").strip("'\" ") for line in stderr.splitlines() if line.strip()]
    fatal = [line for line in lines if line.startswith(("fatal:", "error:", "ERROR:"))]
    detail = (fatal or lines or [f"git exited with {exc.status}"])[0]
    low = stderr.lower()
    shown = strip_credentials(url)
    if "could not resolve host" in low or "name or service not known" in low or "unable to look up" in low:
        return SourceError(f"unknown host for {shown}", hint=detail)
    if ("connection refused" in low or "timed out" in low or "no route to host" in low
            or "couldn't connect" in low or "failed to connect" in low):
        return SourceError(f"cannot connect to the git server of {shown}", hint=detail)
    if ("authentication failed" in low or "permission denied" in low or "could not read username" in low
            or "could not read password" in low or "host key verification failed" in low):
        return SourceError(f"authentication failed for {shown}", hint="check your SSH key or credential helper")
    if ("not found" in low or "does not appear to be a git repository" in low or "does not exist" in low
            or "no such repository" in low
            or "not a git repository" in low or "no such file" in low):
        return SourceError(f"repository not found: {shown}", hint=detail)
    return SourceError(f"git could not {what} {shown}", hint=detail)


def fetch_git(base: str, subdir: str, version: str | None, local: Path | None = None) -> ProjectDir:
    """Fetch ``base`` into the mirror cache and check out ``version`` (default branch if None).

    Args:
        base: the repository URL (or a local git directory when ``local`` is given).
        subdir: the project's directory inside the repository ('' for the root).
        version: branch, tag, or full/abbreviated commit.
        local: a local git work tree used as the source (with ``--version``): it is read, never
            checked out in place.

    Raises:
        SourceError: bad URL, unknown host/repo/version, auth failure, missing subdirectory.
    """
    from filelock import FileLock

    url = str(local) if local is not None else validate_url(base)
    url, auth = split_credentials(url)  # the URL git sees and stores has no credentials
    shown = strip_credentials(base)
    key = hashlib.sha256(normalize(url).encode()).hexdigest()[:24]
    repos = home_path("repos")
    mirror = repos / f"{key}.git"
    with FileLock(str(repos / f"{key}.lock"), timeout=600):
        if (mirror / "HEAD").exists():
            _git(["remote", "set-url", "origin", "--", url], mirror, what="update", url=url)
            _git(["fetch", "--prune", "--tags", "--force", "origin", "+refs/heads/*:refs/heads/*"], mirror,
                 what="fetch", url=url, auth=auth)
        else:
            tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=repos))
            try:
                _git(["clone", "--mirror", "--quiet", "--", url, str(tmp)], what="clone", url=url, auth=auth)
                _git(["config", "gc.auto", "0"], tmp, what="configure", url=url)  # runs share its objects
                os.rename(tmp, mirror)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        commit, branch = _resolve(mirror, version, url, auth)
        checkout = _checkout(mirror, commit, url, auth)
    try:
        tree = _git(["rev-parse", f"{commit}:{subdir}" if subdir else f"{commit}^{{tree}}"], checkout,
                    what="read", url=url) if _exists(checkout, subdir) else None
        if tree is None:
            raise SourceError(f"subdirectory '{subdir}' not found at {commit[:12]}", where=shown,
                              hint="the path after '#' must exist in the repository")
        inside = checkout.resolve()
        if subdir and not (checkout / subdir).resolve().is_relative_to(inside):
            raise SourceError(f"subdirectory '#{subdir}' leads outside the repository (a symlink to "
                              f"{(checkout / subdir).resolve()})", where=shown,
                              hint="name a real directory of the repository after '#'")
        digest = git_tree_digest(tree)
        path = checkout / subdir if subdir else checkout
        return ProjectDir(
            path=path, uri=shown + (f"#{subdir}" if subdir else ""), commit=commit, branch=branch,
            repo_url=strip_credentials(base) if local is None else _origin(local) or str(local),
            dirty=None, is_remote=local is None, code_digest=digest, cleanup_paths=(checkout.parent,),
            confine_to=inside if local is None else None,
        )
    except BaseException:
        shutil.rmtree(checkout.parent, ignore_errors=True)
        raise


def _exists(checkout: Path, subdir: str) -> bool:
    return (checkout / subdir).is_dir() if subdir else True


def _origin(local: Path) -> str | None:
    state = git_state(local)
    return state.repo_url if state else None


def _resolve(mirror: Path, version: str | None, url: str, auth: dict[str, str]) -> tuple[str, str | None]:
    """(commit sha, branch or version name) for ``version`` in the mirror."""
    import git

    if version is None:
        head = _git(["symbolic-ref", "--quiet", "HEAD"], mirror, what="read", url=url)
        branch = head.removeprefix("refs/heads/")
        return _git(["rev-parse", "--verify", "--quiet", f"{head}^{{commit}}"], mirror, what="read", url=url), branch
    if version.startswith("-") or any(c in version for c in " \t\n\0~^:?*[\\"):
        raise SourceError(f"invalid version {version!r}", hint="a branch, tag or commit sha")
    for candidate in (f"refs/heads/{version}", f"refs/tags/{version}", version):
        try:
            sha = _git(["rev-parse", "--verify", "--quiet", "--end-of-options", f"{candidate}^{{commit}}"], mirror,
                       what="read", url=url)
        except SourceError:
            continue
        if sha:
            return sha, version
    if _SHA.match(version):
        try:  # a commit no ref points to any more: servers may still hand it out by id
            _git(["fetch", "--quiet", "origin", version], mirror, what="fetch", url=url, auth=auth)
            return _git(["rev-parse", "--verify", "--quiet", f"{version}^{{commit}}"], mirror, what="read", url=url), version
        except (SourceError, git.GitCommandError):
            pass
    refs = _git(["for-each-ref", "--count=12", "--format=%(refname:short)", "refs/heads", "refs/tags"], mirror,
                what="read", url=url).split()
    raise SourceError(f"unknown version {version!r} in {strip_credentials(url)}",
                      hint="branches and tags: " + (", ".join(refs) or "none"))


def _checkout(mirror: Path, commit: str, url: str, auth: dict[str, str]) -> Path:
    """A private checkout of ``commit`` sharing the mirror's objects (no copy of history)."""
    root = Path(tempfile.mkdtemp(prefix="run-", dir=home_path("checkouts")))
    work = root / "src"
    _git(["clone", "--quiet", "--shared", "--no-checkout", "--", str(mirror), str(work)], what="check out", url=url)
    # Relative submodule URLs resolve against origin: point it at the real remote.
    _git(["remote", "set-url", "origin", "--", url], work, what="configure", url=url)
    _git(["checkout", "--quiet", "--detach", commit], work, what="check out", url=url)
    if (work / ".gitmodules").exists():
        _git(["-c", "protocol.file.allow=always", "submodule", "update", "--init", "--recursive", "--quiet"], work,
             what="initialise submodules of", url=url, auth=auth)
    return work
