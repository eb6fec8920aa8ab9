"""Live detection against the real registries (PyPI, npm) for a handful of pinned packages, bounded in time."""

from __future__ import annotations

import time

import pytest

from components.detect import DetectError, DiskCache, detect_many

pytestmark = [pytest.mark.network, pytest.mark.timeout(90)]


def test_live_registries_resolve_pinned_real_servers(tmp_path, monkeypatch):
    for name in ("PIP_INDEX_URL", "UV_INDEX_URL", "UV_DEFAULT_INDEX", "NPM_CONFIG_REGISTRY", "npm_config_registry"):
        monkeypatch.delenv(name, raising=False)
    specs = [
        "pypi:mcp-server-git==2025.7.1",
        "@modelcontextprotocol/server-memory@2025.11.25",
        "uvx://mcp-server-time@2025.9.25",
        "pypi:office-word-mcp-server==1.1.11",
        "mcp-server-sqlite",
        "pypi:ha-mcp==8.7.0",
    ]
    start = time.monotonic()
    git, memory, time_, word, sqlite, ha = detect_many(specs, cache=DiskCache(tmp_path))
    elapsed = time.monotonic() - start
    assert not isinstance(git, DetectError), git
    assert (git.runtime, git.launch, git.pinned) == ("python", ["mcp-server-git"], "mcp-server-git==2025.7.1")
    assert git.env()["MCP_RESOLVED_AT"].startswith("2025-07-")
    assert (memory.runtime, memory.launch) == ("npm", ["mcp-server-memory"])
    assert memory.pinned == "@modelcontextprotocol/server-memory@2025.11.25"
    assert (time_.launch, time_.pinned) == (["mcp-server-time"], "mcp-server-time==2025.9.25")
    assert word.launch == ["word_mcp_server"]
    assert sqlite.runtime == "python"
    assert isinstance(ha, DetectError) and "requires Python" in str(ha)
    assert elapsed < 30, f"live detection of {len(specs)} specs took {elapsed:.1f}s"
