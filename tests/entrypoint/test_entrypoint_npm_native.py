"""npm installs point node-gyp at the running Node's own headers, so native modules build with no download.

Offline: npm is the fake installer (through NPM), which records the npm_config_nodedir it was given. The real
case (mcp-server-sqlite and its better-sqlite3 compiled from source) is the network test in
tests/entrypoint/test_entrypoint.py.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.tools.entrypoint_env import FAKE_INSTALLER, base_env, run_entrypoint

PACKAGE = "@fake/mcp@1.0.0"
RESOLVED_AT = "2026-10-21T19:41:57Z"
CUTOFF = "2026-10-21T20:41:57Z"


def npm_install(tmp_path: Path, path_first: Path | None = None, **env: str) -> tuple[str, str]:
    """`entrypoint.sh install` of an npm package with the fake npm: (npm_config_nodedir it saw, stderr)."""
    fake = tmp_path / "fake-npm"
    fake.write_text(FAKE_INSTALLER)
    fake.chmod(0o755)
    seen = tmp_path / "nodedir.txt"
    values = {
        "MCP_RUNTIME": "npm",
        "MCP_PACKAGE": PACKAGE,
        "MCP_LAUNCH": json.dumps(["fake-server"]),
        "MCP_RESOLVED_AT": RESOLVED_AT,
        "NPM": str(fake),
        "FAKE_LOG": str(tmp_path / "cutoffs.log"),
        "FAKE_ENV_LOG": str(seen),
        "FAKE_SOLVES_AT": CUTOFF,
        **env,
    }
    full = base_env(tmp_path / "home", **values)
    full = {k: v for k, v in full.items() if k.lower() != "npm_config_nodedir" or k in env}
    if path_first:
        full["PATH"] = f"{path_first}{os.pathsep}{full['PATH']}"
    result = run_entrypoint(full, "install", timeout=60)
    assert result.returncode == 0, result.stderr
    return seen.read_text(), result.stderr


def fake_node(tmp_path: Path, prefix: Path) -> Path:
    """A `node` whose `-p` answer is `prefix`: stands for a Node installed under that prefix."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    node = bin_dir / "node"
    node.write_text(f"#!/bin/sh\nprintf '%s\\n' '{prefix}'\n")
    node.chmod(0o755)
    return bin_dir


def test_npm_install_points_node_gyp_at_the_running_nodes_own_headers(tmp_path: Path):
    node = shutil.which("node")
    if not node:
        pytest.skip("node is not installed here")
    prefix = Path(os.path.realpath(node)).parents[1]
    if not (prefix / "include" / "node" / "common.gypi").is_file():
        pytest.skip(f"the local node has no headers under {prefix}/include/node")
    nodedir, stderr = npm_install(tmp_path)
    assert nodedir == str(prefix)
    assert f"Native modules build against the Node.js headers in {prefix}/include/node" in stderr


@pytest.mark.parametrize("has_headers", [True, False], ids=["headers", "no-headers"])
def test_nodedir_is_set_only_when_that_node_prefix_has_headers(tmp_path: Path, has_headers: bool):
    prefix = tmp_path / "node-prefix"
    (prefix / "include" / "node").mkdir(parents=True)
    if has_headers:
        (prefix / "include" / "node" / "common.gypi").write_text("{}\n")
    nodedir, stderr = npm_install(tmp_path, path_first=fake_node(tmp_path, prefix))
    assert nodedir == (str(prefix) if has_headers else "unset")
    assert ("Native modules build against" in stderr) is has_headers


def test_a_users_own_npm_config_nodedir_is_kept(tmp_path: Path):
    nodedir, stderr = npm_install(tmp_path, npm_config_nodedir="/opt/my-node-headers")
    assert nodedir == "/opt/my-node-headers"
    assert "Native modules build against" not in stderr
