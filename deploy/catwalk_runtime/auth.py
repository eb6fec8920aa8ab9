"""The bearer check of the HTTP side: deny by default, constant time, nothing of the token leaked."""

from __future__ import annotations

import hashlib
import hmac

OPEN_PATHS = frozenset({"/status"})


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


class BearerAuth:
    """Require ``Authorization: Bearer <token>`` on every path but ``/status``.

    Deny by default (``/mcp``, ``/sse``, ``/messages/`` and anything added later), so a new route is never
    accidentally public. Both sides are hashed before ``hmac.compare_digest``: constant time, and the
    token's length does not leak either.
    """

    metadata_paths: frozenset[str] = frozenset()  # nothing to discover: the token is configured by hand
    document = None

    def __init__(self, token: str) -> None:
        self._want = _digest(token.encode())

    def authorized(self, headers: list[tuple[bytes, bytes]]) -> bool:
        for key, value in headers:
            if key.lower() == b"authorization":
                scheme, _, credential = value.strip().partition(b" ")
                return scheme.lower() == b"bearer" and hmac.compare_digest(_digest(credential.strip()), self._want)
        return False

    def allows(self, path: str, headers: list[tuple[bytes, bytes]]) -> bool:
        return path in OPEN_PATHS or self.authorized(headers)

    def challenge(self) -> str:
        """The ``WWW-Authenticate`` of a 401."""
        return 'Bearer realm="mcp"'
