"""The gateway's HTTP limits in-process: sessions and streams caps, per-request deadline, connection caps,
quiet accept errors. Each limit is lowered for the test; connections are real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import h11

from catwalk_runtime import mcp_http, relay

INIT = {"protocolVersion": "2025-06-18", "capabilities": {}, "serverInfo": {"name": "up", "version": "1"}}
ACCEPT = [("accept", "application/json, text/event-stream"), ("content-type", "application/json")]
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18"}}
CALL = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "slow"}}
TOKEN = "limits-token"


def request(method: str, headers: list[tuple[str, str]], body: object = None) -> object:
    event = h11.Request(method=method, target="/mcp", headers=[("host", "x"), *headers])
    return mcp_http.Request(event, json.dumps(body).encode() if body is not None else b"")


def new_routes() -> object:
    return mcp_http.Router(relay.Relay(INIT), [].append, None)


def open_session(routes: object) -> str:
    answer = routes.mcp_post(request("POST", ACCEPT, INITIALIZE))
    answer.stream.ended()  # as the connection does once it wrote the answer
    return dict(answer.headers)["mcp-session-id"]


def test_past_the_session_cap_the_oldest_idle_session_ends_and_with_none_idle_a_new_one_is_refused(
    monkeypatch,
) -> None:
    monkeypatch.setattr(mcp_http, "MAX_SESSIONS", 3)

    async def scenario() -> None:
        routes = new_routes()
        busy = open_session(routes)
        assert routes.route(request("POST", [*ACCEPT, ("mcp-session-id", busy)], CALL)).status == 200
        await asyncio.sleep(0.01)
        oldest_idle = open_session(routes)
        await asyncio.sleep(0.01)
        newer_idle = open_session(routes)
        fourth = open_session(routes)  # takes the place of the oldest idle one
        assert set(routes.relay.sessions) == {busy, newer_idle, fourth}
        gone = routes.route(request("POST", [*ACCEPT, ("mcp-session-id", oldest_idle)], CALL))
        assert gone.status == 404
        for sid in (newer_idle, fourth):
            assert routes.route(request("POST", [*ACCEPT, ("mcp-session-id", sid)], CALL)).status == 200
        refused = routes.mcp_post(request("POST", ACCEPT, INITIALIZE))
        assert refused.status == 503 and "3 sessions are open, none idle" in refused.body.decode()
        assert len(routes.relay.sessions) == 3

    asyncio.run(scenario())


def test_past_the_stream_cap_the_oldest_idle_listening_stream_closes_and_requests_in_flight_are_kept(
    monkeypatch,
) -> None:
    monkeypatch.setattr(mcp_http, "MAX_STREAMS", 2)

    async def scenario() -> None:
        routes = new_routes()
        first, second, third = open_session(routes), open_session(routes), open_session(routes)
        listen = [("accept", "text/event-stream")]
        old = routes.route(request("GET", [*listen, ("mcp-session-id", first)])).stream
        await asyncio.sleep(0.01)
        newer = routes.route(request("GET", [*listen, ("mcp-session-id", second)])).stream
        third_stream = routes.route(request("GET", [*listen, ("mcp-session-id", third)])).stream
        assert old.closed and not newer.closed and not third_stream.closed
        # Two requests in flight fill the cap once the listening streams are gone: nothing idle to close.
        for stream in (newer, third_stream):
            stream.ended()
        for sid in (first, second):
            assert routes.route(request("POST", [*ACCEPT, ("mcp-session-id", sid)], CALL)).status == 200
        refused = routes.route(request("POST", [*ACCEPT, ("mcp-session-id", third)], CALL))
        assert refused.status == 503 and "2 streams are open, none idle" in refused.body.decode()

    asyncio.run(scenario())


class Auth:
    def authorized(self, headers: list[tuple[bytes, bytes]]) -> bool:
        return (b"authorization", f"Bearer {TOKEN}".encode()) in [(k.lower(), v) for k, v in headers]

    def allows(self, path: str, headers: list[tuple[bytes, bytes]]) -> bool:
        return path == "/status" or self.authorized(headers)


async def serve(routes: object) -> tuple[asyncio.AbstractServer, int]:
    server = await asyncio.start_server(lambda r, w: mcp_http.serve_connection(routes, r, w), "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def closed_within(reader: asyncio.StreamReader, timeout: float) -> bool:
    try:
        while await asyncio.wait_for(reader.read(65536), timeout):
            pass
    except asyncio.TimeoutError:
        return False
    except ConnectionError:
        pass
    return True


def test_a_request_trickled_byte_by_byte_is_cut_off_at_the_request_deadline(monkeypatch) -> None:
    monkeypatch.setattr(mcp_http, "REQUEST_DEADLINE_S", 0.6)

    async def scenario() -> float:
        routes = mcp_http.Router(relay.Relay(INIT), [].append, Auth())
        server, port = await serve(routes)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        started = time.monotonic()
        head = b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"a" * 100
        for byte in head:  # one byte every 50 ms: each read well within the keep-alive wait
            writer.write(bytes([byte]))
            await writer.drain()
            if reader.at_eof():
                break
            await asyncio.sleep(0.05)
            if writer.transport.is_closing() or reader.at_eof():
                break
        assert await closed_within(reader, 2.0)
        elapsed = time.monotonic() - started
        writer.close()
        server.close()
        return elapsed

    elapsed = asyncio.run(scenario())
    assert 0.5 < elapsed < 1.5, f"closed after {elapsed:.2f} s"


def test_past_the_unauthenticated_cap_the_oldest_connection_without_a_token_makes_room(monkeypatch) -> None:
    monkeypatch.setattr(mcp_http, "MAX_UNAUTHENTICATED", 3)

    async def scenario() -> None:
        routes = mcp_http.Router(relay.Relay(INIT), [].append, Auth())
        server, port = await serve(routes)
        # A token holder on a kept-alive connection is not displaced by anyone.
        holder_r, holder_w = await asyncio.open_connection("127.0.0.1", port)
        holder_w.write(f"GET /status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode())
        assert (await holder_r.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        await holder_r.readexactly(len(b'{"status": "ok"}'))
        idle = []
        for _ in range(5):  # silent connections: no head yet
            idle.append(await asyncio.open_connection("127.0.0.1", port))
            await asyncio.sleep(0.02)
        assert [await closed_within(r, 0.3) for r, _ in idle] == [True, True, False, False, False]
        assert len(routes.unauthenticated) == 3
        holder_w.write(f"GET /status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode())
        assert (await holder_r.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        for _, w in [*idle, (holder_r, holder_w)]:
            w.close()
        server.close()

    asyncio.run(scenario())


def test_a_repeated_event_loop_error_is_logged_once_per_interval(caplog) -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        mcp_http.quiet_repeats(loop)
        error = OSError(24, "Too many open files")
        for _ in range(1000):
            loop.call_exception_handler({"message": "socket.accept() out of system resource", "exception": error})
        loop.call_exception_handler({"message": "another error", "exception": ValueError("x")})

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        asyncio.run(scenario())
    messages = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert len([m for m in messages if "out of system resource" in m]) == 1, messages
    assert len([m for m in messages if "another error" in m]) == 1


def test_the_connection_cap_stays_under_the_descriptor_limit(monkeypatch) -> None:
    import resource

    monkeypatch.setattr(resource, "getrlimit", lambda _which: (256, 4096))
    assert mcp_http.connection_cap() == 192
    monkeypatch.setattr(resource, "getrlimit", lambda _which: (1 << 20, 1 << 20))
    assert mcp_http.connection_cap() == mcp_http.MAX_CONNECTIONS
