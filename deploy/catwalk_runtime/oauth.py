"""OAuth 2.1 resource server of the HTTP side: the MCP authorization spec's part that a server plays.

A web connector (claude.ai, ChatGPT) cannot send a static header; it follows a 401's ``WWW-Authenticate``
to the Protected Resource Metadata (RFC 9728), gets a token from the issuer named there, and sends it as
``Authorization: Bearer``. This module holds that document, the challenge, and the token check: a JWT
signed by a key of the issuer's JWKS, from that issuer, for this server's canonical URL (RFC 8707, so a
token minted for another server is refused), not expired, carrying the required scopes. The crypto is
PyJWT's (docs/oauth-resource-server.md says why a library and why this one); nothing here parses a JWT.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

import jwt

from .auth import OPEN_PATHS, BearerAuth

PRM_PATH = "/.well-known/oauth-protected-resource"
# Asymmetric algorithms only: `none` and the HMAC family (a public key taken as a shared secret) never verify.
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
JWKS_TTL_S = 600.0  # a fetched key set is trusted this long...
JWKS_MIN_REFRESH_S = 30.0  # ...and refetched for an unknown key id at most this often (rotation, not a flood)
JWKS_TIMEOUT_S = 5.0
JWKS_MAX_BYTES = 1 << 20
LEEWAY_S = 30  # clock skew tolerated on exp / nbf / iat


class InvalidToken(Exception):
    """A token refused; the message says why (logged, and returned as the challenge's error_description)."""

    def __init__(self, message: str, error: str = "invalid_token") -> None:
        super().__init__(message)
        self.error = error


def fetch_json(url: str) -> Any:
    """GET ``url`` as JSON, bounded in time and size."""
    request = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": "catwalk-gateway"})
    with urllib.request.urlopen(request, timeout=JWKS_TIMEOUT_S) as response:  # https or loopback: from_environ
        body = response.read(JWKS_MAX_BYTES + 1)
    if len(body) > JWKS_MAX_BYTES:
        raise ValueError(f"{url} answered more than {JWKS_MAX_BYTES} bytes")
    return json.loads(body)


class Jwks:
    """The issuer's signing keys, cached and refetched when stale or when a token names an unknown key id."""

    def __init__(
        self, uri: str, fetch: Callable[[str], Any] = fetch_json, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.uri, self._fetch, self._clock = uri, fetch, clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched: float | None = None
        self._lock = threading.Lock()

    def refresh(self) -> None:
        data = self._fetch(self.uri)
        keys: dict[str, jwt.PyJWK] = {}
        for entry in data.get("keys", []) if isinstance(data, dict) else []:
            if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
                continue
            try:
                keys[str(entry.get("kid", ""))] = jwt.PyJWK.from_dict(entry)
            except jwt.PyJWTError:
                continue  # a key of a kind this gateway cannot use; the others still serve
        self._keys, self._fetched = keys, self._clock()

    def key(self, kid: str) -> jwt.PyJWK:
        with self._lock:
            now = self._clock()
            stale = self._fetched is None or now - self._fetched > JWKS_TTL_S
            unknown = kid not in self._keys and (self._fetched is None or now - self._fetched > JWKS_MIN_REFRESH_S)
            if stale or unknown:
                try:
                    self.refresh()
                except (OSError, ValueError) as exc:
                    if self._fetched is None:
                        raise InvalidToken(f"the issuer's keys could not be fetched: {exc}") from None
            if kid not in self._keys:
                raise InvalidToken(f"no key {kid!r} in the issuer's key set")
            return self._keys[kid]


class TokenVerifier:
    """Checks an access token: signature (the issuer's JWKS), issuer, audience, expiry, scopes."""

    def __init__(self, issuer: str, resource: str, jwks: Jwks, scopes: tuple[str, ...] = ()) -> None:
        self.issuer, self.resource, self.jwks, self.scopes = issuer, resource, jwks, scopes

    def verify(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"not a JWT: {exc}") from None
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise InvalidToken(f"algorithm {alg!r} is not accepted")
        key = self.jwks.key(str(header.get("kid", "")))
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key=key, algorithms=[alg], audience=self.resource, issuer=self.issuer, leeway=LEEWAY_S,
                options={"require": ["exp", "iss", "aud"]},
            )  # fmt: skip
        except jwt.ExpiredSignatureError:
            raise InvalidToken("the token has expired") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken(f"the token is not for {self.resource}") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken(f"the token is not from {self.issuer}") from None
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"the token is invalid: {exc}") from None
        granted = set(str(claims.get("scope", "")).split()) | set(claims.get("scp") or [])
        missing = [scope for scope in self.scopes if scope not in granted]
        if missing:
            raise InvalidToken(f"the token lacks the scope {' '.join(missing)}", error="insufficient_scope")
        return claims


