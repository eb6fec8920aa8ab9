"""Client ID Metadata Documents: a client whose ``client_id`` is an https URL describes itself there.

The MCP authorization spec prefers this to registration: the authorization server fetches the URL and
takes the client's redirect URIs from it. The fetch is made on behalf of anyone who sends such a
``client_id``, so it is bounded in time and size, follows no redirect, and reaches only public addresses:
the host is resolved once, every address checked (no private, link-local or Fly 6PN address), and the
connection made to the checked address, so a second resolution cannot point it elsewhere. Loopback hosts
are allowed only with ``CATWALK_AS_ALLOW_LOOPBACK_CLIENTS=1``, which the tests set and the stack never does.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from .models import Client

FETCH_TIMEOUT_S = 5.0
MAX_DOCUMENT = 64 * 1024
CACHE_S = 300.0
CACHE_ENTRIES = 256
# A document that could not be had is not asked for again this soon, and only this many are fetched at once:
# whoever sends a URL client_id picks what is fetched, so slow documents must not hold the server's workers.
FAILED_CACHE_S = 30.0
MAX_FETCHES = 2


class ClientDocumentError(Exception):
    """The metadata document could not be had or is not acceptable; the message says which."""


def is_document_url(client_id: str) -> bool:
    return client_id.startswith(("https://", "http://"))


def check_url(client_id: str, allow_loopback: bool) -> urllib.parse.SplitResult:
    """The URL's parts, if it may name a client: https (http only to loopback when allowed), a path, no more."""
    try:
        parts = urllib.parse.urlsplit(client_id)
        port = parts.port
    except ValueError:
        raise ClientDocumentError("the client_id is not a valid URL") from None
    del port
    loopback = parts.hostname in ("127.0.0.1", "::1", "localhost")
    if parts.scheme != "https" and not (allow_loopback and loopback and parts.scheme == "http"):
        raise ClientDocumentError("a URL client_id must use https")
    if not parts.hostname or parts.username or parts.password:
        raise ClientDocumentError("a URL client_id must name a host and carry no credentials")
    if parts.path in ("", "/") or parts.fragment or "/./" in parts.path + "/" or "/../" in parts.path + "/":
        raise ClientDocumentError("a URL client_id must have a path, without dot segments or a fragment")
    return parts


def _allowed(address: str, allow_loopback: bool) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global or (allow_loopback and ip.is_loopback)


def resolve(host: str, port: int, allow_loopback: bool) -> str:
    """One address of ``host`` to connect to; refused if any of its addresses is not public."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ClientDocumentError(f"the client_id's host does not resolve: {exc.strerror or exc}") from None
    addresses = [str(info[4][0]) for info in infos]
    if not addresses or not all(_allowed(address, allow_loopback) for address in addresses):
        raise ClientDocumentError("the client_id's host resolves to an address that is not public")
    return addresses[0]


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to an address already checked, with the certificate checked against the URL's host name."""

    def __init__(self, host: str, port: int, address: str, context: ssl.SSLContext) -> None:
        super().__init__(host, port, timeout=FETCH_TIMEOUT_S, context=context)
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), FETCH_TIMEOUT_S)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, address: str) -> None:
        super().__init__(host, port, timeout=FETCH_TIMEOUT_S)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), FETCH_TIMEOUT_S)


def fetch_document(client_id: str, allow_loopback: bool) -> Any:
    """GET the document at ``client_id`` as JSON (bounded, no redirects, public addresses only)."""
    parts = check_url(client_id, allow_loopback)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = resolve(host, port, allow_loopback)
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        connection = _PinnedHTTPS(host, port, address, ssl.create_default_context())
    else:
        connection = _PinnedHTTP(host, port, address)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    deadline = time.monotonic() + FETCH_TIMEOUT_S
    try:
        connection.request("GET", target, headers={"Accept": "application/json", "User-Agent": "catwalk-authserver"})
        response = connection.getresponse()
        if response.status != 200:
            raise ClientDocumentError(f"the client metadata document answered HTTP {response.status}")
        body = b""
        while len(body) <= MAX_DOCUMENT and (chunk := response.read(16384)):
            body += chunk
            if time.monotonic() > deadline:
                raise ClientDocumentError("the client metadata document took too long")
    except (OSError, http.client.HTTPException) as exc:
        raise ClientDocumentError(f"the client metadata document could not be fetched: {exc}") from None
    finally:
        connection.close()
    if len(body) > MAX_DOCUMENT:
        raise ClientDocumentError(f"the client metadata document is larger than {MAX_DOCUMENT} bytes")
    try:
        return json.loads(body)
    except ValueError:
        raise ClientDocumentError("the client metadata document is not JSON") from None


def client_from_document(client_id: str, document: Any) -> Client:
    """The client a fetched document describes, if it is one this server takes (public, with redirect URIs)."""
    if not isinstance(document, dict):
        raise ClientDocumentError("the client metadata document is not a JSON object")
    if document.get("client_id") != client_id:
        raise ClientDocumentError("the client metadata document's client_id is not its own URL")
    uris = document.get("redirect_uris")
    if not isinstance(uris, list) or not uris or not all(isinstance(uri, str) for uri in uris):
        raise ClientDocumentError("the client metadata document has no redirect_uris list")
    if "client_secret" in document or "client_secret_expires_at" in document:
        raise ClientDocumentError("a client metadata document must not carry a client secret")
    method = document.get("token_endpoint_auth_method", "none")
    if method != "none":
        raise ClientDocumentError(f"token_endpoint_auth_method {str(method)[:40]!r}: only public clients (none)")
    return Client(client_id, {**document, "token_endpoint_auth_method": "none"})


class DocumentClients:
    """Clients known by their metadata document, fetched on first use and kept a few minutes."""

    def __init__(
        self, allow_loopback: bool = False, fetch: Callable[[str, bool], Any] = fetch_document,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self.allow_loopback, self._fetch, self._clock = allow_loopback, fetch, clock
        self._cache: dict[str, tuple[float, Client | ClientDocumentError]] = {}
        self._lock = threading.Lock()
        self._fetching = threading.BoundedSemaphore(MAX_FETCHES)

    def get(self, client_id: str) -> Client:
        """The client ``client_id`` describes; a :class:`ClientDocumentError` says why there is none."""
        with self._lock:
            cached = self._cache.get(client_id)
        if cached is not None:
            age = self._clock() - cached[0]
            if isinstance(cached[1], Client) and age < CACHE_S:
                return cached[1]
            if isinstance(cached[1], ClientDocumentError) and age < FAILED_CACHE_S:
                raise cached[1]
        if not self._fetching.acquire(blocking=False):
            raise ClientDocumentError("too many client metadata documents are being fetched: try again shortly")
        try:
            result: Client | ClientDocumentError = client_from_document(
                client_id, self._fetch(client_id, self.allow_loopback)
            )
        except ClientDocumentError as exc:
            result = exc
        finally:
            self._fetching.release()
        with self._lock:
            if len(self._cache) >= CACHE_ENTRIES:
                self._cache.pop(next(iter(self._cache)))
            self._cache[client_id] = (self._clock(), result)
        if isinstance(result, ClientDocumentError):
            raise result
        return result
