"""The gateway relaying one stdio server to many HTTP clients, checked with the ``mcp`` SDK's own clients.

The server is tests/fixtures/relay_server.py (plain JSON-RPC lines, instant start) behind deploy/entrypoint.sh's
custom runtime, exactly as served in the image. Raw HTTP (httpx) checks the status codes and headers the
MCP transports specify (streamable HTTP 2025-06-18, HTTP+SSE 2024-11-05).
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
from mcp import ClientSession, types
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from tests.tools.entrypoint_env import ROOT, Served, base_env, serving

FIXTURE = ROOT / "tests" / "fixtures" / "relay_server.py"
TOKEN = "relay-token-5d1e"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
FUTURE_FIELD = {"nested": [1, 2.5, "three"], "flag": True}


@contextlib.contextmanager
def gateway(tmp_path: Path, *server_args: str) -> Iterator[tuple[Served, Path]]:
    received = tmp_path / "received.jsonl"
    command = f"{sys.executable} {FIXTURE} --log {received} {' '.join(server_args)}".strip()
    env = base_env(tmp_path / "home", MCP_RUNTIME="custom", MCP_COMMAND=command, MCP_AUTH_TOKEN=TOKEN)
    with serving(env) as served:
        deadline = time.monotonic() + 30
        while True:  # /status answers once the server answered the gateway's initialize
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(served.url(path="/status"), timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline and served.process.poll() is None, served.output()
            time.sleep(0.05)
        yield served, received


def received_methods(path: Path) -> list[str]:
    return [json.loads(line).get("method", "<response>") for line in path.read_text().splitlines()]


def initialize(served: Served, version: str = "2025-06-18") -> tuple[httpx.Response, str]:
    params = {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}
    body = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params}
    response = httpx.post(served.url(), json=body, headers={**AUTH, **ACCEPT}, timeout=10)
    return response, response.headers.get("mcp-session-id", "")


def sse_messages(response: httpx.Response) -> list[dict]:
    return [json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:")]


@contextlib.asynccontextmanager
async def streamablehttp_client(url: str, headers: dict[str, str]):
    """The SDK's streamable HTTP client with our headers (it takes them through its httpx client)."""
    async with (
        httpx.AsyncClient(headers=headers, timeout=30) as http,
        streamable_http_client(url, http_client=http) as streams,
    ):
        yield streams


async def _session_with(url: str, transport, work) -> object:
    notes: list = []

    async def on_message(message) -> None:
        if isinstance(message, types.ServerNotification):
            notes.append(message.root)

    async with (
        transport(url, headers=AUTH) as streams,
        ClientSession(streams[0], streams[1], message_handler=on_message) as session,
    ):
        await session.initialize()
        return await work(session, notes)


async def _slow_with_progress(session: ClientSession, label: str) -> tuple[str, list[float]]:
    seen: list[float] = []

    async def progress(value: float, total: float | None, message: str | None) -> None:
        seen.append(value)

    result = await session.call_tool("slow", {"steps": 3, "delay": 0.1, "label": label}, progress_callback=progress)
    return result.content[0].text, seen


def test_concurrent_clients_get_their_own_answers_and_only_their_own_progress(tmp_path: Path) -> None:
    with gateway(tmp_path) as (served, received):
        results: dict[str, tuple[str, list[float]]] = {}

        async def client(name: str, url: str, transport) -> None:
            async def work(session: ClientSession, _notes: list) -> None:
                results[name] = await _slow_with_progress(session, name)

            await _session_with(url, transport, work)

        async def main() -> None:
            with anyio.fail_after(30):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(client, "http-1", served.url(), streamablehttp_client)
                    tg.start_soon(client, "http-2", served.url(), streamablehttp_client)
                    tg.start_soon(client, "sse-1", served.url(path="/sse"), sse_client)

        anyio.run(main)
        # Every client's request and progress token is the same (the SDK numbers them alike): the gateway told
        # them apart, and each got its own answer and its own three progress steps, not the others'.
        assert results == {name: (f"slow done: {name}", [1.0, 2.0, 3.0]) for name in ("http-1", "http-2", "sse-1")}
        methods = received_methods(received)
        assert methods.count("initialize") == 1 and methods.count("notifications/initialized") == 1
        assert methods.count("tools/call") == 3


