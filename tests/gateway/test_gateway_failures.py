"""The gateway when things go wrong: a server that dies mid-request, a stop with requests in flight.

Served exactly as in the image (deploy/entrypoint.sh, custom runtime, tests/fixtures/relay_server.py); the
clients are the ``mcp`` SDK's and raw HTTP.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path

import anyio
import httpx
import pytest
from mcp import ClientSession
from mcp.shared.exceptions import McpError

from tests.gateway.test_gateway_relay import ACCEPT, AUTH, gateway, initialize, streamablehttp_client

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


def test_a_request_in_flight_when_the_gateway_is_stopped_gets_its_answer_when_it_comes_soon(tmp_path: Path) -> None:
    """A rolling update or a scale-down stops machines with SIGTERM: calls already made still get answered."""
    call = {**SLOW_CALL, "params": {"name": "slow", "arguments": {"steps": 1, "delay": 0.6, "label": "drained"}}}
    with gateway(tmp_path) as (served, _received), httpx.Client(timeout=10) as http:
        _, sid = initialize(served)
        headers = {**AUTH, **ACCEPT, "Mcp-Session-Id": sid}
        with http.stream("POST", served.url(), json=call, headers=headers) as pending:
            assert pending.status_code == 200
            served.process.terminate()
            # one sent just as the stop came (Fly's proxy had not seen it yet): answered, not reset
            echo = {"jsonrpc": "2.0", "id": "late", "method": "tools/call",
                    "params": {"name": "echo", "arguments": {"text": "late"}}}  # fmt: skip
            with httpx.Client(timeout=10) as other:
                late = other.post(served.url(), json=echo, headers=headers)
            body = pending.read().decode()
        assert '"id":"s-1"' in body and "slow done: drained" in body and "stopping" not in body
        assert late.status_code == 200 and '"late"' in late.text and "stopping" not in late.text
        assert served.wait(5) == 0


def test_a_client_that_stops_reading_its_stream_is_dropped_and_the_others_are_served(tmp_path: Path) -> None:
    with gateway(tmp_path) as (served, _received):
        _, stalled_sid = initialize(served)
        with socket.create_connection(("127.0.0.1", served.port), timeout=10) as stalled:
            stalled.sendall(
                f"GET /mcp HTTP/1.1\r\nHost: x\r\nAuthorization: {AUTH['Authorization']}\r\n"
                f"Accept: text/event-stream\r\nMcp-Session-Id: {stalled_sid}\r\n\r\n".encode()
            )
            time.sleep(0.2)  # its stream is open; from now on it reads nothing
            _, sid = initialize(served)
            headers = {**AUTH, **ACCEPT, "Mcp-Session-Id": sid}
            flood = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                     "params": {"name": "flood", "arguments": {"count": 48, "size": 1 << 20}}}  # fmt: skip
            answer = httpx.post(served.url(), json=flood, headers=headers, timeout=30)
            assert answer.status_code == 200 and '"text":"flooded"' in answer.text  # not held up by the stalled one
            # ~48 MiB were for the stalled stream: the gateway dropped it past its buffer limit, and all it had
            # queued with it (what reaches the client is what the kernel's buffers already held).
            stalled.settimeout(10)
            received = 0
            with contextlib.suppress(ConnectionResetError):
                while chunk := stalled.recv(1 << 20):
                    received += len(chunk)
            assert received < 16 << 20
        assert "dropped" in served.output()
        echo = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "echo", "arguments": {}}}
        assert httpx.post(served.url(), json=echo, headers=headers, timeout=10).status_code == 200


def test_a_client_sending_endlessly_on_its_open_stream_is_disconnected(tmp_path: Path) -> None:
    with gateway(tmp_path) as (served, _received), socket.create_connection(("127.0.0.1", served.port)) as client:
        client.sendall(f"GET /sse HTTP/1.1\r\nHost: x\r\nAuthorization: {AUTH['Authorization']}\r\n\r\n".encode())
        client.settimeout(10)
        head = b""
        while b"event: endpoint" not in head:
            head += client.recv(4096)
        junk = b"x" * (1 << 20)
        with contextlib.suppress(ConnectionError):  # it may hang up while this is still sending
            for _ in range(16):  # more than any request the gateway takes, and never a complete one
                client.sendall(junk)
        hung_up = False
        try:
            while client.recv(65536):  # what is left of the stream, then the gateway hangs up
                pass
            hung_up = True
        except ConnectionResetError:
            hung_up = True
        except TimeoutError:
            pass  # still open after 10 s of silence: the gateway kept reading the junk
        assert hung_up, "the gateway kept a connection that sends without end"
        _, sid = initialize(served)  # and it serves others as before
        assert sid
