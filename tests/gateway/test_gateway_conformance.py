"""The official MCP conformance suite (``@modelcontextprotocol/conformance``, pinned) against the gateway, with the
same server's own streamable HTTP as the reference: every scenario the reference passes, the gateway passes.

The server is tests/fixtures/conformance_server.py (the tools, resources and prompts the suite's server scenarios
call), natively (``--http``) and over stdio behind deploy/entrypoint.sh, both on loopback without a token (the
suite sends none; the gateway then guards Host and Origin, which the suite's DNS-rebinding scenario checks).
The suite needs Node >= 22: the image's Node is used (bench/image_runtime.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.image_runtime import image_node_bin
from tests.tools import sdk_clients
from tests.tools.entrypoint_env import ROOT, base_env, free_port, serving

pytestmark = [pytest.mark.network, pytest.mark.timeout(900)]

SERVER = ROOT / "tests" / "fixtures" / "conformance_server.py"
SPEC_VERSIONS = ("2025-06-18", "2025-11-25")
# Scenarios the reference passes that the gateway cannot, each with the reason (none today).
CANNOT: dict[str, str] = {}


def up(url: str, process: subprocess.Popen, timeout: float = 60) -> None:
    params = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params}
    headers = {"Accept": "application/json, text/event-stream"}
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.post(url, json=init, headers=headers, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert process.poll() is None and time.monotonic() < deadline, f"{url} did not answer"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def native(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("native") / "server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen([sys.executable, str(SERVER), "--http", str(port)], stdout=sink, stderr=sink)
    try:
        url = f"http://127.0.0.1:{port}/mcp"
        up(url, process)
        yield url
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture(scope="module")
def gated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("gated")
    env = base_env(home, MCP_RUNTIME="custom", MCP_COMMAND=f"{sys.executable} {SERVER}", MCP_HOST="loopback")
    with serving(env) as served:
        up(served.url(), served.process)
        yield served.url()


def run_suite(url: str, version: str, out: Path) -> dict[str, bool]:
    """Each server scenario of ``version`` the suite ran, and whether all its checks passed."""
    suite = sdk_clients.npm_prefix(sdk_clients.CONFORMANCE) / "node_modules" / "@modelcontextprotocol" / "conformance"
    env = {**os.environ, "PATH": f"{image_node_bin()}{os.pathsep}{os.environ['PATH']}"}
    argv = ["node", str(suite / "dist" / "index.js"), "server", "--url", url, "--spec-version", version,
            "-o", str(out)]  # fmt: skip
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, check=False)
    results = {}
    for checks in out.glob("server-*/checks.json"):
        scenario = checks.parent.name.removeprefix("server-").rsplit("-", 6)[0]  # …-2026-12-02T02-46-45-660Z
        results[scenario] = all(c["status"] != "FAILURE" for c in json.loads(checks.read_text()))
    assert results, f"the suite ran no scenario:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return results


@pytest.mark.parametrize("version", SPEC_VERSIONS)
def test_every_scenario_the_servers_own_http_passes_the_gateway_passes(native, gated, tmp_path, version) -> None:
    reference = run_suite(native, version, tmp_path / "native")
    gateway = run_suite(gated, version, tmp_path / "gateway")
    table = "\n".join(f"{name:40} native {'pass' if ok else 'FAIL'}  gateway {'pass' if gateway.get(name) else 'FAIL'}"
                      for name, ok in sorted(reference.items()))  # fmt: skip
    print(f"\nconformance {version}:\n{table}")
    assert sum(reference.values()) >= 20, table  # the reference itself is sound
    lost = {name for name, ok in reference.items() if ok and not gateway.get(name)} - set(CANNOT)
    assert not lost, table