def test_a_list_change_reaches_every_stream_and_a_log_message_only_its_callers(tmp_path: Path) -> None:
    with gateway(tmp_path) as (served, _received):
        listening: dict[str, list] = {}
        ready = anyio.Event()
        done = anyio.Event()
        caller: list = []

        async def listener(name: str, url: str, transport) -> None:
            async def work(session: ClientSession, notes: list) -> None:
                listening[name] = notes
                if len(listening) == 2:
                    ready.set()
                await done.wait()

            await _session_with(url, transport, work)

        async def announcer() -> None:
            await ready.wait()
            await anyio.sleep(0.3)  # the streamable HTTP client opens its GET stream just after initialize

            async def work(session: ClientSession, notes: list) -> None:
                assert (await session.call_tool("announce", {})).content[0].text == "announced"
                caller.extend(notes)

            await _session_with(served.url(), streamablehttp_client, work)
            with anyio.fail_after(5):
                while not all(len(n) >= 1 for n in listening.values()):
                    await anyio.sleep(0.05)
            await anyio.sleep(0.3)  # a log message sent to everyone would have arrived by now
            done.set()

        async def main() -> None:
            with anyio.fail_after(30):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(listener, "http", served.url(), streamablehttp_client)
                    tg.start_soon(listener, "sse", served.url(path="/sse"), sse_client)
                    tg.start_soon(announcer)

        anyio.run(main)
        # The list change concerns everyone; the log message was caused by the announcer's call (the only one in
        # flight), so it goes on that call's stream and nowhere else.
        for notes in listening.values():
            assert [type(n) for n in notes] == [types.ToolListChangedNotification]
        logs = [n for n in caller if isinstance(n, types.LoggingMessageNotification)]
        assert [n.params.data for n in logs] == ["hello all"]


def test_fields_unknown_to_the_sdk_reach_the_client_unchanged(tmp_path: Path) -> None:
    with gateway(tmp_path) as (served, _received):

        async def work(session: ClientSession, _notes: list) -> list:
            return (await session.list_tools()).tools

        tools = anyio.run(_session_with, served.url(), streamablehttp_client, work)
        future = next(t for t in tools if t.name == "future")
        assert future.model_extra == {"x-catwalk-future": FUTURE_FIELD}
        # A result the mcp 1.x models would refuse (a content type no revision has yet) passes as sent.
        _, sid = initialize(served)
        headers = {**AUTH, **ACCEPT, "Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-06-18"}
        call = {"jsonrpc": "2.0", "id": "c-1", "method": "tools/call", "params": {"name": "future"}}
        response = httpx.post(served.url(), json=call, headers=headers, timeout=10)
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        [answer] = sse_messages(response)
        assert answer == {
            "jsonrpc": "2.0",
            "id": "c-1",
            "result": {
                "content": [{"type": "hologram", "frames": 3}, {"type": "text", "text": "future"}],
                "x-extra": {"kept": True},
            },
        }


def test_streamable_http_sessions_follow_the_spec(tmp_path: Path) -> None:
    with gateway(tmp_path) as (served, received):
        first, sid = initialize(served, "2025-03-26")
        assert first.status_code == 200 and len(sid) == 32
        [answer] = sse_messages(first)
        assert answer["result"]["protocolVersion"] == "2025-03-26"  # the client's, which the server speaks
        assert answer["result"]["instructions"] == "for tests"
        _, other = initialize(served)
        assert other != sid
        base = {**AUTH, **ACCEPT}
        tools_list = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
        initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        with httpx.Client(timeout=10) as http:
            missing = http.post(served.url(), json=tools_list, headers=base)
            assert missing.status_code == 400
            unknown = http.post(served.url(), json=tools_list, headers={**base, "Mcp-Session-Id": "f" * 32})
            assert unknown.status_code == 404
            version = http.post(
                served.url(),
                json=tools_list,
                headers={**base, "Mcp-Session-Id": sid, "MCP-Protocol-Version": "1999-01-01"},
            )
            assert version.status_code == 400
            sse_only = {**AUTH, "Accept": "text/event-stream", "Mcp-Session-Id": sid}
            assert http.post(served.url(), json=tools_list, headers=sse_only).status_code == 406
            # A client taking JSON only (all mcp-proxy answered with) gets JSON: an object, or an array for a batch.
            json_only = {**AUTH, "Accept": "application/json", "Mcp-Session-Id": sid}
            answer = http.post(served.url(), json=tools_list, headers=json_only)
            assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
            assert answer.json()["id"] == 2 and answer.json()["result"]["tools"][0]["name"] == "echo"
            echo = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "echo",
                    "arguments": {"text": "j"}}}  # fmt: skip
            both = http.post(served.url(), json=[echo, {**tools_list, "id": 8}], headers=json_only).json()
            assert sorted(a["id"] for a in both) == [7, 8]
            note = http.post(served.url(), json=initialized, headers={**base, "Mcp-Session-Id": sid})
            assert note.status_code == 202 and note.content == b""
            ok = http.post(served.url(), json=tools_list, headers={**base, "Mcp-Session-Id": sid})
            assert ok.status_code == 200 and ok.headers["mcp-session-id"] == sid
            assert [t["name"] for t in sse_messages(ok)[0]["result"]["tools"]][:2] == ["echo", "slow"]
            ping = http.post(
                served.url(),
                json={"jsonrpc": "2.0", "id": 3, "method": "ping"},
                headers={**base, "Mcp-Session-Id": sid},
            )
            assert sse_messages(ping) == [{"jsonrpc": "2.0", "id": 3, "result": {}}]
            batch = [
                {
                    "jsonrpc": "2.0",
                    "id": n,
                    "method": "tools/call",
                    "params": {"name": "echo", "arguments": {"text": str(n)}},
                }
                for n in (10, 11)
            ]
            answers = sse_messages(http.post(served.url(), json=batch, headers={**base, "Mcp-Session-Id": sid}))
            assert sorted((a["id"], a["result"]["content"][0]["text"]) for a in answers) == [(10, "10"), (11, "11")]
            deleted = http.delete(served.url(), headers={**AUTH, "Mcp-Session-Id": sid})
            assert deleted.status_code == 200
            gone = http.post(served.url(), json=tools_list, headers={**base, "Mcp-Session-Id": sid})
            assert gone.status_code == 404
            assert (
                http.get(
                    served.url(), headers={**AUTH, "Accept": "text/event-stream", "Mcp-Session-Id": sid}
                ).status_code
                == 404
            )
            still = http.post(served.url(), json=tools_list, headers={**base, "Mcp-Session-Id": other})
            assert still.status_code == 200  # ending one session leaves the others
            assert http.put(served.url(), headers=AUTH).status_code == 405
        # The server saw no client's initialize, nor notifications/initialized again, nor the ping.
        assert received_methods(received).count("initialize") == 1
        assert received_methods(received).count("notifications/initialized") == 1
        assert "ping" not in received_methods(received)


