"""The gateway's HTTP routing (catwalk_runtime.mcp_http) without processes or sockets: sessions that outlive use."""

from __future__ import annotations

import asyncio
import json

import h11

from catwalk_runtime import mcp_http, relay

INIT = {"protocolVersion": "2025-06-18", "capabilities": {}, "serverInfo": {"name": "up", "version": "1"}}
ACCEPT = [("accept", "application/json, text/event-stream"), ("content-type", "application/json")]


def request(method: str, headers: list[tuple[str, str]], body: object = None) -> object:
    event = h11.Request(method=method, target="/mcp", headers=[("host", "x"), *headers])
    return mcp_http.Request(event, json.dumps(body).encode() if body is not None else b"")


def test_an_unused_session_ends_after_the_idle_limit_but_not_one_in_use() -> None:
    async def scenario() -> None:
        upstream: list[dict] = []
        routes = mcp_http.Router(relay.Relay(INIT), upstream.append, None)
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18"}}
        idle = dict(routes.mcp_post(request("POST", ACCEPT, init)).headers)["mcp-session-id"]
        busy = dict(routes.mcp_post(request("POST", ACCEPT, init)).headers)["mcp-session-id"]
        call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "slow"}}
        assert routes.route(request("POST", [*ACCEPT, ("mcp-session-id", busy)], call)).status == 200
        later = asyncio.get_running_loop().time() + mcp_http.SESSION_IDLE_S + 1
        routes.expire_idle(later)
        gone = routes.route(request("POST", [*ACCEPT, ("mcp-session-id", idle)], call))
        assert gone.status == 404
        assert busy in relay_sessions(routes)  # a request in flight keeps it
        upstream_id = upstream[-1]["id"]
        routes.from_server({"jsonrpc": "2.0", "id": upstream_id, "result": {}})
        routes.expire_idle(later)
        assert busy not in relay_sessions(routes)

    asyncio.run(scenario())


def relay_sessions(routes: object) -> set[str]:
    return set(routes.relay.sessions)


def test_a_stream_whose_client_stops_reading_is_cut_off_at_the_buffer_limit(monkeypatch) -> None:
    monkeypatch.setattr(mcp_http, "MAX_STREAM_BUFFER", 10_000)

    async def scenario() -> None:
        routes = mcp_http.Router(relay.Relay(INIT), [].append, None)
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18"}}
        sid = dict(routes.mcp_post(request("POST", ACCEPT, init)).headers)["mcp-session-id"]
        stalled = routes.route(request("GET", [("accept", "text/event-stream"), ("mcp-session-id", sid)])).stream
        aborted: list[bool] = []
        stalled.abort = lambda: aborted.append(True)  # what the connection does: drop the TCP connection
        note = {"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": "x" * 500}}
        for _ in range(1000):  # ~0.5 MB of broadcasts that nobody reads
            routes.from_server(note)
        assert aborted == [True] and stalled.closed
        assert stalled.queue.qsize() < 30  # bounded: what was queued up to the limit, then the end marker
        stalled.ended()  # the connection's end, once aborted
        assert routes.relay.sessions[sid].stream is None  # the session lives on; its client may GET again

    asyncio.run(scenario())


def test_without_a_token_a_loopback_gateway_refuses_other_hosts_and_origins_dns_rebinding() -> None:
    def status(routes: object, headers: list[tuple[str, str]]) -> int:
        event = h11.Request(method="GET", target="/status", headers=headers)
        return routes.route(mcp_http.Request(event, b"")).status

    local = mcp_http.Router(relay.Relay(INIT), [].append, None, local_only=True)
    assert status(local, [("host", "127.0.0.1:8080")]) == 200
    assert status(local, [("host", "[::1]:8080")]) == 200
    assert status(local, [("host", "localhost"), ("origin", "http://localhost:6274")]) == 200  # e.g. the Inspector
    assert status(local, [("host", "attacker.example:8080")]) == 421  # a rebound name still says whose it is
    assert status(local, [("host", "127.0.0.1:8080"), ("origin", "https://attacker.example")]) == 403
    assert status(local, [("host", "127.0.0.1:8080"), ("origin", "null")]) == 403
    # Behind Fly's proxy (or with a token) the Host is the app's name and the token is what guards.
    public = mcp_http.Router(relay.Relay(INIT), [].append, None)
    assert status(public, [("host", "my-app.fly.dev"), ("origin", "https://app.example")]) == 200


def test_while_the_server_reads_nothing_of_a_large_backlog_new_messages_get_503() -> None:
    async def scenario() -> None:
        backlog = [0]
        routes = mcp_http.Router(relay.Relay(INIT), [].append, None, backlog=lambda: backlog[0])
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18"}}
        sid = dict(routes.mcp_post(request("POST", ACCEPT, init)).headers)["mcp-session-id"]
        call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "x"}}
        backlog[0] = mcp_http.MAX_BACKLOG + 1  # the server stopped reading its stdin
        refused = routes.route(request("POST", [*ACCEPT, ("mcp-session-id", sid)], call))
        assert refused.status == 503 and dict(refused.headers)["retry-after"]
        assert routes.relay.sessions[sid].pending == {}  # not queued for the server
        backlog[0] = 0
        assert routes.route(request("POST", [*ACCEPT, ("mcp-session-id", sid)], call)).status == 200

    asyncio.run(scenario())


def test_every_connection_the_gateway_accepts_has_nagle_off() -> None:
    """Small answers go out at once: with Nagle's algorithm on, each waited for the client's delayed ACK."""
    import asyncio
    import socket

    from catwalk_runtime.serve import bind_sockets

    async def main() -> int:
        [listening] = bind_sockets(["127.0.0.1"], 0)
        accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sock = writer.get_extra_info("socket")
            accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(handle, sock=listening)
        async with server:
            _, writer = await asyncio.open_connection(*listening.getsockname()[:2])
            value = await asyncio.wait_for(accepted, 5)
            writer.close()
        return value

    assert asyncio.run(main()) != 0
