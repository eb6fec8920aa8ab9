"""The gateway as an OAuth resource server: tokens of a local test issuer (keys made here, JWKS served on
loopback) accepted only when signed by the issuer's current keys, from that issuer, for this server, in
time and with the scopes; the PRM document and the 401 challenge a web connector follows."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import h11
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from catwalk_runtime import contract, mcp_http, oauth, relay, serve
from catwalk_runtime.auth import BearerAuth
from catwalk_runtime.errors import UsageError

RESOURCE = "https://demo.example.fly.dev/mcp"
SCOPES = ("mcp:tools",)


class Issuer:
    """A local authorization server's signing side: RSA keys by id, its JWKS served over loopback HTTP."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}
        self.fetches = 0
        self.rotate("k1")
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                issuer.fetches += 1
                body = json.dumps(issuer.jwks()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def rotate(self, kid: str, keep: bool = False) -> None:
        if not keep:
            self.keys.clear()
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid, key in self.keys.items():
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
            keys.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
        return {"keys": keys}

    def token(self, kid: str | None = None, key: Any = None, alg: str = "RS256", **overrides: Any) -> str:
        now = int(time.time())
        claims = {"iss": self.url, "aud": RESOURCE, "sub": "operator", "iat": now, "exp": now + 300,
                  "scope": " ".join(SCOPES)}  # fmt: skip
        claims.update(overrides)
        claims = {name: value for name, value in claims.items() if value is not None}
        kid = kid or next(iter(self.keys))
        return jwt.encode(claims, key or self.keys[kid], algorithm=alg, headers={"kid": kid})


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    server = Issuer()
    yield server
    server.server.shutdown()
    server.server.server_close()


def verifier_for(issuer: Issuer, scopes: tuple[str, ...] = SCOPES) -> oauth.TokenVerifier:
    return oauth.TokenVerifier(issuer.url, RESOURCE, oauth.Jwks(issuer.url + "/jwks"), scopes)


def refusal(verifier: oauth.TokenVerifier, token: str) -> str:
    with pytest.raises(oauth.InvalidToken) as caught:
        verifier.verify(token)
    return str(caught.value)


def test_a_token_of_the_issuer_for_this_server_is_accepted(issuer: Issuer) -> None:
    claims = verifier_for(issuer).verify(issuer.token())
    assert claims["sub"] == "operator"


def test_a_token_for_another_server_is_refused(issuer: Issuer) -> None:
    reason = refusal(verifier_for(issuer), issuer.token(aud="https://other.example.fly.dev/mcp"))
    assert reason == f"the token is not for {RESOURCE}"


def test_a_token_without_an_audience_is_refused(issuer: Issuer) -> None:
    assert "aud" in refusal(verifier_for(issuer), issuer.token(aud=None))


def test_a_token_from_another_issuer_is_refused(issuer: Issuer) -> None:
    reason = refusal(verifier_for(issuer), issuer.token(iss="https://evil.example.com"))
    assert reason == f"the token is not from {issuer.url}"


def test_an_expired_token_is_refused(issuer: Issuer) -> None:
    past = int(time.time()) - 3600
    assert refusal(verifier_for(issuer), issuer.token(iat=past - 300, exp=past)) == "the token has expired"


def test_a_token_without_an_expiry_is_refused(issuer: Issuer) -> None:
    assert "exp" in refusal(verifier_for(issuer), issuer.token(exp=None))


def test_an_unsigned_token_alg_none_is_refused(issuer: Issuer) -> None:
    now = int(time.time())
    claims = {"iss": issuer.url, "aud": RESOURCE, "exp": now + 300, "scope": "mcp:tools"}
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": "k1"})
    assert refusal(verifier_for(issuer), unsigned) == "algorithm 'none' is not accepted"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_an_hmac_token_keyed_with_the_public_key_is_refused(issuer: Issuer) -> None:
    # The classic confusion: the issuer's public key, which anyone can fetch, used as an HMAC secret (made by
    # hand here: PyJWT itself refuses to sign with a key that looks like a public key).
    public = issuer.keys["k1"].public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    claims = {"iss": issuer.url, "aud": RESOURCE, "exp": int(time.time()) + 300, "scope": "mcp:tools"}
    signing_input = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode()) + "."
    signing_input += b64url(json.dumps(claims).encode())
    forged = signing_input + "." + b64url(hmac.new(public, signing_input.encode(), hashlib.sha256).digest())
    assert refusal(verifier_for(issuer), forged) == "algorithm 'HS256' is not accepted"


