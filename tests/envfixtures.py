"""pytest fixtures for environment tests: the offline channel and wheels, built once per session,
and an environment that keeps uv and rattler offline and away from the user's caches."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests import envkit


@pytest.fixture(scope="session")
def session_channel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return envkit.build_channel(tmp_path_factory.mktemp("conda") / "channel")


@pytest.fixture(scope="session")
def session_wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return envkit.build_wheels(tmp_path_factory.mktemp("pypi") / "wheels")


@pytest.fixture(scope="session")
def uv_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("uv-cache")


@pytest.fixture(autouse=True)
def offline_envs(monkeypatch: pytest.MonkeyPatch, session_wheels: Path, uv_cache: Path) -> Path:
    """uv resolves only from the test wheels; nothing reads the user's config or downloads."""
    monkeypatch.setenv("UV_CACHE_DIR", str(uv_cache))
    monkeypatch.setenv("UV_OFFLINE", "1")
    monkeypatch.setenv("UV_NO_CONFIG", "1")
    monkeypatch.setenv("UV_FIND_LINKS", str(session_wheels))
    monkeypatch.setenv("UV_PYTHON_DOWNLOADS", "never")
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    for var in ("ORCHESTRA_CONDA_EXE", "RATTLER_CACHE_DIR", "VIRTUAL_ENV", "CONDA_PREFIX", "UV_INDEX_URL",
                "UV_DEFAULT_INDEX", "UV_EXTRA_INDEX_URL"):
        monkeypatch.delenv(var, raising=False)
    return session_wheels


@pytest.fixture
def channel(tmp_path: Path, session_channel: Path) -> Path:
    """A private copy of the channel (tests that change packages change only theirs)."""
    return Path(shutil.copytree(session_channel, tmp_path / "channel"))


@pytest.fixture
def wheels(tmp_path: Path, session_wheels: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the wheels, made the only find-links location."""
    path = Path(shutil.copytree(session_wheels, tmp_path / "wheels"))
    monkeypatch.setenv("UV_FIND_LINKS", str(path))
    return path
