"""The stateless MCP revision (2026-07-28) at the front door: what tells its requests apart and what checks them.

Pure (no I/O). A request of that revision carries its protocol version, client info and capabilities in
``params._meta`` and mirrors its method (and the tool, prompt or resource it names) into the ``MCP-Protocol-Version``,
``Mcp-Method`` and ``Mcp-Name`` headers. The gateway serves it in front of a server that only knows the
``initialize`` handshake: it answers ``server/discover`` from the server's one initialize result and relays every
other request with the per-request envelope taken off (the upstream session was negotiated once, by the gateway).
Rejections follow the spec's ladder and statuses, in the order the ``mcp`` SDK's server checks them.
"""

from __future__ import annotations

import base64
import binascii
import re

from .relay import KNOWN_VERSIONS, LOG_LEVELS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any

MODERN_VERSIONS = ("2026-07-28",)

PROTOCOL_VERSION_KEY = "io.modelcontextprotocol/protocolVersion"
CLIENT_INFO_KEY = "io.modelcontextprotocol/clientInfo"
CLIENT_CAPABILITIES_KEY = "io.modelcontextprotocol/clientCapabilities"
LOG_LEVEL_KEY = "io.modelcontextprotocol/logLevel"
SERVER_INFO_KEY = "io.modelcontextprotocol/serverInfo"
SUBSCRIPTION_ID_KEY = "io.modelcontextprotocol/subscriptionId"
# The envelope describes the client to the gateway; the upstream session was negotiated by the gateway itself.
ENVELOPE_KEYS = (PROTOCOL_VERSION_KEY, CLIENT_INFO_KEY, CLIENT_CAPABILITIES_KEY, LOG_LEVEL_KEY)

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
HEADER_MISMATCH = -32020
MISSING_CLIENT_CAPABILITY = -32021
UNSUPPORTED_VERSION = -32022
# The HTTP status of an error answer (spec: streamable HTTP "Protocol Version Header", "Server Validation"); any
# other error goes out as 200, as the SDK's server does.
ERROR_STATUS = {PARSE_ERROR: 400, INVALID_REQUEST: 400, INVALID_PARAMS: 400, HEADER_MISMATCH: 400,
                MISSING_CLIENT_CAPABILITY: 400, UNSUPPORTED_VERSION: 400, METHOD_NOT_FOUND: 404}  # fmt: skip

# The method whose body value the Mcp-Name header mirrors, and which field of params holds it.
NAME_BEARING = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
ROUTING_HEADERS = ("mcp-protocol-version", "mcp-method", "mcp-name")

_SENTINEL = re.compile(r"^=\?base64\?(.*)\?=$")