def test_a_tampered_payload_is_refused(issuer: Issuer) -> None:
    header, payload, signature = issuer.token().split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "someone-else"
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert "Signature verification failed" in refusal(verifier_for(issuer), f"{header}.{forged_payload}.{signature}")


def test_a_token_signed_by_a_key_not_in_the_issuers_set_is_refused(issuer: Issuer) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert "Signature verification failed" in refusal(verifier_for(issuer), issuer.token(key=stranger))


def test_a_token_lacking_a_required_scope_is_refused_as_insufficient_scope(issuer: Issuer) -> None:
    with pytest.raises(oauth.InvalidToken) as caught:
        verifier_for(issuer, scopes=("mcp:tools", "mcp:admin")).verify(issuer.token())
    assert caught.value.error == "insufficient_scope"
    assert str(caught.value) == "the token lacks the scope mcp:admin"


def test_scopes_given_as_an_scp_list_count(issuer: Issuer) -> None:
    assert verifier_for(issuer).verify(issuer.token(scope=None, scp=["mcp:tools"]))["sub"] == "operator"


def test_the_key_set_is_fetched_once_and_cached(issuer: Issuer) -> None:
    verifier = verifier_for(issuer)
    for _ in range(5):
        verifier.verify(issuer.token())
    assert issuer.fetches == 1


def test_a_rotated_key_is_fetched_when_a_token_names_it(issuer: Issuer) -> None:
    clock = [1000.0]
    verifier = oauth.TokenVerifier(
        issuer.url, RESOURCE, oauth.Jwks(issuer.url + "/jwks", clock=lambda: clock[0]), SCOPES
    )
    verifier.verify(issuer.token())
    issuer.rotate("k2")
    # Within the refresh floor an unknown key id does not refetch (a flood of made-up ids costs nothing)...
    assert refusal(verifier, issuer.token()) == "no key 'k2' in the issuer's key set"
    assert issuer.fetches == 1
    # ...after it, the new key set is fetched and the rotated key accepted; the retired key is gone.
    clock[0] += oauth.JWKS_MIN_REFRESH_S + 1
    assert verifier.verify(issuer.token())["sub"] == "operator"
    assert issuer.fetches == 2
    assert "k1" not in verifier.jwks._keys


def test_an_unreachable_issuer_refuses_every_token(issuer: Issuer) -> None:
    verifier = oauth.TokenVerifier(issuer.url, RESOURCE, oauth.Jwks("http://127.0.0.1:9/jwks"), SCOPES)
    assert "the issuer's keys could not be fetched" in refusal(verifier, issuer.token())


def test_an_ec_signed_token_of_the_issuer_is_accepted(issuer: Issuer) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key())), "kid": "ec1", "use": "sig"}
    jwks = oauth.Jwks("unused", fetch=lambda _: {"keys": [jwk]})
    token = issuer.token(kid="ec1", key=key, alg="ES256")
    assert oauth.TokenVerifier(issuer.url, RESOURCE, jwks, SCOPES).verify(token)["sub"] == "operator"


# --- what the gateway serves and answers ---------------------------------------------------------------


def headers(token: str) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", f"Bearer {token}".encode())]


def test_the_protected_resource_metadata_names_the_server_and_its_issuer(issuer: Issuer) -> None:
    auth = oauth.OAuthAuth(verifier_for(issuer))
    assert auth.document == {
        "resource": RESOURCE,
        "authorization_servers": [issuer.url],
        "bearer_methods_supported": ["header"],
        "scopes_supported": ["mcp:tools"],
    }
    assert auth.metadata_url == "https://demo.example.fly.dev/.well-known/oauth-protected-resource/mcp"
    assert auth.metadata_paths == {"/.well-known/oauth-protected-resource",
                                   "/.well-known/oauth-protected-resource/mcp"}  # fmt: skip


def test_the_challenge_points_at_the_metadata_and_the_scopes(issuer: Issuer) -> None:
    assert oauth.OAuthAuth(verifier_for(issuer)).challenge() == (
        'Bearer resource_metadata="https://demo.example.fly.dev/.well-known/oauth-protected-resource/mcp", '
        'scope="mcp:tools"'
    )


