"""OAuth 2.1 resource server of the HTTP side: the MCP authorization spec's part that a server plays.

A web connector (claude.ai, ChatGPT) cannot send a static header; it follows a 401's ``WWW-Authenticate``
to the Protected Resource Metadata (RFC 9728), gets a token from the issuer named there, and sends it as
``Authorization: Bearer``. This module holds that document, the challenge, and the token check: a JWT
signed by a key of the issuer's JWKS, from that issuer, for this server's canonical URL (RFC 8707, so a
token minted for another server is refused), not expired, carrying the required scopes and, where the
stack names them, one of the allowed users or groups. The crypto is PyJWT's (docs/oauth-resource-server.md
says why a library and why this one); nothing here parses a JWT. The issuer's key set is fetched on a worker
thread (:meth:`OAuthAuth.prepare`), never on the gateway's event loop.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

import jwt

from .auth import OPEN_PATHS, BearerAuth
from .contract import issuer_metadata_urls as metadata_urls

PRM_PATH = "/.well-known/oauth-protected-resource"
# Asymmetric algorithms only: `none` and the HMAC family (a public key taken as a shared secret) never verify.
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
JWKS_TTL_S = 600.0  # a fetched key set is trusted this long...
JWKS_MIN_REFRESH_S = 30.0  # ...and refetched for an unknown key id at most this often (rotation, not a flood)
JWKS_TIMEOUT_S = 5.0
JWKS_MAX_BYTES = 1 << 20
LEEWAY_S = 30  # clock skew tolerated on exp / nbf / iat


class InvalidToken(Exception):
    """A token refused; the message says why (logged, and returned as the challenge's error_description).

    ``error`` is RFC 6750's code: ``invalid_token`` is answered 401 (get a new token), ``insufficient_scope``
    403 (a valid token that does not grant this server: another login will not help unless it grants more).
    """

    def __init__(self, message: str, error: str = "invalid_token") -> None:
        super().__init__(message)
        self.error = error

    @property
    def status(self) -> int:
        return 403 if self.error == "insufficient_scope" else 401


def fetch_json(url: str) -> Any:
    """GET ``url`` as JSON, bounded in time and size."""
    request = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": "catwalk-gateway"})
    with urllib.request.urlopen(request, timeout=JWKS_TIMEOUT_S) as response:  # https or loopback: from_environ
        body = response.read(JWKS_MAX_BYTES + 1)
    if len(body) > JWKS_MAX_BYTES:
        raise ValueError(f"{url} answered more than {JWKS_MAX_BYTES} bytes")
    return json.loads(body)


def discover_jwks_uri(issuer: str, fetch: Callable[[str], Any]) -> str:
    """The ``jwks_uri`` the issuer's own metadata names; ``<issuer>/.well-known/jwks.json`` when it publishes
    none. A document for another issuer, or a key set over plain http, is refused (RFC 8414 3.3)."""
    for url in metadata_urls(issuer):
        try:
            document = fetch(url)
        except (OSError, ValueError):
            continue
        if not isinstance(document, dict) or "jwks_uri" not in document:
            continue
        if document.get("issuer") != issuer:
            raise ValueError(f"{url} is the metadata of {str(document.get('issuer'))[:200]!r}, not of {issuer}")
        jwks_uri = document["jwks_uri"]
        if not isinstance(jwks_uri, str) or not _secure_url(jwks_uri):
            raise ValueError(f"{url} names a key set that is not an https URL: {str(jwks_uri)[:200]!r}")
        return jwks_uri
    return issuer.rstrip("/") + "/.well-known/jwks.json"


class Jwks:
    """The issuer's signing keys, cached and refetched when stale or when a token names an unknown key id.

    Every fetch, good or failed, starts a floor of ``JWKS_MIN_REFRESH_S`` before the next: made-up key ids
    and an issuer that is down cost one request per floor, not one per token. The gateway fetches with
    :meth:`ensure` on a worker thread, one fetch at a time however many requests wait for it, so
    :meth:`key` then finds the keys in memory; called alone (tests, a synchronous caller) it fetches itself.
    """

    def __init__(
        self, uri: str | None, fetch: Callable[[str], Any] = fetch_json, clock: Callable[[], float] = time.monotonic,
        issuer: str | None = None,
    ) -> None:  # fmt: skip
        if uri is None and issuer is None:
            raise ValueError("a key set needs its URL or the issuer whose metadata names it")
        # Without a URL, the issuer's metadata is read for it on the first fetch (and again while that fails).
        self.uri, self.issuer, self._fetch, self._clock = uri, issuer, fetch, clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched: float | None = None  # the last good fetch
        self._attempted: float | None = None  # the last fetch, good or not
        self._error = ""
        self._lock = threading.Lock()
        self._inflight: asyncio.Future[None] | None = None

    def refresh(self) -> None:
        self._attempted = self._clock()
        if self.uri is None:
            self.uri = discover_jwks_uri(str(self.issuer), self._fetch)
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

    def needs_refresh(self, kid: str) -> bool:
        """Whether a token naming ``kid`` should fetch the key set first (stale, or an unknown key id)."""
        now = self._clock()
        if self._attempted is not None and now - self._attempted <= JWKS_MIN_REFRESH_S:
            return False
        return self._fetched is None or now - self._fetched > JWKS_TTL_S or kid not in self._keys

    def _refresh_quietly(self) -> None:
        """Fetch; a failure is kept (a good key set stays in use) and told by :meth:`key`."""
        with self._lock:
            try:
                self.refresh()
            except (OSError, ValueError) as exc:
                self._error = str(exc)[:200]

    async def ensure(self, kid: str) -> None:
        """Fetch on a worker thread if :meth:`key` would; concurrent callers share the one fetch."""
        if not self.needs_refresh(kid):
            return
        if self._inflight is None:
            self._inflight = asyncio.ensure_future(asyncio.to_thread(self._refresh_quietly))
            self._inflight.add_done_callback(lambda _: setattr(self, "_inflight", None))
        await asyncio.shield(self._inflight)

    def key(self, kid: str) -> jwt.PyJWK:
        if self.needs_refresh(kid):
            self._refresh_quietly()
        if self._fetched is None:
            raise InvalidToken(f"the issuer's keys could not be fetched: {self._error}")
        if kid not in self._keys:
            raise InvalidToken(f"no key {kid!r} in the issuer's key set")
        return self._keys[kid]


def _names(value: Any) -> set[str]:
    """A claim holding names: a list of strings, or one string of names separated by spaces."""
    if isinstance(value, str):
        return set(value.split())
    if isinstance(value, list):
        return {item for item in value if isinstance(item, str)}  # pyright: ignore[reportUnknownVariableType]
    return set()


class TokenVerifier:
    """Checks an access token: signature (the issuer's JWKS), issuer, audience, expiry, scopes, and who.

    With ``allowed_users`` or ``allowed_groups`` (the stack's `allowedUsers`, `allowedGroups`) a token is
    admitted when its ``sub`` or ``email`` is an allowed user, or its ``groups`` (or ``roles``) claim holds an
    allowed group: the identity provider may let more people log in than may use this server.
    """

    def __init__(
        self, issuer: str, resource: str, jwks: Jwks, scopes: tuple[str, ...] = (),
        allowed_users: tuple[str, ...] = (), allowed_groups: tuple[str, ...] = (),
    ) -> None:  # fmt: skip
        self.issuer, self.resource, self.jwks, self.scopes = issuer, resource, jwks, scopes
        self.allowed_users, self.allowed_groups = frozenset(allowed_users), frozenset(allowed_groups)

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
        if self.allowed_users or self.allowed_groups:
            who = {claims.get("sub"), claims.get("email") if claims.get("email_verified") is not False else None}
            groups = _names(claims.get("groups")) | _names(claims.get("roles"))
            if not (who & self.allowed_users or groups & self.allowed_groups):
                raise InvalidToken(
                    f"the token's user {str(claims.get('sub'))[:80]!r} is not among the allowed users or groups",
                    error="insufficient_scope",
                )
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

    def _refusal(self, headers: list[tuple[bytes, bytes]]) -> InvalidToken | None:
        """Why the request's credentials are refused; None when they are accepted."""
        if self.bearer is not None and self.bearer.authorized(headers):
            return None
        token = _bearer(headers)
        if token is None:
            return InvalidToken("no access token", error="")
        try:
            self.verifier.verify(token)
        except InvalidToken as exc:
            if self._log is not None:
                self._log(str(exc))
            return exc
        return None

    def authorized(self, headers: list[tuple[bytes, bytes]]) -> bool:
        return self._refusal(headers) is None

    def allows(self, path: str, headers: list[tuple[bytes, bytes]]) -> bool:
        return self.refusal(path, headers) is None

    def refusal(self, path: str, headers: list[tuple[bytes, bytes]]) -> tuple[int, str] | None:
        """None when the request may proceed, else the status and ``WWW-Authenticate`` to answer with.

        No token: 401 with the bare challenge (a client's cue to start OAuth). A token refused: 401 with
        ``error="invalid_token"``, or 403 with ``error="insufficient_scope"`` for a valid token that does not
        grant this server (RFC 6750 3.1, the MCP authorization spec's scope challenge).
        """
        if path in OPEN_PATHS or path in self.metadata_paths:
            return None
        refused = self._refusal(headers)
        if refused is None:
            return None
        return refused.status, self.challenge(refused.error, str(refused))

    async def prepare(self, headers: list[tuple[bytes, bytes]]) -> None:
        """Fetch the issuer's keys for the request's token on a worker thread if the check would need them."""
        token = _bearer(headers)
        if token is None:
            return
        try:
            kid = str(jwt.get_unverified_header(token).get("kid", ""))
        except jwt.PyJWTError:
            return  # not a JWT: refused without any key
        await self.verifier.jwks.ensure(kid)

    def challenge(self, error: str = "", description: str = "") -> str:
        """The ``WWW-Authenticate`` of a refusal: where the PRM is, the scopes to ask for, and what was wrong."""
        value = f'Bearer resource_metadata="{self.metadata_url}"'
        if self.verifier.scopes:
            value += f', scope="{" ".join(self.verifier.scopes)}"'
        if error:
            value += f', error="{error}"'
            text = "".join(c for c in description if c.isprintable() and c not in '"\\')[:200]
            value += f', error_description="{text}"' if text else ""
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
    jwks_uri = environ.get(contract.OAUTH_JWKS_URI) or None  # unset: the issuer's metadata names it
    for name, value in ((contract.OAUTH_ISSUER, issuer), (contract.OAUTH_RESOURCE, resource),
                        (contract.OAUTH_JWKS_URI, jwks_uri)):  # fmt: skip
        if value is not None and not _secure_url(value):
            raise ValueError(f"{name} must be an https URL, got {value[:200]!r}")
    scopes = tuple(environ.get(contract.OAUTH_SCOPES, "").split())
    allowed = {
        name: _name_list(environ, name) for name in (contract.OAUTH_ALLOWED_USERS, contract.OAUTH_ALLOWED_GROUPS)
    }
    mode = environ.get(contract.AUTH_MODE, contract.AUTH_MODE_OAUTH)
    if mode not in (contract.AUTH_MODE_OAUTH, contract.AUTH_MODE_BOTH):
        raise ValueError(f"{contract.AUTH_MODE}={mode[:40]!r}: expected oauth or both here")
    if mode == contract.AUTH_MODE_BOTH and token is None:
        raise ValueError(f"{contract.AUTH_MODE}={mode} needs the bearer token as well")
    bearer = BearerAuth(token) if mode == contract.AUTH_MODE_BOTH and token is not None else None
    verifier = TokenVerifier(
        issuer, resource, Jwks(jwks_uri, issuer=issuer), scopes,
        allowed[contract.OAUTH_ALLOWED_USERS], allowed[contract.OAUTH_ALLOWED_GROUPS],
    )  # fmt: skip
    return OAuthAuth(verifier, bearer)


def _name_list(environ: Mapping[str, str], name: str) -> tuple[str, ...]:
    """A JSON list of names from the env (allowed users, groups); unset is empty, anything else is refused."""
    raw = environ.get(name)
    if not raw:
        return ()
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):  # pyright: ignore[reportUnknownVariableType]
        raise ValueError(f"{name} must be a JSON list of names, got {raw[:200]!r}")
    return tuple(value)  # pyright: ignore[reportUnknownArgumentType]
