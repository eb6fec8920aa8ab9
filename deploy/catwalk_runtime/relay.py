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
* a request of the stateless revision (2026-07-28) comes in a session of its own (``Session.modern``) that lives
  as long as its one request; its answer gets the ``resultType`` that revision requires;
* resource subscriptions are per session: the server is subscribed to a URI once, while any session wants it,
  and ``notifications/resources/updated`` goes to the sessions subscribed to that URI only; one session's
  unsubscribe never ends another's updates;
* ``notifications/message`` goes on the stream of the request that caused it when the gateway can tell which
  (exactly one request in flight), else to every handshake-era session's standalone stream; a stateless
  request gets it only if it asked for that level (``io.modelcontextprotocol/logLevel``). list_changed goes to
  every standalone stream and to the ``subscriptions/listen`` streams that asked for it;
* a server request for sampling, elicitation or roots goes to the client whose call caused it when the gateway
  can tell which (exactly one call in flight, from a handshake-era client that declared the capability and can be
  written to), its answer back with the server's id; otherwise it is refused with the reason. A server ``ping``
  is answered here.

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
# What mcp 1.x's ClientSession answers for requests it has no callback for, and the client capability each needs.
REFUSED_SERVER_REQUESTS = {
    "sampling/createMessage": "Sampling not supported",
    "roots/list": "List roots not supported",
    "elicitation/create": "Elicitation not supported",
}
CLIENT_CAPABILITY = {"sampling/createMessage": "sampling", "roots/list": "roots", "elicitation/create": "elicitation"}
# What the gateway declares upstream: it can pass sampling and elicitation to the client that caused them. Not
# roots: servers ask for roots right after initialize, when no client's call is in flight to route it to.
GATEWAY_CAPABILITIES = {"sampling": {}, "elicitation": {"form": {}, "url": {}}}
# Server notifications for every handshake-era standalone stream (anything else unroutable is dropped).
BROADCAST_PREFIXES = ("notifications/message", "notifications/resources/list_changed", "notifications/tools/",
                      "notifications/prompts/")  # fmt: skip
# A list_changed notification and the subscriptions/listen filter field that asks for it.
LISTEN_FLAGS = {
    "notifications/tools/list_changed": "toolsListChanged",
    "notifications/prompts/list_changed": "promptsListChanged",
    "notifications/resources/list_changed": "resourcesListChanged",
}
LOG_LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
SUBSCRIPTION_ID_KEY = "io.modelcontextprotocol/subscriptionId"
# Results the stateless revision requires caching hints on. The gateway cannot know how long the server's answer
# holds, nor whether it depends on who asks: immediately stale, for the same caller only.
CACHEABLE = ("server/discover", "tools/list", "prompts/list", "resources/list", "resources/templates/list",
             "resources/read")  # fmt: skip
CACHE_HINTS = {"ttlMs": 0, "cacheScope": "private"}


def initialize_request(request_id: int = 0) -> dict[str, Any]:
    """The gateway's own initialize, written to the server's stdin right after it is spawned."""
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "initialize",
        "params": {"protocolVersion": LATEST_VERSION, "capabilities": GATEWAY_CAPABILITIES, "clientInfo": GATEWAY_INFO},
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
    """One client's view: its standalone stream (GET /mcp or /sse) and its requests in flight.

    ``modern``: a request of the stateless revision, alone in its session; ``log_level`` the least level of log
    message it asked for (None: none); ``listen`` its ``subscriptions/listen`` filter (with ``stream`` the
    listen response) and ``listen_id`` that request's id. ``capabilities``: what a handshake-era client declared.
    """

    __slots__ = ("capabilities", "listen", "listen_id", "log_level", "modern", "pending", "sid", "stream")

    def __init__(self, sid: str, modern: bool = False) -> None:
        self.sid = sid
        self.modern = modern
        self.stream: Any = None
        self.pending: dict[Any, int] = {}  # client request id -> upstream id
        self.capabilities: dict[str, Any] = {}
        self.log_level: str | None = None
        self.listen: dict[str, Any] | None = None
        self.listen_id: Any = None