def protected_resource_metadata(resource: str, issuer: str, scopes: tuple[str, ...]) -> dict[str, Any]:
    """RFC 9728's document: this server, the issuer that mints its tokens, how tokens are sent."""
    document: dict[str, Any] = {
        "resource": resource,
        "authorization_servers": [issuer],
        "bearer_methods_supported": ["header"],
    }
    if scopes:
        document["scopes_supported"] = list(scopes)
    return document


def metadata_url(resource: str) -> str:
    """Where the PRM of ``resource`` lives: the well-known path inserted before the resource's path (RFC 9728 3.1)."""
    scheme, _, rest = resource.partition("://")
    host, slash, path = rest.partition("/")
    return f"{scheme}://{host}{PRM_PATH}" + (f"/{path}".rstrip("/") if slash and path else "")


def _bearer(headers: list[tuple[bytes, bytes]]) -> str | None:
    for key, value in headers:
        if key.lower() == b"authorization":
            scheme, _, credential = value.strip().partition(b" ")
            if scheme.lower() == b"bearer" and credential.strip():
                return credential.strip().decode("ascii", "replace")
            return None
    return None


class OAuthAuth:
    """The gateway's authenticator with OAuth: a valid access token, or (``bearer`` given) the static token.

    Same interface as :class:`auth.BearerAuth` (``allows``, ``authorized``), plus what the router serves
    and answers with: the PRM paths and document, and the 401 challenge pointing at them.
    """

    def __init__(
        self, verifier: TokenVerifier, bearer: BearerAuth | None = None, log: Callable[[str], None] | None = None
    ) -> None:
        self.verifier, self.bearer, self._log = verifier, bearer, log
        self.metadata_url = metadata_url(verifier.resource)
        self.document = protected_resource_metadata(verifier.resource, verifier.issuer, verifier.scopes)
        path = self.metadata_url.partition("://")[2].partition("/")[2]
        self.metadata_paths = frozenset({PRM_PATH, "/" + path})

    def authorized(self, headers: list[tuple[bytes, bytes]]) -> bool:
        if self.bearer is not None and self.bearer.authorized(headers):
            return True
        token = _bearer(headers)
        if token is None:
            return False
        try:
            self.verifier.verify(token)
        except InvalidToken as exc:
            if self._log is not None:
                self._log(str(exc))
            return False
        return True

    def allows(self, path: str, headers: list[tuple[bytes, bytes]]) -> bool:
        return path in OPEN_PATHS or path in self.metadata_paths or self.authorized(headers)

    def challenge(self) -> str:
        """The ``WWW-Authenticate`` of a 401: where the PRM is, and the scopes to ask for."""
        value = f'Bearer resource_metadata="{self.metadata_url}"'
        if self.verifier.scopes:
            value += f', scope="{" ".join(self.verifier.scopes)}"'
        return value


def _secure_url(value: str) -> bool:
    """https, or plain http to loopback (a local issuer in tests and `catwalk run`)."""
    parts = urllib.parse.urlsplit(value)
    if parts.scheme == "https":
        return bool(parts.hostname)
    return parts.scheme == "http" and parts.hostname in ("127.0.0.1", "::1", "localhost")


def from_environ(environ: Mapping[str, str], token: str | None) -> OAuthAuth:
    """The authenticator the machine env describes (the names: ``contract``); a ValueError names the variable."""
    from . import contract

    issuer = environ.get(contract.OAUTH_ISSUER, "")
    resource = environ.get(contract.OAUTH_RESOURCE, "")
    jwks_uri = environ.get(contract.OAUTH_JWKS_URI) or issuer.rstrip("/") + "/.well-known/jwks.json"
    for name, value in ((contract.OAUTH_ISSUER, issuer), (contract.OAUTH_RESOURCE, resource),
                        (contract.OAUTH_JWKS_URI, jwks_uri)):  # fmt: skip
        if not _secure_url(value):
            raise ValueError(f"{name} must be an https URL, got {value[:200]!r}")
    scopes = tuple(environ.get(contract.OAUTH_SCOPES, "").split())
    mode = environ.get(contract.AUTH_MODE, contract.AUTH_MODE_OAUTH)
    if mode not in (contract.AUTH_MODE_OAUTH, contract.AUTH_MODE_BOTH):
        raise ValueError(f"{contract.AUTH_MODE}={mode[:40]!r}: expected oauth or both here")
    if mode == contract.AUTH_MODE_BOTH and token is None:
        raise ValueError(f"{contract.AUTH_MODE}={mode} needs the bearer token as well")
    bearer = BearerAuth(token) if mode == contract.AUTH_MODE_BOTH and token is not None else None
    return OAuthAuth(TokenVerifier(issuer, resource, Jwks(jwks_uri), scopes), bearer)