def test_get_stream_is_one_per_session(tmp_path: Path) -> None:
    with gateway(tmp_path) as (served, _received):
        _, sid = initialize(served)
        headers = {**AUTH, "Accept": "text/event-stream", "Mcp-Session-Id": sid}
        with httpx.Client(timeout=10) as http, http.stream("GET", served.url(), headers=headers) as stream:
            assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
            assert http.get(served.url(), headers=headers).status_code == 409
            assert http.get(served.url(), headers={**headers, "Accept": "application/json"}).status_code == 406


def test_legacy_sse_transport_as_mcp_proxy_served_it(tmp_path: Path) -> None:
    with gateway(tmp_path) as (served, _received), httpx.Client(timeout=10) as http:
        with http.stream("GET", served.url(path="/sse"), headers=AUTH) as stream:
            assert stream.status_code == 200
            lines = stream.iter_lines()
            assert next(lines) == "event: endpoint"
            endpoint = next(lines).removeprefix("data: ")
            assert endpoint.startswith("/messages/?session_id=")
            post = served.url(path=endpoint)
            ping = {"jsonrpc": "2.0", "id": 5, "method": "ping"}
            accepted = http.post(post, json=ping, headers=AUTH)
            assert accepted.status_code == 202 and accepted.text == "Accepted"
            data = next(line for line in lines if line.startswith("data:"))
            assert json.loads(data[5:]) == {"jsonrpc": "2.0", "id": 5, "result": {}}
            assert http.post(post, content=b"{nope", headers=AUTH).status_code == 400
        no_id = http.post(served.url(path="/messages/"), json=ping, headers=AUTH)
        assert no_id.status_code == 400 and no_id.text == "session_id is required"
        assert http.post(served.url(path="/messages/?session_id=xyz"), json=ping, headers=AUTH).status_code == 400
        time.sleep(0.2)  # the stream above is closed: its session ends
        assert http.post(post, json=ping, headers=AUTH).status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [
        ("GET", "/status", {}, 200),
        ("GET", "/status", {"Authorization": "Bearer wrong"}, 200),
        ("POST", "/mcp", {}, 401),
        ("POST", "/mcp", {"Authorization": f"Bearer {TOKEN}x"}, 401),
        ("POST", "/mcp", {"Authorization": f"Basic {TOKEN}"}, 401),
        ("GET", "/sse", {"Authorization": "Bearer"}, 401),
        ("POST", "/messages/?session_id=" + "a" * 32, {}, 401),
        ("GET", "/anything-new", {}, 401),
        ("GET", "/anything-new", AUTH, 404),
        ("POST", "/mcp", {**AUTH, **ACCEPT}, 400),  # past auth: not JSON-RPC
    ],
)
def test_bearer_token_guards_everything_but_status(tmp_path: Path, method, path, headers, status) -> None:
    with gateway(tmp_path) as (served, _received):
        response = httpx.request(method, served.url(path=path), headers=headers, content=b"{}", timeout=10)
        assert response.status_code == status
        if status == 401:
            assert response.headers["www-authenticate"].startswith("Bearer")
            assert response.json()["error"] == "unauthorized"
        if path == "/status":
            assert response.json() == {"status": "ok"}
        assert TOKEN not in served.output()