class _Route:
    """Where the answer (and progress) of one upstream request goes."""

    __slots__ = ("channel", "client_id", "client_token", "method", "session", "upstream_token")

    def __init__(self, session: Session, client_id: Any, channel: Any, method: str = "") -> None:
        self.session, self.client_id, self.channel, self.method = session, client_id, channel, method
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
        self._subscribers: dict[str, set[Session]] = {}  # resource URI -> sessions subscribed to it
        self._asked: dict[int, tuple[Any, Session]] = {}  # id a client was asked under -> (server's id, session)
        self._next = 1  # 0 is the gateway's own initialize

    def _upstream_id(self) -> int:
        self._next += 1
        return self._next

    def open(self, sid: str, modern: bool = False) -> Session:
        session = self.sessions[sid] = Session(sid, modern)
        return session

    def close(self, sid: str) -> list[Send]:
        """End a session: its requests still in flight are cancelled upstream, its subscriptions dropped (the
        server's ended when no other session wants the URI) and server requests it was asked answered."""
        session = self.sessions.pop(sid, None)
        if session is None:
            return []
        out = []
        for uri in [uri for uri, subscribed in self._subscribers.items() if session in subscribed]:
            out += self._unsubscribe(session, uri)
        for asked_id, (server_id, asked) in list(self._asked.items()):
            if asked is session:
                del self._asked[asked_id]
                out.append(Send(None, error(server_id, INTERNAL_ERROR, "the client's session ended")))
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
        if what == "response":  # a client's answer to a server request the gateway passed on
            asked = self._asked.get(message["id"]) if isinstance(message["id"], int) else None
            if asked is None or asked[1] is not session:
                return []
            del self._asked[message["id"]]
            return [Send(None, {**message, "id": asked[0]})]
        if what == "notification":
            if method == "notifications/initialized":
                return []
            if method == "notifications/cancelled":
                return self._cancel(session, message)
            return [Send(None, message)]
        client_id = message["id"]
        params = message.get("params") if isinstance(message.get("params"), dict) else {}
        if method == "initialize":
            version = negotiate(params.get("protocolVersion"), self.server_version)
            if isinstance(params.get("capabilities"), dict):
                session.capabilities = params["capabilities"]
            return [Send(channel, result(client_id, {**self.init_result, "protocolVersion": version}))]
        if method == "ping":
            return [Send(channel, self._answer(session, result(client_id, {})))]
        if method in ("resources/subscribe", "resources/unsubscribe") and isinstance(params.get("uri"), str):
            subscribed = self._subscribers.get(params["uri"], set())
            first, last = not subscribed, subscribed == {session}
            if method == "resources/subscribe":
                self._subscribers.setdefault(params["uri"], set()).add(session)
            elif session in subscribed:
                subscribed.discard(session)
                if not subscribed:
                    del self._subscribers[params["uri"]]
            if not (first if method == "resources/subscribe" else last):  # the server's state does not change
                return [Send(channel, self._answer(session, result(client_id, {})))]
        if client_id in session.pending:  # the spec forbids reusing an id; its answer and cancel would be ambiguous
            return [Send(channel, error(client_id, INVALID_REQUEST, f"Request id {client_id!r} is already in use"))]
        upstream_id = self._upstream_id()
        route = _Route(session, client_id, channel, method)
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

    def _answer(self, session: Session, message: dict[str, Any], method: str = "") -> dict[str, Any]:
        """An answer as the session's revision wants it: the stateless one requires ``resultType`` and, on lists
        and reads, caching hints (:data:`CACHE_HINTS` unless the server gave its own)."""
        value = message.get("result")
        if not session.modern or not isinstance(value, dict):
            return message
        hints = CACHE_HINTS if method in CACHEABLE and "resultType" not in value else {}
        return {**message, "result": {"resultType": "complete", **hints, **value}}

    def listen(self, session: Session, listen_id: Any, wanted: dict[str, Any], channel: Any) -> list[Send]:
        """Open a ``subscriptions/listen`` stream: the acknowledgement (the filter the server's capabilities can
        honour) goes first; the server is subscribed to each URI no other session wanted yet."""
        caps = self.init_result.get("capabilities") if isinstance(self.init_result.get("capabilities"), dict) else {}
        agreed: dict[str, Any] = {}
        for field, cap in (("toolsListChanged", "tools"), ("promptsListChanged", "prompts"),
                           ("resourcesListChanged", "resources")):  # fmt: skip
            if wanted.get(field) is True and isinstance(caps.get(cap), dict) and caps[cap].get("listChanged"):
                agreed[field] = True
        resources = caps.get("resources") if isinstance(caps.get("resources"), dict) else {}
        uris = wanted.get("resourceSubscriptions")
        if isinstance(uris, list) and resources.get("subscribe"):
            agreed["resourceSubscriptions"] = [uri for uri in uris if isinstance(uri, str)]
        session.listen, session.listen_id, session.stream = agreed, listen_id, channel
        ack = {"_meta": {SUBSCRIPTION_ID_KEY: listen_id}, "notifications": agreed}
        out = [Send(channel, {"jsonrpc": "2.0", "method": "notifications/subscriptions/acknowledged", "params": ack})]
        for uri in agreed.get("resourceSubscriptions", []):
            if not self._subscribers.get(uri):
                subscribe = {"jsonrpc": "2.0", "id": self._upstream_id(), "method": "resources/subscribe"}
                out.append(Send(None, {**subscribe, "params": {"uri": uri}}))  # its answer is dropped
            self._subscribers.setdefault(uri, set()).add(session)
        return out

    def _unsubscribe(self, session: Session, uri: str) -> list[Send]:
        subscribed = self._subscribers.get(uri, set())
        subscribed.discard(session)
        if subscribed:
            return []
        self._subscribers.pop(uri, None)
        unsubscribe = {"jsonrpc": "2.0", "id": self._upstream_id(), "method": "resources/unsubscribe"}
        return [Send(None, {**unsubscribe, "params": {"uri": uri}})]  # its answer is dropped

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
            answer = self._answer(route.session, {**message, "id": route.client_id}, route.method)
            return [Send(route.channel, answer)]
        if what == "request":
            if method == "ping":
                return [Send(None, result(message["id"], {}))]
            return self._server_request(message)
        if method == "notifications/progress":
            params = message.get("params") if isinstance(message.get("params"), dict) else {}
            upstream_id = self._tokens.get(params.get("progressToken"))
            route = self._routes.get(upstream_id) if upstream_id is not None else None
            if route is None:
                return []
            return [Send(route.channel, {**message, "params": {**params, "progressToken": route.client_token}})]
        if method == "notifications/cancelled":
            return self._server_cancelled(message)
        if method == "notifications/message":
            route = self._only_route()
            if route is not None and route.session.modern:
                return [Send(route.channel, message)] if _at_least(route.session.log_level, message) else []
            if route is not None and getattr(route.channel, "carries_notifications", True):
                return [Send(route.channel, message)]
        if method == "notifications/resources/updated":
            params = message.get("params") if isinstance(message.get("params"), dict) else {}
            subscribed = self._subscribers.get(params.get("uri"), set())  # type: ignore[arg-type]
            return [self._to_stream(s, message) for s in subscribed if s.stream is not None]
        if not isinstance(method, str):
            return []
        out = []
        for session in self.sessions.values():
            if session.stream is None:
                continue
            if session.listen is not None and session.listen.get(LISTEN_FLAGS.get(method, "")):
                out.append(self._to_stream(session, message))
            elif session.listen is None and not session.modern and method.startswith(BROADCAST_PREFIXES):
                out.append(Send(session.stream, message))
        return out

    def _only_route(self) -> _Route | None:
        """The one request in flight, when there is exactly one: what caused a message the server sent now."""
        return next(iter(self._routes.values())) if len(self._routes) == 1 else None

    def _to_stream(self, session: Session, message: dict[str, Any]) -> Send:
        """A notification for a session's stream; on a ``subscriptions/listen`` stream it names the subscription."""
        if session.listen is None:
            return Send(session.stream, message)
        params = message.get("params") if isinstance(message.get("params"), dict) else {}
        meta = params.get("_meta") if isinstance(params.get("_meta"), dict) else {}  # type: ignore[union-attr]
        tagged = {**params, "_meta": {**meta, SUBSCRIPTION_ID_KEY: session.listen_id}}
        return Send(session.stream, {**message, "params": tagged})

    def _server_request(self, message: dict[str, Any]) -> list[Send]:
        """Pass a sampling, elicitation or roots request to the client whose call caused it, or refuse it,
        saying why, when the gateway cannot tell which client that is or that client cannot answer."""
        method = message["method"]
        refused = REFUSED_SERVER_REQUESTS.get(method)
        if refused is None:
            return [Send(None, error(message["id"], METHOD_NOT_FOUND, f"Method not found: {method}"))]
        route = self._only_route()
        if route is None:
            reason = f"the gateway cannot tell which client's call caused it ({len(self._routes)} calls in flight)"
        elif route.session.modern:
            reason = "the calling client uses the stateless revision (2026-07-28), which takes no server requests"
        elif CLIENT_CAPABILITY[method] not in route.session.capabilities:
            reason = f"the calling client did not declare the {CLIENT_CAPABILITY[method]} capability"
        else:
            channel = route.channel if getattr(route.channel, "carries_requests", True) else route.session.stream
            if channel is not None:
                asked_id = self._upstream_id()
                self._asked[asked_id] = (message["id"], route.session)
                return [Send(channel, {**message, "id": asked_id})]
            reason = "the calling client has no open stream to carry it"
        return [Send(None, error(message["id"], INVALID_REQUEST, f"{refused}: {reason}"))]

    def _server_cancelled(self, message: dict[str, Any]) -> list[Send]:
        """The server gave up on a request it asked a client: that client is told, under the id it was asked."""
        params = message.get("params") if isinstance(message.get("params"), dict) else {}
        for asked_id, (server_id, session) in list(self._asked.items()):
            if server_id == params.get("requestId") and session.stream is not None:  # type: ignore[union-attr]
                del self._asked[asked_id]
                return [Send(session.stream, {**message, "params": {**params, "requestId": asked_id}})]
        return []


def _at_least(level: str | None, notification: dict[str, Any]) -> bool:
    """Whether a ``notifications/message`` is at or above the least level a request asked for."""
    params = notification.get("params") if isinstance(notification.get("params"), dict) else {}
    got = params.get("level")  # type: ignore[union-attr]
    return level in LOG_LEVELS and got in LOG_LEVELS and LOG_LEVELS.index(got) >= LOG_LEVELS.index(level)