def test_oauth_alone_admits_a_valid_token_and_not_the_static_one(issuer: Issuer) -> None:
    auth = oauth.from_environ(
        {contract.AUTH_MODE: "oauth", contract.OAUTH_ISSUER: issuer.url, contract.OAUTH_RESOURCE: RESOURCE,
         contract.OAUTH_JWKS_URI: issuer.url + "/jwks", contract.OAUTH_SCOPES: "mcp:tools"},
        token="static-secret",
    )  # fmt: skip
    assert auth.allows("/mcp", headers(issuer.token()))
    assert not auth.allows("/mcp", headers("static-secret"))
    assert not auth.allows("/mcp", [])
    assert auth.allows("/status", [])
    assert auth.allows("/.well-known/oauth-protected-resource/mcp", [])


def test_both_admits_the_static_token_and_a_valid_access_token(issuer: Issuer) -> None:
    auth = oauth.from_environ(
        {contract.AUTH_MODE: "both", contract.OAUTH_ISSUER: issuer.url, contract.OAUTH_RESOURCE: RESOURCE,
         contract.OAUTH_JWKS_URI: issuer.url + "/jwks"},
        token="static-secret",
    )  # fmt: skip
    assert auth.allows("/mcp", headers("static-secret"))
    assert auth.allows("/mcp", headers(issuer.token()))
    assert not auth.allows("/mcp", headers(issuer.token(aud="https://other.example.fly.dev/mcp")))


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({contract.OAUTH_RESOURCE: RESOURCE}, contract.OAUTH_ISSUER),
        ({contract.OAUTH_ISSUER: "https://id.example.com"}, contract.OAUTH_RESOURCE),
        ({contract.OAUTH_ISSUER: "http://id.example.com", contract.OAUTH_RESOURCE: RESOURCE}, contract.OAUTH_ISSUER),
        (
            {contract.OAUTH_ISSUER: "http://127.0.0.1.example.com", contract.OAUTH_RESOURCE: RESOURCE},
            contract.OAUTH_ISSUER,
        ),
        (
            {
                contract.OAUTH_ISSUER: "https://id.example.com",
                contract.OAUTH_RESOURCE: RESOURCE,
                contract.OAUTH_JWKS_URI: "file:///etc/passwd",
            },
            contract.OAUTH_JWKS_URI,
        ),
    ],
)
def test_a_missing_or_plain_http_issuer_or_resource_is_refused_naming_the_variable(
    environ: dict[str, str], named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        oauth.from_environ(environ, token=None)


# --- through the gateway's router ----------------------------------------------------------------------

PING = b'{"jsonrpc":"2.0","id":1,"method":"ping"}'
INITIALIZE = b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}'
INIT = {"protocolVersion": "2025-06-18", "capabilities": {}, "serverInfo": {"name": "up", "version": "1"}}


def http(method: str, target: str, extra: list[tuple[str, str]] = (), body: bytes = PING) -> mcp_http.Request:  # type: ignore[assignment]
    headers = [("host", "demo.example.fly.dev"), ("accept", "application/json, text/event-stream"),
               ("content-type", "application/json"), *extra]  # fmt: skip
    return mcp_http.Request(
        h11.Request(method=method, target=target, headers=headers), body if method == "POST" else b""
    )


def test_the_router_answers_a_bare_request_with_the_challenge_and_serves_the_metadata_openly(issuer: Issuer) -> None:
    routes = mcp_http.Router(relay.Relay(INIT), [].append, oauth.OAuthAuth(verifier_for(issuer)))
    bare = routes.route(http("POST", "/mcp"))
    assert bare.status == 401
    assert dict(bare.headers)["www-authenticate"] == (
        'Bearer resource_metadata="https://demo.example.fly.dev/.well-known/oauth-protected-resource/mcp", '
        'scope="mcp:tools"'
    )
    for path in ("/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"):
        document = routes.route(http("GET", path))
        assert document.status == 200
        assert json.loads(document.body)["authorization_servers"] == [issuer.url]
    assert routes.route(http("POST", "/.well-known/oauth-protected-resource/mcp")).status == 405


def test_the_router_passes_a_valid_access_token_and_refuses_one_for_another_server(issuer: Issuer) -> None:
    upstream: list[dict[str, Any]] = []
    routes = mcp_http.Router(relay.Relay(INIT), upstream.append, oauth.OAuthAuth(verifier_for(issuer)))
    other = issuer.token(aud="https://other.example.fly.dev/mcp")
    assert routes.route(http("POST", "/mcp", [("authorization", f"Bearer {other}")])).status == 401
    assert upstream == []

    async def initialize() -> mcp_http.Reply:
        return routes.route(http("POST", "/mcp", [("authorization", f"Bearer {issuer.token()}")], INITIALIZE))

    admitted = asyncio.run(initialize())
    assert admitted.status == 200
    assert "mcp-session-id" in dict(admitted.headers)


