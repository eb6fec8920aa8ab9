"""The gateway when things go wrong: a server that dies mid-request, a stop with requests in flight.

Served exactly as in the image (deploy/entrypoint.sh, custom runtime, tests/fixtures/relay_server.py); the
clients are the ``mcp`` SDK's and raw HTTP.
"""

from __future__ import annotations

import threading
from pathlib import Path

import anyio
import httpx
import pytest
from mcp import ClientSession
from mcp.shared.exceptions import McpError

from tests.test_gateway_relay import ACCEPT, AUTH, gateway, initialize, streamablehttp_client

SLOW_CALL = {"jsonrpc": "2.0", "id": "s-1", "method": "tools/call",
             "params": {"name": "slow", "arguments": {"steps": 1, "delay": 30}}}  # fmt: skip


def _post_in_background(url: str, headers: dict[str, str], answers: list) -> threading.Thread:
    def post() -> None:
        answers.append(httpx.post(url, json=SLOW_CALL, headers=headers, timeout=20))

    thread = threading.Thread(target=post, daemon=True)
    thread.start()
    return thread


def test_requests_in_flight_get_an_error_when_the_server_dies_and_the_gateway_exits_with_its_code(
    tmp_path: Path,
) -> None:
    with gateway(tmp_path) as (served, _received):
        _, sid = initialize(served)
        # A client that takes JSON only, waiting for a slow answer that will never come.
        json_only: list[httpx.Response] = []
        waiting = _post_in_background(served.url(), {**AUTH, "Accept": "application/json", "Mcp-Session-Id": sid},
                                      json_only)  # fmt: skip

        async def die() -> str:
            async with (
                streamablehttp_client(served.url(), AUTH) as streams,
                ClientSession(streams[0], streams[1]) as session,
            ):
                await session.initialize()
                with anyio.fail_after(10), pytest.raises(McpError) as raised:  # not a client left hanging
                    await session.call_tool("die", {"code": 3})
                return raised.value.error.message

        message = anyio.run(die)
        assert "MCP server process exited with code 3" in message
        waiting.join(10)
        [answer] = json_only
        assert answer.status_code == 200 and answer.json()["id"] == "s-1"
        assert "MCP server process exited" in answer.json()["error"]["message"]
        assert served.wait(5) == 3  # Fly restarts the machine


def test_requests_in_flight_get_an_error_when_the_gateway_is_stopped(tmp_path: Path) -> None:
    with gateway(tmp_path) as (served, _received), httpx.Client(timeout=10) as http:
        _, sid = initialize(served)
        headers = {**AUTH, **ACCEPT, "Mcp-Session-Id": sid}
        with http.stream("POST", served.url(), json=SLOW_CALL, headers=headers) as pending:
            assert pending.status_code == 200
            served.process.terminate()
            body = pending.read().decode()
        assert '"id":"s-1"' in body and "stopping" in body
        assert served.wait(5) == 0
