"""The gateway's HTTP side: HTTP/1.1 (h11 on asyncio) serving /mcp, /sse + /messages/ and /status.

* ``/mcp`` is the streamable HTTP transport (MCP 2025-03-26, 2025-06-18): POST carries client messages;
  one carrying requests is answered with a ``text/event-stream`` holding each response and the progress
  notifications of those requests, then ends (the SDK's default choice; the spec requires clients to
  accept it). A client that accepts only ``application/json`` (mcp-proxy answered all in JSON) gets the
  response(s) as JSON instead, without progress. GET opens the session's stream for server-initiated
  messages (one per session), DELETE ends the session. ``Mcp-Session-Id`` is issued on initialize;
  status codes and error bodies follow the spec and the ``mcp`` SDK's server transport.
* The same ``/mcp`` serves the stateless revision (2026-07-28, ``modern``): a POST whose
  ``MCP-Protocol-Version`` names it (or, without that header and a session, whose body carries its
  per-request ``_meta``) is one request, checked as that revision says (envelope, ``Mcp-Method``/``Mcp-Name``
  against the body, version served: 400 with the supported list) and answered on its own: ``server/discover``
  from the server's initialize result, ``subscriptions/listen`` as a stream of the notifications it asked for,
  anything else relayed in a session of its own. Its answer is JSON with the revision's status (404 for an
  unknown method) unless a notification comes first, which makes it an event stream; a client that goes away
  cancels it. GET and DELETE of that revision get 405. Handshake-era clients are served as before, on the same
  URL at the same time.
* ``/sse`` + ``/messages/?session_id=`` is the HTTP+SSE transport (2024-11-05) as the SDK serves it: an
  ``endpoint`` event first, 202 for each POST, every answer on the stream.
* ``/status`` is open; everything else needs what ``auth.allows`` accepts (``auth.BearerAuth``, or
  ``oauth.OAuthAuth``, which also serves its Protected Resource Metadata, open, at the well-known paths).
* Host and Origin (the spec's DNS-rebinding guard) are checked only without a token on a loopback-only
  gateway (``local_only``); with a token, the token guards (docs/dns-rebinding-guard.md).

Messages go to and come from :class:`relay.Relay` (the multiplexing), unchanged otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import h11

from . import modern
from .relay import DEFAULT_HEADER_VERSION, KNOWN_VERSIONS, Relay, Session, encode, kind, result

log = logging.getLogger("catwalk.http")

MAX_BODY = 4 * 1024 * 1024  # one POSTed JSON-RPC message or batch; larger is refused with 413
MAX_HEADERS = 64 * 1024  # h11's bound on a request's head
KEEP_ALIVE_S = 5.0  # an idle keep-alive connection is closed after this long
SSE_PING_S = 15.0  # a comment on idle streams, so proxies on the way do not close them
SESSION_IDLE_S = 30 * 60  # a streamable HTTP session unused this long is ended (the SDK's default)
# Bytes waiting on one stream for its client to read them; past this the client is dropped (it may reconnect)
# rather than let it grow the gateway's memory without bound. Any one message, however large, still fits.
MAX_STREAM_BUFFER = 32 * 1024 * 1024
# Bytes written for the server that it has not read yet; past this, new client messages get 503 (a stuck
# server must not make the gateway hold every POST in memory).
MAX_BACKLOG = 64 * 1024 * 1024
DENIED = b'{"error":"unauthorized","detail":"send Authorization: Bearer <token>"}'
FORBIDDEN = b'{"error":"forbidden","detail":"the access token does not grant this server (WWW-Authenticate says why)"}'
# Abuse bounds (figures in the README). A request's head and body must arrive within REQUEST_DEADLINE_S of
# its first byte, however slowly they trickle; an idle keep-alive connection waits KEEP_ALIVE_S for one.
REQUEST_DEADLINE_S = 30.0
# Concurrent connections: overall (also kept under the descriptor limit, see `connection_cap`), and of those
# that have not shown a valid token yet. A newcomer past either cap displaces the oldest connection still
# without one (a slow head, an idle probe), so Fly's /status check and token holders keep getting in.
MAX_CONNECTIONS = 1024
MAX_UNAUTHENTICATED = 256
# Sessions (streamable HTTP + legacy SSE) and open streams. When full, the oldest idle one (no request in
# flight) is ended for a new one; with none idle, the new one gets 503 saying which limit was reached.
MAX_SESSIONS = 1000
MAX_STREAMS = 512
# After a refusal on the head, what the client still sends is read and dropped for this long (at most this
# much), so our close does not reset the connection before it read the answer.
LINGER_S = 1.0
LINGER_BYTES = 256 * 1024

INVALID_REQUEST = -32600
PARSE_ERROR = -32700


class Request:
    def __init__(self, event: h11.Request, body: bytes) -> None:
        self.method = event.method.decode("ascii", "replace")
        target = event.target.decode("ascii", "replace")
        self.path, _, self.query = target.partition("?")
        self.raw_headers = list(event.headers)
        self.headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in event.headers}
        self.body = body


class Reply:
    """A complete response."""

    def __init__(self, status: int, body: bytes = b"", content_type: str | None = None, **headers: str) -> None:
        self.status, self.body = status, body
        self.headers = [(k.replace("_", "-"), v) for k, v in headers.items()]
        if content_type:
            self.headers.append(("content-type", content_type))


def json_reply(status: int, value: Any, **headers: str) -> Reply:
    return Reply(status, json.dumps(value).encode(), "application/json", **headers)


def rpc_error(status: int, message: str, code: int = INVALID_REQUEST, **headers: str) -> Reply:
    """An HTTP error with a JSON-RPC error body, as the SDK's streamable HTTP transport sends them."""
    body = {"jsonrpc": "2.0", "id": "server-error", "error": {"code": code, "message": message}}
    return json_reply(status, body, **headers)