def test_the_static_token_gateway_keeps_its_realm_challenge_and_serves_no_metadata() -> None:
    routes = mcp_http.Router(relay.Relay(INIT), [].append, BearerAuth("static-secret"))
    assert dict(routes.route(http("POST", "/mcp")).headers)["www-authenticate"] == 'Bearer realm="mcp"'
    assert routes.route(http("GET", "/.well-known/oauth-protected-resource/mcp")).status == 401


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({contract.AUTH_MODE: "openid"}, "MCP_AUTH_MODE='openid': expected one of bearer, oauth, both"),
        ({contract.AUTH_MODE: "oauth"}, "MCP_OAUTH_ISSUER must be an https URL"),
    ],
)
def test_the_gateway_refuses_to_start_on_a_bad_auth_mode_or_oauth_setting(
    environ: dict[str, str], message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        serve.oauth_auth(environ, "static-secret")


def test_oauth_cannot_be_combined_with_auth_off() -> None:
    with pytest.raises(UsageError, match="cannot be combined with MCP_AUTH=off"):
        serve.oauth_auth({contract.AUTH_MODE: "oauth"}, None)


def test_without_a_mode_the_gateway_keeps_the_static_token_alone() -> None:
    assert serve.oauth_auth({}, "static-secret") is None


# --- who may in: allowed users and groups -----------------------------------------------------------------


def gatekeeper(issuer: Issuer, users: tuple[str, ...] = (), groups: tuple[str, ...] = ()) -> oauth.TokenVerifier:
    return oauth.TokenVerifier(issuer.url, RESOURCE, oauth.Jwks(issuer.url + "/jwks"), SCOPES, users, groups)


def test_an_allowed_user_is_admitted_by_subject_or_verified_email(issuer: Issuer) -> None:
    verifier = gatekeeper(issuer, users=("operator", "ada@acme.dev"))
    assert verifier.verify(issuer.token())["sub"] == "operator"
    assert verifier.verify(issuer.token(sub="auth0|42", email="ada@acme.dev"))["sub"] == "auth0|42"


def test_a_user_outside_the_allowed_users_and_groups_is_refused_as_insufficient_scope(issuer: Issuer) -> None:
    verifier = gatekeeper(issuer, users=("ada@acme.dev",), groups=("mcp-operators",))
    with pytest.raises(oauth.InvalidToken) as caught:
        verifier.verify(issuer.token(sub="mallory", email="mallory@acme.dev", groups=["staff"]))
    assert caught.value.error == "insufficient_scope" and caught.value.status == 403
    assert str(caught.value) == "the token's user 'mallory' is not among the allowed users or groups"


def test_an_unverified_email_does_not_count_as_an_allowed_user(issuer: Issuer) -> None:
    verifier = gatekeeper(issuer, users=("ada@acme.dev",))
    assert "not among the allowed" in refusal(
        verifier, issuer.token(sub="x", email="ada@acme.dev", email_verified=False)
    )


@pytest.mark.parametrize("claim", [{"groups": ["staff", "mcp-operators"]}, {"groups": "staff mcp-operators"},
                                   {"roles": ["mcp-operators"]}])  # fmt: skip
def test_a_member_of_an_allowed_group_is_admitted(issuer: Issuer, claim: dict[str, Any]) -> None:
    verifier = gatekeeper(issuer, groups=("mcp-operators",))
    assert verifier.verify(issuer.token(sub="bob", **claim))["sub"] == "bob"
    assert "not among the allowed" in refusal(verifier, issuer.token(sub="bob"))


def test_the_allowed_users_and_groups_come_from_the_machine_env(issuer: Issuer) -> None:
    auth = oauth.from_environ(
        {contract.AUTH_MODE: "oauth", contract.OAUTH_ISSUER: issuer.url, contract.OAUTH_RESOURCE: RESOURCE,
         contract.OAUTH_JWKS_URI: issuer.url + "/jwks", contract.OAUTH_ALLOWED_USERS: '["ada@acme.dev"]',
         contract.OAUTH_ALLOWED_GROUPS: '["mcp-operators"]'},
        token="static-secret",
    )  # fmt: skip
    assert auth.allows("/mcp", headers(issuer.token(sub="x", email="ada@acme.dev")))
    assert auth.allows("/mcp", headers(issuer.token(sub="y", groups=["mcp-operators"])))
    assert not auth.allows("/mcp", headers(issuer.token(sub="z")))


@pytest.mark.parametrize("raw", ['"ada"', "[1]", '[""]', "not json"])
def test_a_malformed_allowed_list_stops_the_gateway_naming_the_variable(raw: str) -> None:
    environ = {contract.OAUTH_ISSUER: "https://id.example.com", contract.OAUTH_RESOURCE: RESOURCE,
               contract.OAUTH_ALLOWED_GROUPS: raw}  # fmt: skip
    with pytest.raises(ValueError, match="MCP_OAUTH_ALLOWED_GROUPS must be a JSON list of names"):
        oauth.from_environ(environ, token=None)


def test_the_router_answers_403_insufficient_scope_to_a_valid_token_that_does_not_grant_the_server(
    issuer: Issuer,
) -> None:
    auth = oauth.OAuthAuth(gatekeeper(issuer, users=("ada@acme.dev",)))
    routes = mcp_http.Router(relay.Relay(INIT), [].append, auth)
    stranger = routes.route(http("POST", "/mcp", [("authorization", f"Bearer {issuer.token(sub='mallory')}")]))
    assert stranger.status == 403
    challenge = dict(stranger.headers)["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge and 'scope="mcp:tools"' in challenge
    assert "resource_metadata=" in challenge and "mallory" in challenge
    scoped = oauth.OAuthAuth(verifier_for(issuer, scopes=("mcp:tools", "mcp:admin")))
    lacking = mcp_http.Router(relay.Relay(INIT), [].append, scoped).route(
        http("POST", "/mcp", [("authorization", f"Bearer {issuer.token()}")])
    )
    assert lacking.status == 403
    assert 'error_description="the token lacks the scope mcp:admin"' in dict(lacking.headers)["www-authenticate"]


def test_the_router_answers_401_invalid_token_to_an_expired_token_and_the_bare_challenge_without_one(
    issuer: Issuer,
) -> None:
    routes = mcp_http.Router(relay.Relay(INIT), [].append, oauth.OAuthAuth(verifier_for(issuer)))
    past = int(time.time()) - 3600
    expired = routes.route(http("POST", "/mcp", [("authorization", f"Bearer {issuer.token(iat=past, exp=past)}")]))
    assert expired.status == 401
    assert dict(expired.headers)["www-authenticate"].endswith(
        'error="invalid_token", error_description="the token has expired"'
    )
    assert "error=" not in dict(routes.route(http("POST", "/mcp")).headers)["www-authenticate"]


# --- the key set is fetched off the event loop --------------------------------------------------------------


def test_the_key_set_is_fetched_once_on_a_worker_thread_while_the_event_loop_keeps_running(issuer: Issuer) -> None:
    fetched_on: list[int] = []

    def slow_fetch(url: str) -> Any:
        fetched_on.append(threading.get_ident())
        time.sleep(0.5)
        return oauth.fetch_json(url)

    verifier = oauth.TokenVerifier(issuer.url, RESOURCE, oauth.Jwks(issuer.url + "/jwks", fetch=slow_fetch), SCOPES)
    auth = oauth.OAuthAuth(verifier)
    token_headers = headers(issuer.token())

    async def scenario() -> tuple[int, int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        ticking = asyncio.ensure_future(ticker())
        await asyncio.gather(*(auth.prepare(token_headers) for _ in range(20)))
        ticking.cancel()
        return ticks, threading.get_ident()

    ticks, loop_thread = asyncio.run(scenario())
    assert len(fetched_on) == 1, "twenty waiting requests share one fetch"
    assert fetched_on[0] != loop_thread
    assert ticks >= 20, f"the event loop ran only {ticks} ticks during a 0.5 s fetch"
    assert auth.allows("/mcp", token_headers) and len(fetched_on) == 1, "the check then finds the keys in memory"


def test_an_issuer_that_is_down_is_asked_at_most_once_per_refresh_floor(issuer: Issuer) -> None:
    clock = [1000.0]
    calls: list[str] = []

    def down(url: str) -> Any:
        calls.append(url)
        raise OSError("connection refused")

    verifier = oauth.TokenVerifier(issuer.url, RESOURCE, oauth.Jwks("https://id.example.com/jwks", fetch=down,
                                                                    clock=lambda: clock[0]), SCOPES)  # fmt: skip
    for _ in range(5):
        assert "could not be fetched: connection refused" in refusal(verifier, issuer.token())
    assert len(calls) == 1
    clock[0] += oauth.JWKS_MIN_REFRESH_S + 1
    refusal(verifier, issuer.token())
    assert len(calls) == 2


# --- the key set found through the issuer's metadata ---------------------------------------------------------


def serving(documents: dict[str, Any]) -> tuple[Any, list[str]]:
    """A fetch answering from ``documents`` by URL (others fail as a 404 would), and the URLs asked."""
    asked: list[str] = []

    def fetch(url: str) -> Any:
        asked.append(url)
        if url not in documents:
            raise OSError(f"HTTP 404 from {url}")
        return documents[url]

    return fetch, asked


def test_an_issuer_with_a_path_is_asked_for_its_metadata_where_the_spec_says_in_order() -> None:
    assert oauth.metadata_urls("https://login.example.com/realms/ops") == [
        "https://login.example.com/.well-known/oauth-authorization-server/realms/ops",
        "https://login.example.com/.well-known/openid-configuration/realms/ops",
        "https://login.example.com/realms/ops/.well-known/openid-configuration",
    ]
    assert oauth.metadata_urls("https://acme.eu.auth0.com/") == [
        "https://acme.eu.auth0.com/.well-known/oauth-authorization-server",
        "https://acme.eu.auth0.com/.well-known/openid-configuration",
    ]


def test_the_key_set_named_by_the_issuers_openid_metadata_verifies_its_tokens(issuer: Issuer) -> None:
    realm = issuer.url + "/realms/ops"
    fetch, asked = serving({
        f"{realm}/.well-known/openid-configuration": {"issuer": realm, "jwks_uri": f"{realm}/protocol/certs"},
        f"{realm}/protocol/certs": issuer.jwks(),
    })  # fmt: skip
    verifier = oauth.TokenVerifier(realm, RESOURCE, oauth.Jwks(None, fetch=fetch, issuer=realm), SCOPES)
    assert verifier.verify(issuer.token(iss=realm))["sub"] == "operator"
    assert asked[-1] == f"{realm}/protocol/certs" and len(asked) == 4
    verifier.verify(issuer.token(iss=realm))
    assert len(asked) == 4, "the key set's URL and keys are kept"


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ({"issuer": "https://evil.example.com", "jwks_uri": "https://evil.example.com/keys"}, "is the metadata of"),
        ({"issuer": "https://id.example.com", "jwks_uri": "http://id.example.com/keys"}, "not an https URL"),
    ],
)
def test_metadata_of_another_issuer_or_a_plain_http_key_set_is_refused(
    issuer: Issuer, document: dict[str, Any], reason: str
) -> None:
    fetch, asked = serving({"https://id.example.com/.well-known/oauth-authorization-server": document})
    jwks = oauth.Jwks(None, fetch=fetch, issuer="https://id.example.com")
    verifier = oauth.TokenVerifier("https://id.example.com", RESOURCE, jwks, SCOPES)
    assert reason in refusal(verifier, issuer.token(iss="https://id.example.com"))
    assert not [url for url in asked if "keys" in url], "the key set named there is never fetched"


def test_an_issuer_without_metadata_serves_its_keys_at_the_well_known_jwks_path(issuer: Issuer) -> None:
    fetch, asked = serving({issuer.url + "/.well-known/jwks.json": issuer.jwks()})
    verifier = oauth.TokenVerifier(issuer.url, RESOURCE, oauth.Jwks(None, fetch=fetch, issuer=issuer.url), SCOPES)
    assert verifier.verify(issuer.token())["sub"] == "operator"
    assert asked[-1] == issuer.url + "/.well-known/jwks.json"


def test_without_a_jwks_uri_the_gateway_reads_the_issuers_metadata(issuer: Issuer) -> None:
    auth = oauth.from_environ(
        {contract.AUTH_MODE: "oauth", contract.OAUTH_ISSUER: issuer.url, contract.OAUTH_RESOURCE: RESOURCE},
        token="static-secret",
    )
    assert auth.verifier.jwks.uri is None and auth.verifier.jwks.issuer == issuer.url
    assert auth.allows("/mcp", headers(issuer.token()))
