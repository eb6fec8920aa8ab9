"""The OAuth 2.1 machinery, on authlib: authorization code + PKCE (S256 only), refresh-token rotation,
dynamic client registration (RFC 7591), resource indicators (RFC 8707) and the server metadata (RFC 8414).

authlib's grants do the protocol (parameter checks, redirect-or-not on error, client authentication, the
token response); this module supplies what they leave to the server: where codes and tokens are kept, what
a token is (an EdDSA JWT for one resource, ``keys``), and catwalk's rules on top: public clients only,
PKCE required and S256 only, a resource named in ``CATWALK_AS_RESOURCES``, a code used twice or a rotated
refresh token presented again revokes every refresh token of its family (OAuth 2.1 4.3.1, RFC 9700 4.14).
"""

from __future__ import annotations

import logging
import secrets
from collections import defaultdict
from typing import Any

from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    InvalidClientError,
    InvalidRequestError,
    JsonPayload,
    JsonRequest,
    OAuth2Error,
    OAuth2Request,
)
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant, RefreshTokenGrant
from authlib.oauth2.rfc6749.requests import OAuth2Payload
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7591 import ClientRegistrationEndpoint
from authlib.oauth2.rfc7591.errors import InvalidRedirectURIError
from authlib.oauth2.rfc7636 import CodeChallenge

from .cimd import ClientDocumentError, DocumentClients, is_document_url
from .keys import Signer
from .models import AuthorizationCode, Client, Grant, RefreshToken
from .settings import Settings
from .store import Store

log = logging.getLogger("catwalk.authserver")

ACCESS_TOKEN_S = 3600
REFRESH_TOKEN_S = 30 * 24 * 3600
CODE_S = 60
SUBJECT = "operator"  # the one person this server admits (the passphrase holder)
FORBIDDEN_REDIRECT_SCHEMES = frozenset({"javascript", "data", "file", "vbscript", "about", "blob"})


class InvalidTargetError(OAuth2Error):
    """RFC 8707 2: the resource asked for is not one this server mints tokens for."""

    error = "invalid_target"


def redirect_uri_problem(uri: str) -> str | None:
    """Why ``uri`` cannot be a redirect URI, or None: https, http to loopback, or an app's own scheme."""
    import urllib.parse

    try:
        parts = urllib.parse.urlsplit(uri)
    except ValueError:
        return "is not a URL"
    if parts.fragment or "#" in uri:
        return "must not have a fragment"
    if not parts.scheme or parts.scheme in FORBIDDEN_REDIRECT_SCHEMES:
        return "has no scheme or a scheme that is never a redirect"
    if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "::1", "localhost"):
        return "uses plain http to a host other than loopback"
    if parts.scheme == "https" and not parts.hostname:
        return "names no host"
    return None


# --- requests as authlib reads them ---------------------------------------------------------------------


class _Payload(OAuth2Payload):
    def __init__(self, values: dict[str, list[str]]) -> None:
        self._datalist = defaultdict(list, values)
        self._data = {key: items[0] for key, items in values.items() if items}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class FormRequest(OAuth2Request):
    """An authorization or token request: query parameters and an urlencoded form."""

    def __init__(
        self, method: str, uri: str, headers: dict[str, str], query: dict[str, list[str]], form: dict[str, list[str]]
    ) -> None:
        super().__init__(method, uri, headers=headers)
        self._args = {key: items[0] for key, items in query.items() if items}
        self._form = {key: items[0] for key, items in form.items() if items}
        merged: dict[str, list[str]] = {key: list(items) for key, items in query.items()}
        for key, items in form.items():
            merged.setdefault(key, []).extend(items)
        self.payload = _Payload(merged)
        self.resource: str | None = None

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


class _JsonPayload(JsonPayload):
    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    @property
    def data(self) -> dict[str, Any]:
        return self._data


class JsonBodyRequest(JsonRequest):
    def __init__(self, method: str, uri: str, headers: dict[str, str], data: dict[str, Any]) -> None:
        super().__init__(method, uri, headers)
        self.payload = _JsonPayload(data)


# --- grants --------------------------------------------------------------------------------------------