class Stream:
    """An SSE response being written: a relay channel. ``put`` never blocks (clients read at their pace), so
    a slow client never holds up the server's stdout or other sessions; one that falls more than
    :data:`MAX_STREAM_BUFFER` behind is dropped instead (:meth:`abort`).

    ``collect``: the responses are gathered in :attr:`answers` for one JSON body instead (notifications,
    which a JSON body has no place for, are dropped).
    """

    def __init__(
        self, expected: int = 0, on_close: Callable[[Stream], None] | None = None, collect: bool = False
    ) -> None:
        self.answer: dict[str, Any] | None = None  # the last response put (a stateless request's only one)
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.buffered = 0  # bytes in the queue
        self.expected = expected  # responses to write before the stream ends (0: until closed)
        self.closed = False
        self._on_close = on_close
        self.answers: list[dict[str, Any]] | None = [] if collect else None
        self.abort: Callable[[], None] | None = None  # set by the connection writing it: drop the client
        self.used = asyncio.get_running_loop().time()  # last message written (eviction: oldest idle first)
        self.session: Session | None = None  # set on a listening stream (GET /mcp, /sse): it may be evicted

    def put(self, message: dict[str, Any] | None) -> None:
        """Write ``message``; None: one answer this stream waits for will not come (see ``relay.Send``)."""
        if self.closed:
            return
        if message is not None and kind(message) == "response":
            self.answer = message
        if message is not None and self.answers is not None:
            if kind(message) == "response":
                self.answers.append(message)
        elif message is not None:
            self._queue(b"event: message\r\ndata: " + encode(message) + b"\r\n\r\n")
        if self.expected and (message is None or kind(message) == "response"):
            self.expected -= 1
            if not self.expected:
                self.close()

    @property
    def carries_requests(self) -> bool:
        """Whether a server request (or a notification) can be written on it: not on a JSON-only answer."""
        return self.answers is None

    carries_notifications = carries_requests

    def event(self, name: str, data: str) -> None:
        self._queue(f"event: {name}\r\ndata: {data}\r\n\r\n".encode())

    def _queue(self, data: bytes) -> None:
        if self.closed:
            return
        if self.buffered > MAX_STREAM_BUFFER:
            log.warning("a client read nothing of its last %d MiB on a stream: dropped", self.buffered >> 20)
            self.close()
            if self.abort is not None:
                self.abort()
            return
        self.buffered += len(data)
        self.used = asyncio.get_running_loop().time()
        self.queue.put_nowait(data)

    async def take(self) -> bytes | None:
        """The next event to write; None: the stream is over."""
        data = await self.queue.get()
        if data is not None:
            self.buffered -= len(data)
        return data

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.queue.put_nowait(None)

    def ended(self) -> None:
        """The response is over (all written, or the client went away)."""
        self.closed = True
        if self._on_close is not None:
            callback, self._on_close = self._on_close, None
            callback(self)


class Streaming:
    """A response whose body is ``stream``'s events (or, when it collects, its answers as one JSON body)."""

    def __init__(self, stream: Stream, batch: bool = False, defer: bool = False, **headers: str) -> None:
        self.status = 200
        self.stream = stream
        self.batch = batch  # a collected answer is a JSON array (the request was a batch)
        # A stateless request's answer: JSON with the revision's status unless a notification comes before it.
        self.defer = defer
        self.extra = [(k.replace("_", "-"), v) for k, v in headers.items()]
        self.headers = [("content-type", "text/event-stream"), ("cache-control", "no-cache, no-transform"), *self.extra]


def new_session_id() -> str:
    """128 bits from the OS's CSPRNG as 32 hex digits (the form the SDK's SSE transport uses: a UUID's hex)."""
    return os.urandom(16).hex()


# How long Fly's proxy tries to reach a session's machine before it brings the request back (a session held
# by a machine that is not running is gone anyway: the client gets its 404 sooner).
REPLAY_TIMEOUT = "5s"


