"""Session-wide test setup shared by every test module."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

# Tools installed with the project (uv, ruff, shellcheck, hadolint) live beside this
# interpreter; put them first on PATH even when pytest is started as `.venv/bin/pytest` directly.
_BIN = str(Path(sys.executable).parent)
if os.environ.get("PATH", "").split(os.pathsep)[0] != _BIN:
    os.environ["PATH"] = _BIN + os.pathsep + os.environ.get("PATH", "")


@pytest.fixture(autouse=True)
def _main_thread_event_loop():
    """Pulumi's mocks and `pulumi.runtime.test` need a current event loop in the main thread, but
    `asyncio.run`/`anyio.run` (the MCP checks) leave none behind: give each test a usable one."""
    try:
        loop = asyncio.get_event_loop()
    except RuntimeError:
        loop = None
    if loop is None or loop.is_closed():
        asyncio.set_event_loop(asyncio.new_event_loop())


@pytest.fixture
def cache(tmp_path):
    """An empty detection lookup cache (``components.detect.DiskCache``) for one test."""
    from components.detect import DiskCache

    return DiskCache(tmp_path / "cache")


@pytest.fixture
def default_indexes(monkeypatch):
    """The default registries whatever the local environment names, so recorded responses match
    (detection tests use it through ``pytestmark``)."""
    for name in ("PIP_INDEX_URL", "UV_INDEX_URL", "UV_DEFAULT_INDEX", "NPM_CONFIG_REGISTRY", "npm_config_registry"):
        monkeypatch.delenv(name, raising=False)