def test_a_line_that_is_not_json_rpc_is_ignored_with_a_warning(tmp_path: Path) -> None:
    with gateway(tmp_path, "--junk") as (served, _received):

        async def work(session: ClientSession, _notes: list) -> str:
            return (await session.call_tool("echo", {"text": "still fine"})).content[0].text

        assert anyio.run(_session_with, served.url(), streamablehttp_client, work) == "still fine"
        assert "ignoring a non-JSON-RPC line on the server's stdout" in served.output()
        assert "Serving relay-fixture 0.1.0 on " in served.output()


def test_a_body_over_the_limit_is_refused_with_413(tmp_path: Path) -> None:
    with gateway(tmp_path) as (served, received):
        big = b'{"jsonrpc": "2.0", "method": "notifications/x", "params": {"pad": "' + b"x" * (5 << 20) + b'"}}'
        response = httpx.post(served.url(), content=big, headers={**AUTH, **ACCEPT}, timeout=30)
        assert response.status_code == 413
        assert httpx.get(served.url(path="/status"), timeout=5).status_code == 200  # and it keeps serving
        assert "notifications/x" not in received_methods(received)


def test_sigterm_with_streams_open_ends_them_and_exits_within_2s(tmp_path: Path) -> None:
    with gateway(tmp_path) as (served, _received), httpx.Client(timeout=10) as http:
        _, sid = initialize(served)
        get_headers = {**AUTH, "Accept": "text/event-stream", "Mcp-Session-Id": sid}
        call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "slow",
                "arguments": {"steps": 1, "delay": 30}}}  # fmt: skip
        post_headers = {**AUTH, **ACCEPT, "Mcp-Session-Id": sid}
        with (
            http.stream("GET", served.url(), headers=get_headers) as standalone,
            http.stream("GET", served.url(path="/sse"), headers=AUTH) as legacy,
            http.stream("POST", served.url(), json=call, headers=post_headers) as pending,
        ):
            assert (standalone.status_code, legacy.status_code, pending.status_code) == (200, 200, 200)
            started = time.monotonic()
            served.process.terminate()
            assert served.wait(5) == 0
            assert time.monotonic() - started < 2.0


def test_a_cancellation_reaches_the_server_under_the_id_the_server_knows(tmp_path: Path) -> None:
    with gateway(tmp_path) as (served, received), httpx.Client(timeout=10) as http:
        _, sid = initialize(served)
        headers = {**AUTH, **ACCEPT, "Mcp-Session-Id": sid}
        call = {"jsonrpc": "2.0", "id": "mine", "method": "tools/call", "params": {"name": "slow",
                "arguments": {"steps": 1, "delay": 30}}}  # fmt: skip
        with http.stream("POST", served.url(), json=call, headers=headers) as pending:
            assert pending.status_code == 200
            cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled",
                      "params": {"requestId": "mine", "reason": "changed my mind"}}  # fmt: skip
            assert http.post(served.url(), json=cancel, headers=headers).status_code == 202
            # The stream of the cancelled request ends without an answer (the spec: none is sent).
            assert pending.read() == b""
        deadline = time.monotonic() + 5
        while "notifications/cancelled" not in received_methods(received):
            assert time.monotonic() < deadline, received.read_text()
            time.sleep(0.05)
        seen = [json.loads(line) for line in received.read_text().splitlines()]
        [upstream_call] = [m for m in seen if m.get("method") == "tools/call"]
        [upstream_cancel] = [m for m in seen if m.get("method") == "notifications/cancelled"]
        assert upstream_call["id"] != "mine"  # the server saw the gateway's id for it...
        assert upstream_cancel["params"] == {"requestId": upstream_call["id"], "reason": "changed my mind"}
        assert upstream_call["params"] == call["params"]  # ...and otherwise the request as sent


def test_without_a_token_on_loopback_a_request_for_another_host_is_refused(tmp_path: Path) -> None:
    env = base_env(tmp_path / "home", MCP_RUNTIME="custom", MCP_COMMAND=f"{sys.executable} {FIXTURE}",
                   MCP_HOST="loopback")  # fmt: skip
    with serving(env) as served:
        deadline = time.monotonic() + 30
        while "Serving relay-fixture" not in served.output():
            assert time.monotonic() < deadline and served.process.poll() is None, served.output()
            time.sleep(0.05)
        _, sid = initialize(served)
        assert len(sid) == 32  # its own clients are served
        rebound = {**ACCEPT, "Host": f"attacker.example:{served.port}"}  # a page whose name now points here
        body = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
        assert httpx.post(served.url(), json=body, headers=rebound, timeout=10).status_code == 421
