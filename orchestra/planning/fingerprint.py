"""Stage cache keys: a versioned digest of readable components.

Every component is stored with the stage, so ``orchestra plan`` can say exactly which one
differs from an earlier run ("param alpha 0.5 → 0.3", "upstream prepare outputs changed").
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from orchestra.core.digest import sha256
from orchestra.source.digest import content_digest, file_digest

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# Bump when the meaning of a component changes: every old key then misses, none is misread.
KEY_VERSION = 1
# The digest of a remote ``path`` parameter that a plan did not download (plans fetch nothing).
NOT_DOWNLOADED = "not downloaded"


def components(*, entry_point: str, command: str, params: Mapping[str, Any], extras: Mapping[str, str],
               env_key: str, code_digest: str, path_inputs: Mapping[str, str],
               upstream: Mapping[str, str]) -> dict[str, Any]:
    """The readable parts of a cache key."""
    return {
        "version": KEY_VERSION,
        "entry_point": entry_point,
        "command": command,
        "params": dict(sorted(params.items())),
        "extras": dict(sorted(extras.items())),
        "env": env_key,
        "code": code_digest,
        "path_inputs": dict(sorted(path_inputs.items())),
        "upstream": dict(sorted(upstream.items())),
    }


def cache_key(parts: Mapping[str, Any]) -> str:
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + sha256(canonical.encode()).hexdigest()


def path_digest(path: str) -> str:
    """Digest of the file or directory behind a ``path`` parameter."""
    target = Path(path)
    if target.is_dir():
        return content_digest(target)
    return "sha256:" + file_digest(target)


def differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Human-readable reasons why ``new`` differs from ``old`` (empty when identical)."""
    reasons: list[str] = []
    if old.get("version") != new.get("version"):
        return [f"cache key format changed (v{old.get('version')} → v{new.get('version')})"]
    if old.get("command") != new.get("command"):
        reasons.append("command template changed")
    for group, label in (("params", "param"), ("extras", "extra param")):
        before, after = old.get(group, {}), new.get(group, {})
        for name in sorted(set(before) | set(after)):
            if before.get(name) != after.get(name):
                reasons.append(f"{label} {name} {_show(before, name)} → {_show(after, name)}")
    if old.get("env") != new.get("env"):
        reasons.append(f"environment changed ({_short(old.get('env'))} → {_short(new.get('env'))})")
    if old.get("code") != new.get("code"):
        reasons.append("project code changed")
    before, after = old.get("path_inputs", {}), new.get("path_inputs", {})
    for name in sorted(set(before) | set(after)):
        if before.get(name) != after.get(name):
            reasons.append(f"input file {name} changed" if name in before and name in after else f"input file set changed ({name})")
    before, after = old.get("upstream", {}), new.get("upstream", {})
    for name in sorted(set(before) | set(after)):
        if before.get(name) != after.get(name):
            reasons.append(f"upstream {name} outputs changed")
    return reasons or (["entry point renamed"] if old.get("entry_point") != new.get("entry_point") else [])


def _show(values: Mapping[str, Any], name: str) -> str:
    return repr(values[name]) if name in values and isinstance(values[name], str) else (str(values[name]) if name in values else "(unset)")


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 24 else text[:21] + "..."


# Bump when the meaning of the step base changes (stage code mixes this into every step key).
STEP_BASE_VERSION = 1


def step_base(parts: Mapping[str, Any] | None) -> str | None:
    """The part of a stage's cache key that its steps (``orchestra.stage.managed_artifact(...,
    step=)``) share: entry point, code digest, environment key and upstream outputs. Not in it:
    params, extras, the command template, ``path`` inputs — a step depends only on what its
    ``key=`` adds. None when the key is not known (environment not built)."""
    if not parts:
        return None
    return cache_key({"step_base": STEP_BASE_VERSION, "entry_point": parts.get("entry_point"),
                      "code": parts.get("code"), "env": parts.get("env"), "upstream": parts.get("upstream", {})})