def session_owner(sid: str) -> str:
    """The machine a session id names (``<machine id>.<32 hex>``, issued on Fly), "" for an id without one."""
    owner, dot, _ = sid.rpartition(".")
    return owner if dot else ""


def _loopback(authority: str) -> bool:
    """Whether a Host header's or an origin's ``host[:port]`` is loopback (localhost, 127.0.0.1, [::1])."""
    host = authority if authority.endswith("]") else authority.rsplit(":", 1)[0]
    return host.lower() in ("localhost", "127.0.0.1", "[::1]")


def _accepts(request: Request) -> tuple[bool, bool]:
    types = [t.strip() for t in request.headers.get("accept", "").split(",")]
    return any(t.startswith("application/json") for t in types), any(t.startswith("text/event-stream") for t in types)


class Router:
    """Routes HTTP requests to the two MCP transports over one :class:`Relay`."""

    def __init__(
        self, relay: Relay, to_server: Callable[[dict[str, Any]], None], auth: Any, local_only: bool = False,
        backlog: Callable[[], int] = lambda: 0, machine_id: str | None = None,
    ) -> None:  # fmt: skip
        self.relay = relay
        # On Fly every machine of a server runs its own gateway behind one URL, and Fly's proxy balances each
        # request: a session id names the machine that holds it, so another machine can have Fly replay there.
        self.machine_id = os.environ.get("FLY_MACHINE_ID", "") if machine_id is None else machine_id
        self.to_server = to_server
        self.backlog = backlog  # bytes waiting for the server's stdin
        self.auth = auth
        # What a 401 says and which paths hold discovery metadata (OAuth's PRM; none for the static token).
        self.challenge: str = auth.challenge() if hasattr(auth, "challenge") else 'Bearer realm="mcp"'
        self.metadata_paths: frozenset[str] = getattr(auth, "metadata_paths", frozenset())
        self.local_only = local_only  # no token, loopback only: refuse other Hosts and Origins (see above)
        self.streamable: dict[str, float] = {}  # session id -> last use (loop time)
        # Open connections, oldest first; those that have not shown a valid token yet, oldest first.
        self.connections: dict[Connection, None] = {}
        self.unauthenticated: dict[Connection, None] = {}
        self.max_connections = connection_cap()
        self.legacy: set[str] = set()
        self.streams: set[Stream] = set()

    def deliver(self, sends: list[Any]) -> None:
        for send in sends:
            if send.channel is None:
                self.to_server(send.message)
            else:
                send.channel.put(send.message)

    def from_server(self, message: dict[str, Any]) -> None:
        self.deliver(self.relay.from_server(message))

    def admit(self, request: Request) -> Reply | None:
        """The refusal a request gets on its head alone (Host, Origin, token), else None.

        The connection asks before reading any body byte, so an unauthenticated client costs no more than
        its head; a refusal closes the connection (the unread body would otherwise be taken for a request).
        """
        if self.local_only and not _loopback(request.headers.get("host", "")):
            return Reply(421, b"Invalid Host header", "text/plain", connection="close")
        origin = request.headers.get("origin")
        if self.local_only and origin is not None and not _loopback(origin.partition("://")[2] or "-"):
            return Reply(403, b"Invalid Origin header", "text/plain", connection="close")
        if self.auth is None:
            return None
        if hasattr(self.auth, "refusal"):  # OAuth: 401 or 403, with a challenge saying what was wrong
            refused = self.auth.refusal(request.path, request.raw_headers)
            if refused is not None:
                status, challenge = refused
                body = DENIED if status == 401 else FORBIDDEN
                return Reply(status, body, "application/json", www_authenticate=challenge, connection="close")
        elif not self.auth.allows(request.path, request.raw_headers):
            return Reply(401, DENIED, "application/json", www_authenticate=self.challenge, connection="close")
        return None

    def route(self, request: Request) -> Reply | Streaming:
        refused = self.admit(request)
        if refused is not None:
            return refused
        if request.path == "/status":
            if request.method in ("GET", "HEAD"):
                return json_reply(200, {"status": "ok"})
            return Reply(405, b"Method Not Allowed", "text/plain", allow="GET, HEAD")
        if request.path in self.metadata_paths:
            if request.method in ("GET", "HEAD"):  # RFC 9728: where a web connector learns its issuer
                return json_reply(200, self.auth.document)
            return Reply(405, b"Method Not Allowed", "text/plain", allow="GET, HEAD")
        if request.path in ("/mcp", "/mcp/"):
            return self.mcp(request)
        if request.path == "/sse":
            if request.method != "GET":
                return Reply(405, b"Method Not Allowed", "text/plain", allow="GET")
            return self.sse_open()
        if request.path in ("/messages", "/messages/"):
            return self.sse_post(request)
        return Reply(404, b"Not Found", "text/plain")

    def new_sid(self) -> str:
        """A session id that names the Fly machine serving it, when there is one."""
        return f"{self.machine_id}.{new_session_id()}" if self.machine_id else new_session_id()

    def replay_to(self, request: Request, sid: str) -> str | None:
        """For a session this gateway does not hold: the ``fly-replay`` value that sends it to the machine its
        id names, if any.

        The 404 carrying it is never seen by the client: Fly's proxy replays the request on that machine (without
        the proxy the client gets the 404 the spec asks for). When that machine cannot be reached (destroyed,
        stopped and not started within the timeout), ``fallback=force_self`` brings the request back here marked
        ``fly-replay-failed``. A replayed or returned request is not sent on again: its session is gone.
        """
        owner = session_owner(sid)
        if not owner or not self.machine_id or owner == self.machine_id:
            return None
        if request.headers.get("fly-replay-src") or request.headers.get("fly-replay-failed"):
            return None
        return f"instance={owner};timeout={REPLAY_TIMEOUT};fallback=force_self"

    # --- streamable HTTP -------------------------------------------------------------------------------

    def mcp(self, request: Request) -> Reply | Streaming:
        if request.method == "POST":
            return self.mcp_post(request)
        stateless = request.headers.get("mcp-protocol-version") in modern.MODERN_VERSIONS
        if request.method in ("GET", "DELETE") and stateless:
            return Reply(405, b"", allow="POST")  # the stateless revision has no session stream nor session
        if request.method == "GET":
            return self.mcp_get(request)
        if request.method == "DELETE":
            return self.mcp_delete(request)
        return rpc_error(405, "Method Not Allowed", allow="GET, POST, DELETE")

    def _session(self, request: Request) -> Session | Reply:
        """The request's session, or the error the spec asks for (400 missing, 404 unknown, 400 version)."""
        sid = request.headers.get("mcp-session-id")
        if not sid:
            return rpc_error(400, "Bad Request: Missing session ID")
        session = self.relay.sessions.get(sid) if sid in self.streamable else None
        if session is None:
            replay = self.replay_to(request, sid)
            if replay:
                return rpc_error(404, "Not Found: Session held by another machine", fly_replay=replay)
            return rpc_error(404, "Not Found: Session not found")
        version = request.headers.get("mcp-protocol-version", DEFAULT_HEADER_VERSION)
        if version not in KNOWN_VERSIONS:
            supported = ", ".join(KNOWN_VERSIONS)
            return rpc_error(
                400, f"Bad Request: Unsupported protocol version: {version}. Supported versions: {supported}"
            )
        self.streamable[sid] = asyncio.get_running_loop().time()
        return session

    def mcp_post(self, request: Request) -> Reply | Streaming:
        has_json, has_sse = _accepts(request)
        if not has_json:
            return rpc_error(406, "Not Acceptable: Client must accept application/json and text/event-stream")
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            return rpc_error(415, "Unsupported Media Type: Content-Type must be application/json")
        try:
            body = json.loads(request.body)
        except (ValueError, UnicodeDecodeError) as exc:
            return rpc_error(400, f"Parse error: {exc}", PARSE_ERROR)
        if modern.is_modern(request.headers, body):
            return self.modern_post(request, body, has_sse)
        messages = body if isinstance(body, list) else [body]
        if not messages or any(kind(m) is None for m in messages):
            return rpc_error(400, "Validation error: not a JSON-RPC 2.0 message or batch")
        requests = [m for m in messages if kind(m) == "request"]
        initialize = [m for m in requests if m["method"] == "initialize"]
        if initialize:
            if len(messages) > 1:
                return rpc_error(400, "Invalid Request: initialize must be sent alone, not in a batch")
            if request.headers.get("mcp-session-id"):
                session = self._session(request)
                if isinstance(session, Reply):
                    return session
            else:
                full = self._room_for_session()
                if full is not None:
                    return full
                sid = self.new_sid()
                session = self.relay.open(sid)
                self.streamable[sid] = asyncio.get_running_loop().time()
        else:
            session = self._session(request)
            if isinstance(session, Reply):
                return session
        headers = {"mcp_session_id": session.sid}
        if self.backlog() > MAX_BACKLOG:
            return rpc_error(503, "Service Unavailable: the MCP server is not reading its input", retry_after="5")
        if not requests:
            for message in messages:
                self.deliver(self.relay.from_client(session, message, None))
            return Reply(202, **headers)
        full = self._room_for_stream()
        if full is not None:
            return full
        stream = Stream(expected=len(requests), on_close=self.streams.discard, collect=not has_sse)
        self.streams.add(stream)
        for message in messages:
            self.deliver(self.relay.from_client(session, message, stream))
        return Streaming(stream, batch=isinstance(body, list), **headers)

    def modern_post(self, request: Request, body: Any, has_sse: bool) -> Reply | Streaming:
        """One request of the stateless revision: checked, then answered here or relayed in a session of its own."""
        what = kind(body) if isinstance(body, dict) else None
        if what not in ("request", "notification"):
            error = {"code": INVALID_REQUEST, "message": "Body must be a single JSON-RPC request or notification"}
            return json_reply(400, {"jsonrpc": "2.0", "id": None, "error": error})
        try:
            if what == "notification":  # none is defined on this transport: acknowledged, dropped
                modern.check_notification(request.headers)
                return Reply(202)
            duplicated = modern.duplicated_header(request.raw_headers)
            if duplicated:
                raise modern.Rejected(modern.HEADER_MISMATCH, f"{duplicated} header appears more than once")
            modern.check(body, request.headers)
        except modern.Rejected as rejected:
            return json_reply(rejected.status, rejected.error(body.get("id")))
        if body["method"] == "server/discover":
            return json_reply(200, result(body["id"], modern.discover(self.relay.init_result)))
        if body["method"] == "subscriptions/listen" and not has_sse:
            return rpc_error(406, "Not Acceptable: subscriptions/listen answers with text/event-stream")
        if self.backlog() > MAX_BACKLOG:
            return rpc_error(503, "Service Unavailable: the MCP server is not reading its input", retry_after="5")
        sid = new_session_id()
        session = self.relay.open(sid, modern=True)
        session.log_level = modern.log_level(body)

        def done(stream: Stream) -> None:
            self.streams.discard(stream)
            self.end(sid)  # still in flight: the client went away, which cancels it

        if body["method"] == "subscriptions/listen":
            stream = Stream(on_close=done)
            self.streams.add(stream)
            params = body.get("params") if isinstance(body.get("params"), dict) else {}
            wanted = params.get("notifications") if isinstance(params.get("notifications"), dict) else {}
            self.deliver(self.relay.listen(session, body["id"], wanted, stream))
            return Streaming(stream, x_accel_buffering="no")
        stream = Stream(expected=1, on_close=done, collect=not has_sse)
        self.streams.add(stream)
        self.deliver(self.relay.from_client(session, modern.upstream(body), stream))
        return Streaming(stream, defer=True, x_accel_buffering="no")

    def mcp_get(self, request: Request) -> Reply | Streaming:
        if not _accepts(request)[1]:
            return rpc_error(406, "Not Acceptable: Client must accept text/event-stream")
        session = self._session(request)
        if isinstance(session, Reply):
            return session
        if session.stream is not None:
            return rpc_error(409, "Conflict: Only one SSE stream is allowed per session")
        full = self._room_for_stream()
        if full is not None:
            return full

        def detach(stream: Stream) -> None:
            self.streams.discard(stream)
            if session.stream is stream:
                session.stream = None

        session.stream = Stream(on_close=detach)
        session.stream.session = session
        self.streams.add(session.stream)
        return Streaming(session.stream, mcp_session_id=session.sid)

    def mcp_delete(self, request: Request) -> Reply:
        session = self._session(request)
        if isinstance(session, Reply):
            return session
        self.end(session.sid)
        return Reply(200, content_type="application/json", mcp_session_id=session.sid)

    def end(self, sid: str) -> None:
        """End a session (DELETE, idle, legacy stream gone): cancel its requests, close its stream."""
        self.streamable.pop(sid, None)
        self.legacy.discard(sid)
        session = self.relay.sessions.get(sid)
        if session is not None and session.stream is not None:
            session.stream.close()
        self.deliver(self.relay.close(sid))
        log.debug("session %s ended", sid[:8])

    def expire_idle(self, now: float) -> None:
        for sid, used in list(self.streamable.items()):
            session = self.relay.sessions.get(sid)
            if now - used > SESSION_IDLE_S and (session is None or (session.stream is None and not session.pending)):
                log.info("session %s unused for %d s: ended", sid[:8], SESSION_IDLE_S)
                self.end(sid)

    # --- limits ----------------------------------------------------------------------------------------

    def welcome(self, connection: Connection) -> bool:
        """Count a new connection in; past a cap, the oldest one without a token makes room (False: none can)."""
        while len(self.connections) >= self.max_connections or len(self.unauthenticated) >= MAX_UNAUTHENTICATED:
            if not self.unauthenticated:
                return False
            self.farewell(next(iter(self.unauthenticated)), drop=True)
        self.connections[connection] = None
        self.unauthenticated[connection] = None
        return True

    def farewell(self, connection: Connection, drop: bool = False) -> None:
        self.connections.pop(connection, None)
        self.unauthenticated.pop(connection, None)
        if drop:
            connection.drop()

    def _room_for_session(self) -> Reply | None:
        """Room for one more session: the oldest idle one (no stream, nothing in flight) ends if need be."""
        if len(self.relay.sessions) < MAX_SESSIONS:
            return None
        idle = [
            (used, sid)
            for sid, used in self.streamable.items()
            if (session := self.relay.sessions.get(sid)) is None or (session.stream is None and not session.pending)
        ]
        if not idle:
            log.warning("%d sessions, none idle: a new one is refused", MAX_SESSIONS)
            return rpc_error(503, f"Service Unavailable: {MAX_SESSIONS} sessions are open, none idle", retry_after="5")
        _, sid = min(idle)
        log.info("session limit (%d) reached: the oldest idle session %s ends", MAX_SESSIONS, sid[:8])
        self.end(sid)
        return None

    def _room_for_stream(self) -> Reply | None:
        """Room for one more stream: the oldest idle listening stream (GET /mcp, /sse) closes if need be."""
        if len(self.streams) < MAX_STREAMS:
            return None
        idle = [
            (stream.used, id(stream), stream)
            for stream in self.streams
            if stream.session is not None and not (stream.session.sid in self.legacy and stream.session.pending)
        ]
        if not idle:
            log.warning("%d streams open, none idle: a new one is refused", MAX_STREAMS)
            return rpc_error(503, f"Service Unavailable: {MAX_STREAMS} streams are open, none idle", retry_after="5")
        stream = min(idle, key=lambda item: item[:2])[2]
        log.info("stream limit (%d) reached: the oldest idle stream closes", MAX_STREAMS)
        stream.close()
        self.streams.discard(stream)
        return None

    # --- HTTP+SSE (2024-11-05) -----------------------------------------------------------------------------

    def sse_open(self) -> Reply | Streaming:
        full = self._room_for_session() or self._room_for_stream()
        if full is not None:
            return full
        sid = self.new_sid()
        session = self.relay.open(sid)
        self.legacy.add(sid)

        def gone(stream: Stream) -> None:
            self.streams.discard(stream)
            if sid in self.legacy:
                self.end(sid)

        session.stream = Stream(on_close=gone)
        session.stream.session = session
        self.streams.add(session.stream)
        session.stream.event("endpoint", f"/messages/?session_id={sid}")
        return Streaming(session.stream)

    def sse_post(self, request: Request) -> Reply:
        if request.method != "POST":
            return Reply(405, allow="POST")
        values = parse_qs(request.query).get("session_id")
        if not values:
            return Reply(400, b"session_id is required", "text/plain; charset=utf-8")
        owner = session_owner(values[0])
        sid = values[0][len(owner) + 1 :].replace("-", "").lower() if owner else values[0].replace("-", "").lower()
        if len(sid) != 32 or any(c not in "0123456789abcdef" for c in sid):
            return Reply(400, b"Invalid session ID", "text/plain; charset=utf-8")
        sid = f"{owner}.{sid}" if owner else sid
        session = self.relay.sessions.get(sid) if sid in self.legacy else None
        if session is None:
            replay = self.replay_to(request, sid)
            if replay:
                return Reply(404, b"Session held by another machine", "text/plain", fly_replay=replay)
            return Reply(404, b"Could not find session", "text/plain; charset=utf-8")
        try:
            message = json.loads(request.body)
        except (ValueError, UnicodeDecodeError):
            message = None
        messages = message if isinstance(message, list) and message else [message]
        if any(kind(m) is None for m in messages):
            return Reply(400, b"Could not parse message", "text/plain; charset=utf-8")
        if self.backlog() > MAX_BACKLOG:
            return Reply(503, b"The MCP server is not reading its input", "text/plain; charset=utf-8", retry_after="5")
        for one in messages:
            self.deliver(self.relay.from_client(session, one, session.stream))
        return Reply(202, b"Accepted", "text/plain; charset=utf-8")

    def close_streams(self) -> None:
        for stream in list(self.streams):
            stream.close()


