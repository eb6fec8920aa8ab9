"""Multiplexing many MCP client sessions onto one stdio server: the pure part of the gateway (no I/O).

The gateway initializes the server once, itself; each client session is then a view of that one upstream
session. Messages are plain ``dict``s parsed from JSON and pass through unchanged except for what sharing
one upstream requires:

* client request ids become unique upstream ids (the gateway's own counter) and are restored on the
  response; ``progressToken`` in a request's ``_meta`` is remapped the same way, and a server progress
  notification goes back, with the client's token, only to the session and channel of that request;
* ``notifications/cancelled`` from a client names the upstream id of its request; a session that ends
  cancels its requests still in flight;
* ``initialize`` is answered from the server's cached result (version negotiated per client, see
  :func:`negotiate`), ``notifications/initialized`` is not forwarded again and ``ping`` is answered here;
* a server notification that concerns no single request (list_changed, resources/updated, logging) goes
  to every session's standalone stream; a server ``ping`` is answered here; sampling, roots and
  elicitation requests are refused with the errors mcp-proxy's client session gave (it declares none of
  those capabilities, nor does the gateway), since no single client can be asked on behalf of all.

A *channel* is opaque here: whatever the HTTP side writes a message to (one POST's SSE response, a GET
stream, a legacy SSE stream). The relay returns :class:`Send` actions; the caller performs them.
"""

from __future__ import annotations

import json
import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# Protocol revisions in order; the gateway asks the server for the newest.
KNOWN_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
LATEST_VERSION = KNOWN_VERSIONS[-1]
# Assumed for a request without an MCP-Protocol-Version header (streamable HTTP spec, 2025-06-18).
DEFAULT_HEADER_VERSION = "2025-03-26"
GATEWAY_INFO = {"name": "catwalk-gateway", "version": "1"}

INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INTERNAL_ERROR = -32603
CONNECTION_CLOSED = -32000  # the code the SDKs' sessions give a request whose connection ended
# What mcp 1.x's ClientSession (mcp-proxy's upstream client) answers for requests it has no callback for.
REFUSED_SERVER_REQUESTS = {
    "sampling/createMessage": "Sampling not supported",
    "roots/list": "List roots not supported",
    "elicitation/create": "Elicitation not supported",
}
# Server notifications for every session (anything else unroutable is dropped with a reason).
BROADCAST_PREFIXES = ("notifications/message", "notifications/resources/", "notifications/tools/",
                      "notifications/prompts/")  # fmt: skip


def initialize_request(request_id: int = 0) -> dict[str, Any]:
    """The gateway's own initialize, written to the server's stdin right after it is spawned."""
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "initialize",
        "params": {"protocolVersion": LATEST_VERSION, "capabilities": {}, "clientInfo": GATEWAY_INFO},
    }


INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


def encode(message: Any) -> bytes:
    """Compact UTF-8 JSON; ASCII escapes only if the message holds a lone surrogate (valid JSON, no UTF-8)."""
    try:
        return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()
    except UnicodeEncodeError:
        return json.dumps(message, separators=(",", ":")).encode()


def kind(message: Any) -> str | None:
    """``request``, ``notification`` or ``response`` for a JSON-RPC 2.0 message, else None (invalid)."""
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        return None
    has_id = "id" in message and isinstance(message["id"], (str, int)) and not isinstance(message["id"], bool)
    if isinstance(message.get("method"), str):
        if "id" not in message:
            return "notification"
        return "request" if has_id else None
    if ("result" in message) != ("error" in message) and "id" in message:
        return "response"
    return None


def negotiate(requested: Any, server_version: str) -> str:
    """The version a conformant server answers: the client's when it can speak it, else its own.

    The upstream chose ``server_version`` for the gateway's newest request. The official SDKs support
    every earlier revision too, so a client asking for a known revision no newer than the server's gets
    it back; anything else (unknown, newer) gets the server's.
    """
    if (
        isinstance(requested, str)
        and requested in KNOWN_VERSIONS
        and server_version in KNOWN_VERSIONS
        and KNOWN_VERSIONS.index(requested) <= KNOWN_VERSIONS.index(server_version)
    ):
        return requested
    return server_version


def result(request_id: Any, value: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "result": value}