class Rejected(Exception):
    """A request the revision says to refuse: its JSON-RPC error code, message and data (the status follows)."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data

    @property
    def status(self) -> int:
        return ERROR_STATUS.get(self.code, 200)

    def error(self, request_id: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            body["data"] = self.data
        return {"jsonrpc": "2.0", "id": request_id, "error": body}


def is_modern(headers: Mapping[str, str], body: Any) -> bool:
    """Whether a POST belongs to the stateless revision.

    Its ``MCP-Protocol-Version`` header names that revision, or, without a session, any revision other than the
    handshake ones (an unknown one is then told the versions served); or, without that header and without a
    session, its body carries the per-request protocol version (it is then told the header is missing).
    ``initialize`` always opens a session, and a session's request with an unknown version stays in its session
    (told, as before, which handshake revisions are served).
    """
    if isinstance(body, dict) and body.get("method") == "initialize":
        return False
    version = headers.get("mcp-protocol-version")
    session = "mcp-session-id" in headers
    if version is not None:
        return version in MODERN_VERSIONS or (not session and version not in KNOWN_VERSIONS)
    if session or not isinstance(body, dict):
        return False
    params = body.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    return isinstance(meta, dict) and PROTOCOL_VERSION_KEY in meta


def decode_header(value: str | None) -> str | None:
    """A header value as sent, or the text inside the ``=?base64?…?=`` sentinel; None if that is malformed."""
    if value is None:
        return None
    found = _SENTINEL.fullmatch(value)
    if found is None:
        return value
    try:
        raw = base64.b64decode(found.group(1), validate=True)
        if base64.b64encode(raw).decode("ascii") != found.group(1):
            return None
        return raw.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None


def duplicated_header(raw_headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """A routing header sent twice (first-copy and last-copy readers would disagree), or None."""
    seen: set[str] = set()
    for name, _ in raw_headers:
        key = name.decode("latin-1").lower()
        if key in ROUTING_HEADERS:
            if key in seen:
                return key
            seen.add(key)
    return None


def check(message: dict[str, Any], headers: Mapping[str, str]) -> str:
    """The request's protocol version once its envelope and headers pass the revision's checks; else
    :class:`Rejected` for the first that fails: envelope (-32602), headers against body (-32020), version
    served (-32022 with the supported list)."""
    params = message.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    if not isinstance(meta, dict):
        raise Rejected(INVALID_PARAMS, f"params._meta must be an object carrying {PROTOCOL_VERSION_KEY!r} and "
                       f"{CLIENT_CAPABILITIES_KEY!r}")  # fmt: skip
    missing = [key for key in (PROTOCOL_VERSION_KEY, CLIENT_CAPABILITIES_KEY) if key not in meta]
    if missing:
        raise Rejected(INVALID_PARAMS, f"params._meta is missing the required key(s): {', '.join(missing)}")
    version = meta[PROTOCOL_VERSION_KEY]
    header = headers.get("mcp-protocol-version")
    if header is None or header != version:
        raise Rejected(HEADER_MISMATCH, "MCP-Protocol-Version header does not match params._meta's protocol version")
    method = message.get("method")
    if headers.get("mcp-method") != method:
        raise Rejected(HEADER_MISMATCH, "Mcp-Method header does not match the request's method")
    field = NAME_BEARING.get(method)  # type: ignore[arg-type]
    named = params.get(field) if field is not None else None  # type: ignore[union-attr]
    if named is not None and decode_header(headers.get("mcp-name")) != named:
        raise Rejected(HEADER_MISMATCH, f"Mcp-Name header does not match the request's {field!r}")
    if version not in MODERN_VERSIONS:
        data = {"supported": list(MODERN_VERSIONS), "requested": version}
        raise Rejected(UNSUPPORTED_VERSION, "Unsupported protocol version", data)
    return version


def check_notification(headers: Mapping[str, str]) -> None:
    """A notification POST names a version served (the revision defines no other header rule for one)."""
    version = headers.get("mcp-protocol-version", "")
    if version not in MODERN_VERSIONS:
        data = {"supported": list(MODERN_VERSIONS), "requested": version}
        raise Rejected(UNSUPPORTED_VERSION, "Unsupported protocol version", data)


def discover(init_result: Mapping[str, Any]) -> dict[str, Any]:
    """``server/discover``'s result from the server's initialize result: versions, capabilities, identity and
    instructions, as the revision lays them out."""
    result: dict[str, Any] = {
        "resultType": "complete",
        "supportedVersions": list(MODERN_VERSIONS),
        "capabilities": init_result.get("capabilities") or {},
        "ttlMs": 0,  # the revision requires caching hints here; see relay.CACHE_HINTS
        "cacheScope": "private",
    }
    if isinstance(init_result.get("serverInfo"), dict):
        result["_meta"] = {SERVER_INFO_KEY: init_result["serverInfo"]}
    if isinstance(init_result.get("instructions"), str):
        result["instructions"] = init_result["instructions"]
    return result


def upstream(message: dict[str, Any]) -> dict[str, Any]:
    """The request as the handshake-era server is sent it: the per-request envelope taken off ``_meta``
    (``progressToken`` and any other key stay), ``_meta`` dropped when nothing else was in it."""
    params = message.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    if not isinstance(meta, dict):
        return message
    kept = {k: v for k, v in meta.items() if k not in ENVELOPE_KEYS}
    rest = {k: v for k, v in params.items() if k != "_meta"}  # type: ignore[union-attr]
    return {**message, "params": {**rest, "_meta": kept} if kept else rest}


def log_level(message: dict[str, Any]) -> str | None:
    """The minimum log level a request asked for in its ``_meta`` (None: it wants no log messages)."""
    params = message.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    level = meta.get(LOG_LEVEL_KEY) if isinstance(meta, dict) else None
    return level if level in LOG_LEVELS else None
