"""What authlib's grants ask about a client, an authorization code and a refresh token.

Plain data with the mixin methods authlib calls; the rules that are catwalk's own (public clients only,
loopback redirect ports) are here, the storage is in ``store``.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from authlib.oauth2.rfc6749 import AuthorizationCodeMixin, ClientMixin, TokenMixin

LOOPBACK = ("127.0.0.1", "::1", "localhost")


def _loopback_match(registered: str, given: str) -> bool:
    """RFC 8252 7.3: a native app's loopback redirect URI matches whatever port it listens on."""
    a, b = urllib.parse.urlsplit(registered), urllib.parse.urlsplit(given)
    return (a.scheme == b.scheme == "http" and a.hostname in LOOPBACK and a.hostname == b.hostname
            and (a.path or "/") == (b.path or "/") and a.query == b.query and not b.fragment)  # fmt: skip


@dataclass
class Client(ClientMixin):
    """A public client: registered (RFC 7591) or described by its metadata document (its client_id a URL)."""

    client_id: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def get_client_id(self) -> str:
        return self.client_id

    @property
    def redirect_uris(self) -> list[str]:
        return [uri for uri in self.metadata.get("redirect_uris", []) if isinstance(uri, str)]

    def get_default_redirect_uri(self) -> str | None:
        uris = self.redirect_uris
        return uris[0] if len(uris) == 1 else None

    def get_allowed_scope(self, scope: str | None) -> str:
        return scope or ""  # narrowed to what the server offers by the grant (an unknown scope: invalid_scope)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return any(uri == redirect_uri or _loopback_match(uri, redirect_uri) for uri in self.redirect_uris)

    def check_client_secret(self, client_secret: str) -> bool:
        return False  # public clients only: no secret is ever issued

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == "none"

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        allowed = self.metadata.get("grant_types") or ["authorization_code", "refresh_token"]
        return grant_type in allowed and grant_type in ("authorization_code", "refresh_token")


@dataclass
class AuthorizationCode(AuthorizationCodeMixin):
    code_hash: str
    client_id: str
    redirect_uri: str
    scope: str
    resource: str
    code_challenge: str
    code_challenge_method: str
    expires_at: float
    used: bool = False
    family: str | None = None

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass
class RefreshToken(TokenMixin):
    token_hash: str
    family: str
    client_id: str
    scope: str
    resource: str
    subject: str
    expires_at: float
    used: bool = False

    def check_client(self, client: ClientMixin) -> bool:
        return client.get_client_id() == self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return 0

    def is_expired(self) -> bool:
        return False  # expiry is checked by the store when the token is looked up

    def is_revoked(self) -> bool:
        return self.used


@dataclass
class Grant:
    """Who authorized what: the user object authlib carries from the code or refresh token to the new token."""

    subject: str
    resource: str
    family: str
