"""How a server's clients authenticate: the `auth` modes and the `catwalk:oauth` stack setting.

A server's `auth` is a static bearer token (`true`, `"bearer"`: CLI clients send a header), OAuth (`"oauth"`:
web connectors such as claude.ai and ChatGPT, which cannot send a custom header, follow the MCP
authorization spec), both at once, or nothing (`false`: open, on purpose). OAuth tokens come from the
operator's identity provider (`catwalk:oauth: {issuer: …}`) or from the stack's built-in authorization
server (`{builtin: true}`, also what an absent setting means), which admits the operator by the passphrase in
the stack secret `catwalk:oauthPassphrase`. Pure validation and naming; the program wires it
(`components.server`, `infra.program`).
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from catwalk_runtime import contract
from components import safety

AuthMode = Literal["open", "bearer", "oauth", "both"]
# What `auth` may be written as; `true` is today's bearer token, `false` open.
AUTH_WORDS = ("bearer", "oauth", "both")
OAUTH_MODES = frozenset({"oauth", "both"})
# The stack secret holding the built-in authorization server's operator passphrase.
PASSPHRASE_KEY = "oauthPassphrase"
MIN_PASSPHRASE = contract.AS_PASSPHRASE_MIN  # the authorization server refuses a shorter one too
# The built-in authorization server's Fly app is `<appPrefix>-auth`, so no server may take that name.
AUTH_APP_SUFFIX = "auth"
# Scopes the built-in authorization server offers and its tokens carry when `scopes` is not set.
BUILTIN_SCOPES = (contract.AS_SCOPES_DEFAULT,)
# Where the built-in authorization server's volume (its registered clients, refresh tokens) is mounted.
AUTH_STATE_PATH = "/data"
# RFC 6749 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]{1,128}$")


def auth_mode(value: bool | str) -> AuthMode:
    """The mode a server's `auth` stands for: `true` is the bearer token, `false` open."""
    if value is True:
        return "bearer"
    if value is False:
        return "open"
    return value  # type: ignore[return-value]  # the model admits only AUTH_WORDS besides booleans


def check_auth(value: Any) -> Any:
    """`auth` as written: a boolean or one of the mode words, refused otherwise with what it may be."""
    if isinstance(value, bool) or value in AUTH_WORDS:
        return value
    raise ValueError(
        f"must be a boolean (true: the bearer token, false: open) or one of 'bearer', 'oauth', 'both'; got {value!r}"
    )


def check_issuer_url(value: str) -> None:
    """An issuer or key-set URL: https (plain http only to loopback, for a local issuer), no query or fragment.

    The gateway trusts whatever keys this URL serves, so it must not be reachable through a plain-text hop.
    """
    safety.check_no_control(value, "URL")
    safety.check_length(value, 512, "URL")
    parsed = urlsplit(value)
    host = (parsed.hostname or "").lower()
    secure = parsed.scheme == "https" and bool(host)
    local = parsed.scheme == "http" and (host in safety.LOOPBACK_HOSTS or host.startswith("127."))
    if not (secure or local):
        raise ValueError(
            f"{value!r} must be an https:// URL (plain http only to a loopback host such as 127.0.0.1): the "
            "gateway trusts the keys it serves"
        )
    if parsed.query or parsed.fragment or parsed.username or parsed.password:
        raise ValueError(f"{value!r} must have no query, fragment or credentials (RFC 8414)")


def check_scope(value: str) -> None:
    if not SCOPE_TOKEN.match(value):
        raise ValueError(
            f"{value!r} is not an OAuth scope: printable characters without spaces, quotes or backslashes (RFC 6749)"
        )


def check_principal(value: str) -> None:
    """A user (`sub` or e-mail) or group name as the identity provider puts it in the token."""
    if not value.strip():
        raise ValueError("is empty")
    safety.check_no_control(value, "name")
    safety.check_length(value, 256, "name")


IssuerUrl = Annotated[str, AfterValidator(lambda v: (check_issuer_url(v), v)[1])]
Scope = Annotated[str, AfterValidator(lambda v: (check_scope(v), v)[1])]
Principal = Annotated[str, AfterValidator(lambda v: (check_principal(v), v)[1])]