# --- HTTP/1.1 connections ------------------------------------------------------------------------------------


REASONS = {200: b"OK", 202: b"Accepted", 400: b"Bad Request", 401: b"Unauthorized", 404: b"Not Found",
           403: b"Forbidden", 405: b"Method Not Allowed", 406: b"Not Acceptable", 409: b"Conflict",
           413: b"Content Too Large", 415: b"Unsupported Media Type", 421: b"Misdirected Request",
           500: b"Internal Server Error", 503: b"Service Unavailable"}  # fmt: skip


def _reason(status: int) -> bytes:
    return REASONS.get(status, b"")


def _status(answer: dict[str, Any]) -> int:
    """The HTTP status of a stateless request's answer: the revision's for its error code, else 200."""
    error = answer.get("error")
    return modern.ERROR_STATUS.get(error.get("code"), 200) if isinstance(error, dict) else 200


class _Closed(Exception):
    pass


def connection_cap() -> int:
    """MAX_CONNECTIONS, kept 64 under the descriptor limit (the server's pipes, logs, accept itself)."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, OSError, ValueError):
        return MAX_CONNECTIONS
    return MAX_CONNECTIONS if soft == resource.RLIM_INFINITY else max(8, min(MAX_CONNECTIONS, soft - 64))


ACCEPT_LOG_INTERVAL_S = 10.0  # the same loop error (EMFILE on accept, ...) is logged once per interval


def quiet_repeats(loop: asyncio.AbstractEventLoop) -> None:
    """Log each kind of event-loop error once per ACCEPT_LOG_INTERVAL_S, with how many were left out.

    With the descriptors exhausted, asyncio reports every failed accept; the same line tens of thousands of
    times helps no one and fills the disk.
    """
    seen: dict[str, tuple[float, int]] = {}

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        key = f"{context.get('message')}|{type(exc).__name__}|{getattr(exc, 'errno', '')}"
        now = loop.time()
        last, skipped = seen.get(key, (float("-inf"), 0))
        if now - last < ACCEPT_LOG_INTERVAL_S:
            seen[key] = (last, skipped + 1)
            return
        seen[key] = (now, 0)
        if skipped:
            context = {**context, "message": f"{context.get('message')} ({skipped} more like it not logged)"}
        loop.default_exception_handler(context)

    loop.set_exception_handler(handle)


class Connection:
    """One client connection: requests in turn (keep-alive), each answered whole or as a stream."""

    def __init__(self, router: Router, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.router = router
        self.reader, self.writer = reader, writer
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADERS)
        peer = writer.get_extra_info("peername") or ("?", 0)
        self.peer = f"[{peer[0]}]:{peer[1]}" if ":" in str(peer[0]) else f"{peer[0]}:{peer[1]}"
        self._read: asyncio.Task[bytes] | None = None
        self.deadline: float | None = None  # the current request's head and body must arrive by then

    def drop(self) -> None:
        """End the connection now (a cap needs its place)."""
        self.writer.transport.abort()

    async def _next_event(self, timeout: float) -> Any:
        while True:
            event = self.conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            now = asyncio.get_running_loop().time()
            wait = timeout if self.deadline is None else min(timeout, self.deadline - now)
            if wait <= 0:
                raise _Closed
            data = await self._receive(wait)
            if self.deadline is None and data:
                self.deadline = now + REQUEST_DEADLINE_S
            self.conn.receive_data(data)

    async def _receive(self, timeout: float | None) -> bytes:
        if self._read is None:
            self._read = asyncio.ensure_future(self.reader.read(65536))
        done, _ = await asyncio.wait({self._read}, timeout=timeout)
        if not done:
            raise _Closed
        task, self._read = self._read, None
        return task.result()

    async def _refuse(self, reply: Reply, request: Request | None = None) -> None:
        """Answer on the head alone and close, letting the client read the answer before the close.

        The body is never read: after our answer the write side is shut (the client sees the end) and what
        it still sends is discarded for a moment, so the close does not reset the connection under its read.
        """
        if request is not None:
            log.info('%s - "%s %s" %d (on the head)', self.peer, request.method, request.path, reply.status)
        if ("connection", "close") not in reply.headers:
            reply.headers.append(("connection", "close"))
        await self._reply(reply)
        self.router.farewell(self)  # done with: a lingering close holds no place under the caps
        with contextlib.suppress(Exception):
            if self._read is not None:
                self._read.cancel()
                self._read = None
            self.writer.write_eof()
            await asyncio.wait_for(self._discard(), LINGER_S)

    async def _discard(self) -> None:
        left = LINGER_BYTES
        while left > 0 and (data := await self.reader.read(65536)):
            left -= len(data)

    async def _send(self, *events: Any) -> None:
        for event in events:
            data = self.conn.send(event)
            if data:
                self.writer.write(data)
        await self.writer.drain()

    async def run(self) -> None:
        try:
            while True:
                self.deadline = None
                event = await self._next_event(KEEP_ALIVE_S)
                if not isinstance(event, h11.Request):  # ConnectionClosed: the client is done
                    return
                names = {key.lower() for key, _ in event.headers}
                if b"transfer-encoding" in names and b"content-length" in names:
                    # Framed by one, perhaps by another hop by the other (request smuggling): RFC 9112 6.1.
                    await self._refuse(Reply(400, b"Both Content-Length and Transfer-Encoding", "text/plain"))
                    return
                head = Request(event, b"")
                prepare = getattr(self.router.auth, "prepare", None)
                if prepare is not None:  # OAuth: the issuer's keys, fetched off the event loop if needed
                    await prepare(head.raw_headers)
                refused = self.router.admit(head)
                if refused is not None:
                    await self._refuse(refused, head)
                    return
                if self.router.auth is not None and self.router.auth.authorized(head.raw_headers):
                    self.router.unauthenticated.pop(self, None)  # it showed the token: no longer displaceable
                body = await self._body(event)
                if body is None:
                    return
                request = Request(event, body)
                try:
                    response = self.router.route(request)
                except Exception:
                    log.exception("error handling %s %s", request.method, request.path)
                    response = rpc_error(500, "Internal Server Error", -32603)
                log.info('%s - "%s %s HTTP/%s" %d', self.peer, request.method, request.path,
                         event.http_version.decode(), response.status)  # fmt: skip
                if isinstance(response, Streaming) and response.stream.answers is not None:
                    await self._reply(await self._collect(response))
                elif isinstance(response, Streaming):
                    await self._stream(response)
                else:
                    await self._reply(response, head=request.method == "HEAD")
                if self.conn.our_state is h11.MUST_CLOSE or self.conn.their_state is not h11.DONE:
                    return
                self.conn.start_next_cycle()
        except (_Closed, ConnectionError, h11.ProtocolError, asyncio.IncompleteReadError) as exc:
            if isinstance(exc, h11.RemoteProtocolError) and self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                with contextlib.suppress(Exception):
                    await self._reply(Reply(exc.error_status_hint, b"Bad Request", "text/plain"))
        except Exception:  # a bug here must end this connection only, never the gateway
            log.exception("error on the connection from %s", self.peer)
        finally:
            self.router.farewell(self)
            if self._read is not None:
                self._read.cancel()
            self.writer.close()

    async def _body(self, head: h11.Request) -> bytes | None:
        """The request's body; None (413 sent, or the client gone) past MAX_BODY (the SDK's limit too)."""
        declared = dict(head.headers).get(b"content-length", b"0")
        if declared.isdigit() and int(declared) > 4 * MAX_BODY:  # not worth reading to the end to say so
            await self._reply(Reply(413, b"Request body too large", "text/plain", connection="close"))
            return None
        if self.conn.they_are_waiting_for_100_continue:  # curl waits 1 s for this before sending a large body
            await self._send(h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue"))
        chunks, size = [], 0
        while True:
            event = await self._next_event(KEEP_ALIVE_S * 6)
            if isinstance(event, h11.Data):
                size += len(event.data)
                if size <= MAX_BODY:
                    chunks.append(event.data)
                elif size > 4 * MAX_BODY:
                    return None
            elif isinstance(event, h11.EndOfMessage):
                if size <= MAX_BODY:
                    return b"".join(chunks)
                # Refused once read whole: a client still sending would not see an answer sent earlier.
                await self._reply(Reply(413, b"Request body too large", "text/plain", connection="close"))
                return None
            else:
                return None

    async def _reply(self, reply: Reply, head: bool = False) -> None:
        headers = [*reply.headers, ("content-length", str(len(reply.body)))]
        await self._send(h11.Response(status_code=reply.status, headers=headers, reason=_reason(reply.status)))
        await self._send(*([] if head else [h11.Data(data=reply.body)]), h11.EndOfMessage())

    async def _collect(self, response: Streaming) -> Reply:
        """Wait for every answer of a POST whose client takes JSON only; then one JSON body (202: none came)."""
        stream = response.stream
        try:
            while await stream.take() is not None:
                pass
        finally:
            stream.ended()
        answers = stream.answers or []
        if not answers:  # every request was cancelled: nothing to answer
            reply = Reply(202)
        else:
            status = _status(answers[0]) if response.defer else 200
            reply = Reply(status, encode(answers if response.batch else answers[0]), "application/json")
        reply.headers.extend(response.extra)
        return reply

    async def _stream(self, response: Streaming) -> None:
        stream = response.stream
        stream.abort = self.writer.transport.abort  # the next write or drain fails: the connection ends
        early = 0  # bytes of the next request(s) received meanwhile, which h11 holds until this one ends
        head = not response.defer  # the head is not written yet (deferred: until an event or a ping is due)
        try:
            if head:
                await self._send(h11.Response(status_code=200, headers=response.headers, reason=b"OK"))
            while True:
                get = asyncio.ensure_future(stream.take())
                if self._read is None:
                    self._read = asyncio.ensure_future(self.reader.read(65536))
                done, _ = await asyncio.wait({get, self._read}, timeout=SSE_PING_S, return_when="FIRST_COMPLETED")
                if get not in done:
                    get.cancel()
                if self._read in done:  # the client sent more (pipelining) or closed the connection
                    data, self._read = self._read.result(), None
                    early += len(data)
                    if not data or early > MAX_HEADERS + MAX_BODY:  # gone, or more than any one request
                        raise _Closed
                    self.conn.receive_data(data)
                if not head and (not done or get in done):
                    item = get.result() if get in done else b""
                    if item and stream.closed and stream.queue.qsize() == 1 and stream.answer is not None:
                        # A stateless request answered before anything else: one JSON body, with its status.
                        reply = Reply(_status(stream.answer), encode(stream.answer), "application/json")
                        return await self._reply(reply)
                    await self._send(h11.Response(status_code=200, headers=response.headers, reason=b"OK"))
                    head = True
                if not done:
                    await self._send(h11.Data(data=b": ping\r\n\r\n"))
                if get in done:
                    item = get.result()
                    if item is None:
                        break
                    await self._send(h11.Data(data=item))
            await self._send(h11.EndOfMessage())
        finally:
            stream.ended()


async def serve_connection(router: Router, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    connection = Connection(router, reader, writer)
    if not router.welcome(connection):  # every place is held by a client that showed the token
        writer.transport.abort()
        return
    await connection.run()