def error(request_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


MAX_LINE = 64 * 1024 * 1024  # one message from the server; a longer line is skipped, not held in memory
# Where the id of a response sits: first in the Python SDK's serialization, last in the TypeScript SDK's.
_ID_FIRST = re.compile(rb'^\s*\{\s*"jsonrpc"\s*:\s*"2\.0"\s*,\s*"id"\s*:\s*(\d+)\s*,\s*"(?:result|error)"')
_ID_LAST = re.compile(rb'"jsonrpc"\s*:\s*"2\.0"\s*,\s*"id"\s*:\s*(\d+)\s*\}\s*$')


class TooLong:
    """A line past the limit: only its ends are kept, to find which request it answered."""

    __slots__ = ("head", "tail")

    def __init__(self, head: bytes, tail: bytes) -> None:
        self.head, self.tail = head, tail

    def response_id(self) -> int | None:
        found = _ID_FIRST.match(self.head) or _ID_LAST.search(self.tail)
        return int(found.group(1)) if found else None


class Lines:
    """The server's stdout cut into lines, in time linear in its size (a pipe read is at most 64 KiB, so a
    large answer comes in hundreds of chunks: joining the whole buffer again at each one is quadratic and
    froze every session for seconds). A line longer than ``limit`` comes out as a :class:`TooLong`."""

    ENDS = 256  # bytes kept of each end of a line too long

    def __init__(self, limit: int = MAX_LINE) -> None:
        self.limit = limit
        self._parts: list[bytes] = []
        self._size = 0
        self._skipped: TooLong | None = None  # within a line past the limit: only its ends are kept

    def feed(self, chunk: bytes) -> list[bytes | TooLong]:
        lines: list[bytes | TooLong] = []
        start = 0
        while (end := chunk.find(b"\n", start)) != -1:
            piece = chunk[start:end]
            if self._skipped is None and self._size + len(piece) > self.limit:
                self._parts.append(piece)
                self._skip()
                piece = b""
            if self._skipped is not None:
                self._skipped.tail = (self._skipped.tail + piece)[-self.ENDS :]
                lines.append(self._skipped)
            else:
                lines.append(b"".join([*self._parts, piece]) if self._parts else piece)
            self._parts, self._size, self._skipped = [], 0, None
            start = end + 1
        rest = chunk[start:]
        if rest and self._skipped is None:
            self._size += len(rest)
            self._parts.append(rest)
            if self._size > self.limit:
                self._skip()
        elif rest:
            self._skipped.tail = (self._skipped.tail + rest)[-self.ENDS :]  # type: ignore[union-attr]
        return lines

    def _skip(self) -> None:
        head = b"".join(self._parts)
        self._skipped = TooLong(head[: self.ENDS], head[-self.ENDS :])
        self._parts, self._size = [], 0


class Send:
    """Deliver ``message`` to ``channel`` (a client's), or to the server when ``channel`` is None.

    ``message`` None: no answer will come on ``channel`` for one of its requests (cancelled, or its session
    ended), so a channel waiting for a set number of answers need not wait for it.
    """

    __slots__ = ("channel", "message")

    def __init__(self, channel: Any, message: dict[str, Any] | None) -> None:
        self.channel, self.message = channel, message

    def __repr__(self) -> str:
        return f"Send({self.channel!r}, {self.message!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Send) and (self.channel, self.message) == (other.channel, other.message)


class Session:
    """One client's view: its standalone stream (GET /mcp or /sse) and its requests in flight."""

    __slots__ = ("pending", "sid", "stream")

    def __init__(self, sid: str) -> None:
        self.sid = sid
        self.stream: Any = None
        self.pending: dict[Any, int] = {}  # client request id -> upstream id


class _Route:
    """Where the answer (and progress) of one upstream request goes."""

    __slots__ = ("channel", "client_id", "client_token", "session", "upstream_token")

    def __init__(self, session: Session, client_id: Any, channel: Any) -> None:
        self.session, self.client_id, self.channel = session, client_id, channel
        self.client_token: Any = None
        self.upstream_token: Any = None


class Relay:
    """Sessions, id and progress-token maps, and where each server message goes."""

    def __init__(self, init_result: dict[str, Any]) -> None:
        self.init_result = init_result
        self.server_version = str(init_result.get("protocolVersion", LATEST_VERSION))
        self.sessions: dict[str, Session] = {}
        self._routes: dict[int, _Route] = {}  # upstream request id -> where its answer goes
        self._tokens: dict[str, int] = {}  # upstream progress token -> upstream request id
        self._next = 1  # 0 is the gateway's own initialize

    def _upstream_id(self) -> int:
        self._next += 1
        return self._next

    def open(self, sid: str) -> Session:
        session = self.sessions[sid] = Session(sid)
        return session

    def close(self, sid: str) -> list[Send]:
        """End a session: its requests still in flight are cancelled upstream."""
        session = self.sessions.pop(sid, None)
        if session is None:
            return []
        out = []
        for upstream_id in list(session.pending.values()):
            route = self._forget(upstream_id)
            params = {"requestId": upstream_id, "reason": "client session ended"}
            out.append(Send(None, {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": params}))
            if route is not None and route.channel is not None:
                out.append(Send(route.channel, None))
        session.pending.clear()
        return out

    def _forget(self, upstream_id: int) -> _Route | None:
        route = self._routes.pop(upstream_id, None)
        if route is not None:
            route.session.pending.pop(route.client_id, None)
            if route.upstream_token is not None:
                self._tokens.pop(route.upstream_token, None)
        return route

    def abandon(self, reason: str) -> list[Send]:
        """Answer every request in flight with an error: the server will never answer (it exited, or the
        gateway stops). Without it an SDK client whose stream ends unanswered waits forever."""
        out = []
        for upstream_id in list(self._routes):
            route = self._forget(upstream_id)
            if route is not None and route.channel is not None:
                out.append(Send(route.channel, error(route.client_id, CONNECTION_CLOSED, reason)))
        return out

    def too_long(self, line: TooLong) -> list[Send]:
        """An answer past :data:`MAX_LINE`: its request is answered with an error instead of never."""
        upstream_id = line.response_id()
        route = self._forget(upstream_id) if upstream_id is not None else None
        if route is None or route.channel is None:
            return []
        text = f"the server's answer is over the gateway's {MAX_LINE >> 20} MiB limit"
        return [Send(route.channel, error(route.client_id, INTERNAL_ERROR, text))]

    def in_flight(self) -> int:
        return len(self._routes)

    # --- client -> server --------------------------------------------------------------------------------

    def from_client(self, session: Session, message: dict[str, Any], channel: Any) -> list[Send]:
        """Route one valid JSON-RPC message from a client; answers for requests go to ``channel``."""
        method = message.get("method")
        what = kind(message)
        if what == "response":
            return []  # the gateway forwards no server request to clients: nothing can be awaiting this
        if what == "notification":
            if method == "notifications/initialized":
                return []
            if method == "notifications/cancelled":
                return self._cancel(session, message)
            return [Send(None, message)]
        client_id = message["id"]
        if method == "initialize":
            params = message.get("params") if isinstance(message.get("params"), dict) else {}
            version = negotiate(params.get("protocolVersion"), self.server_version)
            return [Send(channel, result(client_id, {**self.init_result, "protocolVersion": version}))]
        if method == "ping":
            return [Send(channel, result(client_id, {}))]
        if client_id in session.pending:  # the spec forbids reusing an id; its answer and cancel would be ambiguous
            return [Send(channel, error(client_id, INVALID_REQUEST, f"Request id {client_id!r} is already in use"))]
        upstream_id = self._upstream_id()
        route = _Route(session, client_id, channel)
        forwarded = {**message, "id": upstream_id}
        params = message.get("params")
        meta = params.get("_meta") if isinstance(params, dict) else None
        if isinstance(meta, dict) and "progressToken" in meta:
            route.client_token = meta["progressToken"]
            route.upstream_token = f"p{upstream_id}"
            self._tokens[route.upstream_token] = upstream_id
            forwarded["params"] = {**params, "_meta": {**meta, "progressToken": route.upstream_token}}
        self._routes[upstream_id] = route
        session.pending[client_id] = upstream_id
        return [Send(None, forwarded)]

    def _cancel(self, session: Session, message: dict[str, Any]) -> list[Send]:
        params = message.get("params")
        if not isinstance(params, dict) or params.get("requestId") not in session.pending:
            return []  # already answered, or not this session's request
        upstream_id = session.pending[params["requestId"]]
        route = self._forget(upstream_id)  # the server will not answer (or its late answer is dropped)
        forwarded = Send(None, {**message, "params": {**params, "requestId": upstream_id}})
        return [forwarded] if route is None or route.channel is None else [forwarded, Send(route.channel, None)]

    # --- server -> client --------------------------------------------------------------------------------

    def from_server(self, message: dict[str, Any]) -> list[Send]:
        """Route one valid JSON-RPC message from the server."""
        what = kind(message)
        method = message.get("method")
        if what == "response":
            route = self._forget(message["id"]) if isinstance(message["id"], int) else None
            if route is None:
                return []  # cancelled, or for a session gone
            return [Send(route.channel, {**message, "id": route.client_id})]
        if what == "request":
            if method == "ping":
                return [Send(None, result(message["id"], {}))]
            text = REFUSED_SERVER_REQUESTS.get(method)
            code = INVALID_REQUEST if text else METHOD_NOT_FOUND
            return [Send(None, error(message["id"], code, text or f"Method not found: {method}"))]
        if method == "notifications/progress":
            params = message.get("params") if isinstance(message.get("params"), dict) else {}
            upstream_id = self._tokens.get(params.get("progressToken"))
            route = self._routes.get(upstream_id) if upstream_id is not None else None
            if route is None:
                return []
            return [Send(route.channel, {**message, "params": {**params, "progressToken": route.client_token}})]
        if method == "notifications/cancelled":
            return []  # the server gave up on a request of its own: the gateway answered those at once
        if isinstance(method, str) and method.startswith(BROADCAST_PREFIXES):
            return [Send(s.stream, message) for s in self.sessions.values() if s.stream is not None]
        return []