class S256Challenge(CodeChallenge):
    """PKCE required on every authorization request, with S256: a missing challenge or ``plain`` is refused."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]  # noqa: RUF012 (authlib's class attribute)
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant: Any, redirect_uri: Any) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: send code_challenge with code_challenge_method=S256")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256 (plain is not accepted)")
        super().validate_code_challenge(grant, redirect_uri)


class ResourceIndicator:
    """RFC 8707 on the authorization request (the resource must be one this server serves) and at the token
    endpoint (a resource sent there must be the one the code or refresh token was issued for)."""

    def __init__(self, server: CatwalkAuthorizationServer) -> None:
        self.server = server

    def __call__(self, grant: Any) -> None:
        grant.register_hook("after_validate_authorization_request_payload", self.on_authorize)
        grant.register_hook("after_validate_token_request", self.on_token)

    def on_authorize(self, grant: Any, _result: Any) -> None:
        request = grant.request
        values = request.payload.datalist.get("resource", [])
        resources = self.server.settings.resources
        if len(values) > 1:
            raise InvalidTargetError("one resource per authorization request")
        if not values:
            if len(resources) != 1:
                raise InvalidTargetError("the resource parameter is required (RFC 8707)")
            values = [resources[0]]
        if values[0] not in resources:
            raise InvalidTargetError("this server issues no tokens for that resource")
        request.resource = values[0]
        if not request.scope:  # none asked: everything offered
            request.scope = " ".join(self.server.settings.scopes)

    def on_token(self, grant: Any, _result: Any) -> None:
        request = grant.request
        record = request.authorization_code or request.refresh_token
        values = request.payload.datalist.get("resource", [])
        if values and (len(values) > 1 or values[0] != record.resource):
            raise InvalidTargetError("the resource is not the one this grant was issued for")


class CodeGrant(AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["none"]  # noqa: RUF012 (authlib's class attribute)
    server: CatwalkAuthorizationServer

    def save_authorization_code(self, code: str, request: Any) -> None:
        data = request.payload.data
        self.server.store.add_code(code, AuthorizationCode(
            code_hash="", client_id=request.client.get_client_id(), redirect_uri=data.get("redirect_uri") or "",
            scope=request.scope or "", resource=request.resource, code_challenge=data["code_challenge"],
            code_challenge_method=data["code_challenge_method"], expires_at=self.server.clock() + CODE_S,
        ))  # fmt: skip

    def query_authorization_code(self, code: str, client: Client) -> AuthorizationCode | None:
        record = self.server.store.code(code)
        if record is None or record.client_id != client.get_client_id():
            return None
        if record.used:  # replayed: whatever the first use got is revoked too
            log.warning("an authorization code of client %s was presented again: the tokens it gave are revoked",
                        record.client_id[:200])  # fmt: skip
            if record.family:
                self.server.store.revoke_family(record.family)
            return None
        if record.expires_at <= self.server.clock():
            return None
        return record

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        pass  # marked used in authenticate_user, before the token is made, and kept to catch a replay

    def authenticate_user(self, authorization_code: AuthorizationCode) -> Grant:
        family = secrets.token_urlsafe(16)
        self.server.store.new_family(family, REFRESH_TOKEN_S)
        self.server.store.use_code(authorization_code, family)
        return Grant(SUBJECT, authorization_code.resource, family)


class RotatingRefreshGrant(RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["none"]  # noqa: RUF012 (authlib's class attribute)
    INCLUDE_NEW_REFRESH_TOKEN = True
    server: CatwalkAuthorizationServer

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshToken | None:
        record = self.server.store.refresh(refresh_token)
        if record is None:
            return None
        if record.used:  # a rotated-out token presented again: stolen or replayed, so the family ends
            log.warning("a rotated-out refresh token of client %s was presented again: its grant is revoked",
                        record.client_id[:200])  # fmt: skip
            self.server.store.revoke_family(record.family)
            return None
        if not self.server.store.family_live(record.family):
            return None
        return record

    def authenticate_user(self, refresh_token: RefreshToken) -> Grant:
        return Grant(refresh_token.subject, refresh_token.resource, refresh_token.family)

    def revoke_old_credential(self, refresh_token: RefreshToken) -> None:
        self.server.store.use_refresh(refresh_token)


class Revocation(RevocationEndpoint):
    """RFC 7009 for refresh tokens (a connector removed by its user ends its grant): the whole family goes.
    Access tokens are JWTs checked offline by the gateways; revoking one is answered 200 and they run out."""

    CLIENT_AUTH_METHODS = ["none"]  # noqa: RUF012 (authlib's class attribute)
    server: CatwalkAuthorizationServer

    def query_token(self, token_string: str, token_type_hint: str | None) -> RefreshToken | None:
        return self.server.store.refresh(token_string)

    def revoke_token(self, token: RefreshToken, request: Any) -> None:
        self.server.store.revoke_family(token.family)


class Registration(ClientRegistrationEndpoint):
    """RFC 7591, open (no initial access token), public clients only: a client asking for a secret-based
    method is registered as public, which the response says (RFC 7591 3.2.1 lets the server choose)."""

    server: CatwalkAuthorizationServer

    def authenticate_token(self, request: Any) -> bool:
        return True

    def extract_client_metadata(self, request: Any) -> dict[str, Any]:
        data = request.payload.data
        if not isinstance(data, dict):
            raise InvalidRequestError("the registration request must be a JSON object")
        uris = data.get("redirect_uris")
        if not isinstance(uris, list) or not uris or not all(isinstance(uri, str) for uri in uris):
            raise InvalidRedirectURIError("redirect_uris must be a non-empty list of URIs")
        for uri in uris:
            problem = redirect_uri_problem(uri)
            if problem:
                raise InvalidRedirectURIError(_ascii(f"redirect URI {uri[:200]} {problem}"))
        request.payload = _JsonPayload({**data, "token_endpoint_auth_method": "none"})
        return super().extract_client_metadata(request)

    def generate_client_info(self, request: Any) -> dict[str, Any]:
        return {"client_id": secrets.token_urlsafe(24), "client_id_issued_at": int(self.server.clock())}

    def get_server_metadata(self) -> dict[str, Any]:
        return self.server.metadata()

    def save_client(self, client_info: dict[str, Any], client_metadata: dict[str, Any], request: Any) -> Client:
        return self.server.store.add_client(client_info["client_id"], client_metadata)


# --- the server ----------------------------------------------------------------------------------------


class CatwalkAuthorizationServer(AuthorizationServer):
    def __init__(self, settings: Settings, store: Store, signer: Signer, documents: DocumentClients) -> None:
        super().__init__(scopes_supported=list(settings.scopes))
        self.settings, self.store, self.signer, self.documents = settings, store, signer, documents
        self.clock = store.clock  # one clock for codes, refresh tokens and access tokens
        self.register_token_generator("default", self._token)
        self.register_grant(CodeGrant, [S256Challenge(required=True), ResourceIndicator(self)])
        self.register_grant(RotatingRefreshGrant, [ResourceIndicator(self)])
        self.register_endpoint(Registration)
        self.register_endpoint(Revocation)

    def metadata(self) -> dict[str, Any]:
        """RFC 8414's document, with the MCP spec's Client ID Metadata Document flag."""
        issuer = self.settings.issuer
        return {
            "issuer": issuer,
            "authorization_endpoint": f"{issuer}/authorize",
            "token_endpoint": f"{issuer}/token",
            "registration_endpoint": f"{issuer}/register",
            "revocation_endpoint": f"{issuer}/revoke",
            "revocation_endpoint_auth_methods_supported": ["none"],
            "jwks_uri": f"{issuer}/.well-known/jwks.json",
            "scopes_supported": list(self.settings.scopes),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_methods_supported": ["none"],
            "code_challenge_methods_supported": ["S256"],
            "client_id_metadata_document_supported": True,
            "authorization_response_iss_parameter_supported": True,
        }

    def query_client(self, client_id: str) -> Client | None:
        if is_document_url(client_id):
            try:
                client = self.documents.get(client_id)
            except ClientDocumentError as exc:
                raise InvalidClientError(description=_ascii(str(exc))) from None
            for uri in client.redirect_uris:
                problem = redirect_uri_problem(uri)
                if problem:
                    raise InvalidClientError(description=_ascii(f"the document's redirect URI {uri} {problem}"))
            return client
        return self.store.client(client_id)

    def _token(self, grant_type: str, client: Client, user: Grant | None = None, scope: str | None = None,
               expires_in: int | None = None, include_refresh_token: bool = True) -> dict[str, Any]:  # fmt: skip
        assert user is not None  # both grants authenticate a user before a token is made
        scope = scope or ""
        access = self.signer.access_token(
            subject=user.subject,
            audience=user.resource,
            client_id=client.get_client_id(),
            scope=scope,
            lifetime=ACCESS_TOKEN_S,
        )
        token: dict[str, Any] = {
            "token_type": "Bearer",
            "access_token": access,
            "expires_in": ACCESS_TOKEN_S,
            "scope": scope,
        }
        if include_refresh_token and client.check_grant_type("refresh_token"):
            token["refresh_token"] = secrets.token_urlsafe(32)
        return token

    def save_token(self, token: dict[str, Any], request: Any) -> None:
        refresh = token.get("refresh_token")
        if refresh:
            grant: Grant = request.user
            self.store.add_refresh(refresh, RefreshToken(
                token_hash="", family=grant.family, client_id=request.client.get_client_id(), scope=token["scope"],
                resource=grant.resource, subject=grant.subject, expires_at=self.clock() + REFRESH_TOKEN_S,
            ))  # fmt: skip

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        pass

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        return request

    def create_json_request(self, request: Any) -> JsonRequest:
        return request

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]) -> tuple[int, Any, list]:
        return status, body, list(headers)


def _ascii(text: str) -> str:
    """An error_description RFC 6749 allows (printable ASCII without " and \\)."""
    return "".join(c if 0x20 <= ord(c) <= 0x7E and c not in '"\\' else "?" for c in text)[:300]
