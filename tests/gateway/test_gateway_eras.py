"""Both MCP eras through the gateway, with the SDKs users have: the stateless revision (2026-07-28) and the
handshake revisions, side by side on one URL, in front of a pinned server-everything served by
``python -m infra.cli run`` exactly as a user tries a server.

Each client (tests/fixtures/clients/) lists tools, calls ``echo``, a tool that reports progress, a 512 KiB
result and a call it cancels, then calls once more. Clients run from their own pinned environments
(tests/tools/sdk_clients.py), so the project's ``mcp`` 1.x is not what is tested.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tools import sdk_clients
from tests.tools.entrypoint_env import ROOT, free_port

pytestmark = [pytest.mark.network, pytest.mark.timeout(900)]

MODERN = "2026-07-28"
LARGE = 512 * 1024


@pytest.fixture(scope="module")
def everything(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(url, token) of server-everything served by ``infra.cli run``, stopped at the end."""
    sdk_clients.python_env(sdk_clients.PY_SDK2)  # made before the server starts: its start is timed
    home = tmp_path_factory.mktemp("everything")
    port = free_port()
    spec, version = sdk_clients.EVERYTHING.rsplit("@", 1)
    argv = [sys.executable, "-m", "infra.cli", "run", spec, "--version", version, "--port", str(port),
            "--home", str(home / "servers"), "--timeout", "240"]  # fmt: skip
    log = home / "run.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=sink, start_new_session=True)
    try:
        url = token = ""
        deadline = time.monotonic() + 300
        while not token and time.monotonic() < deadline:
            line = process.stdout.readline().decode()  # type: ignore[union-attr]
            if not line:
                break
            url = url or (re.search(r"ready at (\S+)", line) or [None, ""])[1]
            token = (re.match(r"token: (\S+)", line) or [None, ""])[1]
        assert url and token, f"infra.cli run did not serve:\n{log.read_text()[-4000:]}"
        yield url, token
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(15)


def assert_worked(report: dict, version: str | None = None) -> None:
    assert "error" not in report, report
    assert "echo" in report["tools"] and "trigger-long-running-operation" in report["tools"], report["tools"]
    assert report["echo"] == "Echo: hello"
    assert report["progress"] == [1, 2, 3]
    assert report["large_len"] == len("Echo: ") + LARGE
    assert report["cancelled"] is True
    assert report["after_cancel"] == "Echo: still here"
    if version:
        assert report["protocol_version"] == version


@pytest.mark.parametrize("mode", [MODERN, "auto", "legacy"])
def test_python_sdk2_client_lists_and_calls_tools_in_each_mode(everything, mode: str) -> None:
    url, token = everything
    report = sdk_clients.py_client(sdk_clients.PY_SDK2, url, token, mode)
    assert_worked(report, MODERN if mode != "legacy" else None)


def test_auto_and_legacy_give_the_tool_list_the_stateless_revision_gives(everything) -> None:
    url, token = everything
    tools = {mode: sdk_clients.py_client(sdk_clients.PY_SDK2, url, token, mode).get("tools") for mode in
             (MODERN, "auto", "legacy")}  # fmt: skip
    assert tools[MODERN] and tools[MODERN] == tools["auto"] == tools["legacy"], tools


def test_twenty_stateless_clients_at_once_all_succeed(everything) -> None:
    url, token = everything
    reports = sdk_clients.py_client(sdk_clients.PY_SDK2, url, token, MODERN, timeout=300, clients=20)["clients"]
    assert len(reports) == 20 and [r.get("error") for r in reports if "error" in r] == []
    assert all(r["echo"] == "Echo: hello" and "echo" in r["tools"] for r in reports)
    assert {r["protocol_version"] for r in reports} == {MODERN}


@pytest.mark.parametrize("mode", [MODERN, "auto", "legacy"])
def test_typescript_sdk2_client_lists_and_calls_tools_in_each_mode(everything, mode: str) -> None:
    url, token = everything
    report = sdk_clients.ts_client(url, token, mode)
    assert_worked(report, MODERN if mode != "legacy" else None)


def test_python_sdk1_client_speaks_the_newest_handshake_revision(everything) -> None:
    url, token = everything
    report = sdk_clients.py_client(sdk_clients.PY_SDK1, url, token, "legacy")
    assert_worked(report, "2025-11-25")


def test_the_pinned_clients_are_what_the_tests_say() -> None:
    python = sdk_clients.python_env(sdk_clients.PY_SDK2)
    version = subprocess.run([str(python), "-c", "import importlib.metadata as m; print(m.version('mcp'))"],
                             capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    assert version == "2.3.0"
    assert Path(sdk_clients.npm_prefix(sdk_clients.TS_CLIENT), "node_modules", "@modelcontextprotocol",
                "client", "package.json").read_text().count('"version": "2.4.0"') == 1  # fmt: skip