class OAuthConfig(BaseModel):
    """`catwalk:oauth`: your identity provider (`issuer`, …) or the stack's built-in server (`builtin: true`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    builtin: bool = False
    issuer: IssuerUrl | None = None
    jwks_uri: IssuerUrl | None = Field(default=None, alias="jwksUri")
    scopes: list[Scope] = Field(default_factory=list[str], max_length=20)
    allowed_users: list[Principal] = Field(default_factory=list[str], alias="allowedUsers", max_length=200)
    allowed_groups: list[Principal] = Field(default_factory=list[str], alias="allowedGroups", max_length=200)

    @field_validator("builtin", mode="before")
    @classmethod
    def _builtin(cls, v: Any) -> Any:
        if not isinstance(v, bool):
            raise ValueError(f"must be true or false, got {v!r}")
        return v

    @model_validator(mode="after")
    def _one_source(self) -> OAuthConfig:
        if self.builtin and self.issuer is not None:
            raise ValueError("set either 'issuer' (your identity provider) or 'builtin: true', not both")
        if not self.builtin and self.issuer is None:
            raise ValueError(
                "set 'issuer' (your identity provider's issuer URL) or 'builtin: true' (the stack's own "
                "authorization server)"
            )
        if self.builtin:
            extra = [alias for alias, value in (("jwksUri", self.jwks_uri), ("allowedUsers", self.allowed_users),
                                                ("allowedGroups", self.allowed_groups)) if value]  # fmt: skip
            if extra:
                raise ValueError(
                    f"{', '.join(extra)} applies to an identity provider's issuer; the built-in server admits "
                    "only the operator, by the catwalk:oauthPassphrase secret"
                )
        if len(set(self.scopes)) != len(self.scopes):
            raise ValueError("scopes lists a scope more than once")
        for alias, names in (("allowedUsers", self.allowed_users), ("allowedGroups", self.allowed_groups)):
            size = len(json.dumps(names))
            if size > safety.MAX_ENV_VALUE:  # handed to each machine as one env value
                raise ValueError(f"{alias} takes {size} characters as JSON; the limit is {safety.MAX_ENV_VALUE}")
        return self

    @property
    def effective_scopes(self) -> tuple[str, ...]:
        """The scopes a token must carry: as written, or the built-in server's default."""
        if self.scopes:
            return tuple(self.scopes)
        return BUILTIN_SCOPES if self.builtin else ()


BUILTIN = OAuthConfig(builtin=True)


def parse_oauth(value: Any) -> Any:
    """`catwalk:oauth` as written: a map, or its JSON text (how Pulumi hands structured config to programs)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"is not valid JSON: {exc}") from None
    return value


Url = TypeVar("Url")  # a URL as the program has it: a string, or a Pulumi output of one


def gateway_env(mode: AuthMode, source: OAuthConfig | None, resource: Url, issuer: Url | None) -> dict[str, str | Url]:
    """The machine env that makes the gateway accept what ``mode`` says (`contract` names the variables).

    ``resource`` is the server's canonical URL (`https://<app>.fly.dev/mcp`: the audience its tokens must
    name); ``issuer`` the authorization server's, the built-in one's when ``source`` is builtin. `bearer` sets
    nothing (the gateway's default), so stacks written before OAuth keep their machines' env as it was.
    """
    if mode == "open":
        return {contract.AUTH: contract.AUTH_OFF}
    if mode == "bearer":
        return {}
    if source is None or issuer is None:
        raise ValueError(f"auth {mode!r} needs an authorization server")
    env: dict[str, str | Url] = {
        contract.AUTH_MODE: mode,
        contract.OAUTH_ISSUER: issuer,
        contract.OAUTH_RESOURCE: resource,
    }
    if source.effective_scopes:
        env[contract.OAUTH_SCOPES] = " ".join(source.effective_scopes)
    if source.jwks_uri:
        env[contract.OAUTH_JWKS_URI] = source.jwks_uri
    if source.allowed_users:
        env[contract.OAUTH_ALLOWED_USERS] = json.dumps(source.allowed_users)
    if source.allowed_groups:
        env[contract.OAUTH_ALLOWED_GROUPS] = json.dumps(source.allowed_groups)
    return env
