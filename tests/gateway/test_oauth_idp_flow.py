"""A server whose tokens come from "your identity provider", as a web connector meets it: a bare request gets 401,
the client follows the challenge to the Protected Resource Metadata, then to the provider's metadata, registers
(or uses a client id registered beforehand), is authorized with PKCE, gets a token for this server and calls a
tool through the gateway. The provider is oauth2-mock-server on loopback (tests/tools/oauth_idp.py); the client
is the MCP SDK's own OAuth client (Python 1.x and 2.x, TypeScript 2.x), each pinned in an environment of its
own; the server runs behind deploy/entrypoint.sh exactly as on a machine, with MCP_AUTH_MODE ``oauth`` or
``both``, and with the allowed users the stack may name (the provider may let more people log in than may use
the server).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.tools import oauth_idp, sdk_clients
from tests.tools.entrypoint_env import TINY_SERVER, Served, base_env, serving

pytestmark = [pytest.mark.network, pytest.mark.slow, pytest.mark.timeout(900)]

STATIC = "static-token-of-the-cli-clients"
SCOPE = "mcp:tools"
PARAMS = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": PARAMS}
ACCEPT = {"Accept": "application/json, text/event-stream"}


@pytest.fixture(scope="module")
def idp() -> Iterator[oauth_idp.Idp]:
    with oauth_idp.running_idp() as provider:
        yield provider


def gateway(home: Path, idp: oauth_idp.Idp, mode: str, jwks: bool = True, **extra: str) -> Iterator[Served]:
    """The tiny server behind the entrypoint, trusting ``idp``; ``jwks``: its key set's URL given (else the gateway
    finds it in the provider's metadata, as with an issuer alone in `catwalk:oauth`)."""
    script = home / "tiny.py"
    script.write_text(TINY_SERVER)
    env = base_env(home, MCP_RUNTIME="custom", MCP_COMMAND=f"{sys.executable} {script}", MCP_HOST="loopback",
                   MCP_AUTH_TOKEN=STATIC, MCP_AUTH_MODE=mode)  # fmt: skip
    env.update({
        "MCP_OAUTH_ISSUER": idp.issuer, "MCP_OAUTH_JWKS_URI": idp.jwks_uri, "MCP_OAUTH_SCOPES": SCOPE,
        # The server's canonical URL is the one its clients use: here, loopback.
        "MCP_OAUTH_RESOURCE": f"http://127.0.0.1:{env['PORT']}/mcp", **extra,
    })  # fmt: skip
    if not jwks:
        del env["MCP_OAUTH_JWKS_URI"]
    with serving(env) as served:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(served.url(path="/.well-known/oauth-protected-resource/mcp"), timeout=5).is_success:
                    break
            except httpx.HTTPError:
                pass
            assert served.process.poll() is None and time.monotonic() < deadline, served.output()
            time.sleep(0.2)
        yield served


@pytest.fixture(scope="module")
def oauth_only(tmp_path_factory: pytest.TempPathFactory, idp: oauth_idp.Idp) -> Iterator[Served]:
    yield from gateway(tmp_path_factory.mktemp("oauth"), idp, "oauth")


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory, idp: oauth_idp.Idp) -> Iterator[Served]:
    yield from gateway(tmp_path_factory.mktemp("both"), idp, "both")


@pytest.fixture(scope="module")
def for_the_user(tmp_path_factory: pytest.TempPathFactory, idp: oauth_idp.Idp) -> Iterator[Served]:
    users = f'["someone@example.com", "{oauth_idp.USER}"]'
    yield from gateway(tmp_path_factory.mktemp("user"), idp, "oauth", jwks=False, MCP_OAUTH_ALLOWED_USERS=users)


@pytest.fixture(scope="module")
def for_someone_else(tmp_path_factory: pytest.TempPathFactory, idp: oauth_idp.Idp) -> Iterator[Served]:
    users = '["someone@example.com"]'
    yield from gateway(tmp_path_factory.mktemp("else"), idp, "oauth", jwks=False, MCP_OAUTH_ALLOWED_USERS=users)


def post(url: str, token: str | None = None) -> httpx.Response:
    headers = {**ACCEPT, **({"Authorization": f"Bearer {token}"} if token else {})}
    return httpx.post(url, json=INITIALIZE, headers=headers, timeout=30)


def test_a_bare_request_is_challenged_toward_metadata_that_names_the_identity_provider(oauth_only, idp) -> None:
    bare = post(oauth_only.url())
    assert bare.status_code == 401
    challenge = bare.headers["www-authenticate"]
    metadata_url = oauth_only.url(path="/.well-known/oauth-protected-resource/mcp")
    assert challenge == f'Bearer resource_metadata="{metadata_url}", scope="{SCOPE}"'
    document = httpx.get(metadata_url, timeout=10).json()
    assert document["resource"] == oauth_only.url()
    assert document["authorization_servers"] == [idp.issuer]
    provider = httpx.get(idp.issuer + "/.well-known/openid-configuration", timeout=10).json()
    assert provider["issuer"] == idp.issuer and "S256" in provider["code_challenge_methods_supported"]


def flow_paths(report: dict, idp: oauth_idp.Idp, served: Served) -> list[str]:
    """The exchanges of a report, each as 'METHOD where/path status' (where: gateway or idp)."""
    names = {idp.issuer: "idp", served.url(path=""): "gateway"}
    steps = []
    for method, url, status in report["flow"]:
        origin = next((name for base, name in names.items() if url.startswith(base)), url)
        path = next((url.removeprefix(base) for base in names if url.startswith(base)), "")
        steps.append(f"{method} {origin}{path} {status}")
    return steps


@pytest.mark.parametrize(
    ("sdk", "mode"),
    [(sdk_clients.PY_SDK1, "legacy"), (sdk_clients.PY_SDK2, "auto"), (sdk_clients.TS_CLIENT, "auto")],
    ids=["sdk1", "sdk2", "ts2"],
)
@pytest.mark.parametrize("client", ["register", "client-id=registered-beforehand"])
def test_the_sdk_oauth_client_goes_from_401_to_a_tool_call_through_the_identity_provider(
    oauth_only, idp, sdk, mode, client
) -> None:
    report = oauth_idp.oauth_client(sdk, oauth_only.url(), mode, client)
    steps = flow_paths(report, idp, oauth_only)
    assert "error" not in report, f"{report.get('error')}\n" + "\n".join(steps)
    assert report["tools"] == ["echo"]
    assert report["result"] == "hello through oauth"
    # The discovery a web connector makes, in this order (a client may repeat a discovery step), before the
    # first admitted request; nothing reaches the server before the token, nothing is refused after it.
    expected = [
        "POST gateway/mcp 401",
        "GET gateway/.well-known/oauth-protected-resource/mcp 200",
        "GET idp/.well-known/oauth-authorization-server 404",
        "GET idp/.well-known/openid-configuration 200",
        *(["POST idp/register 201"] if client == "register" else []),
        "GET idp/authorize 302",
        "POST idp/token 200",
        "POST gateway/mcp 200",
    ]
    remaining = iter(steps)
    assert all(any(step == wanted for step in remaining) for wanted in expected), "\n".join(steps)
    token_at = steps.index("POST idp/token 200")
    assert steps[0] == "POST gateway/mcp 401", "\n".join(steps)
    assert [step for step in steps[1:token_at] if "gateway/mcp" in step] == [], "\n".join(steps)
    assert [step for step in steps[token_at:] if " 401" in step or " 403" in step] == [], "\n".join(steps)
    assert "POST idp/register 201" not in steps or client == "register", "\n".join(steps)
    # The token the provider minted is for this server only, with the scope the server asked for.
    assert report["claims"]["aud"] == oauth_only.url()
    assert report["claims"]["iss"] == idp.issuer
    assert report["claims"]["scope"] == SCOPE
    if client != "register":
        assert report["client_id"] == "registered-beforehand"


def test_oauth_alone_refuses_the_static_token_and_a_token_for_another_server(oauth_only, idp) -> None:
    assert post(oauth_only.url(), STATIC).status_code == 401
    other = idp.token("https://other.example.fly.dev/mcp")["access_token"]
    refused = post(oauth_only.url(), other)
    assert refused.status_code == 401
    assert "resource_metadata=" in refused.headers["www-authenticate"]
    assert post(oauth_only.url(), idp.token(oauth_only.url())["access_token"]).status_code == 200


def test_both_admits_the_static_token_and_a_token_of_the_provider_and_nothing_else(both, idp) -> None:
    assert post(both.url(), STATIC).status_code == 200
    assert post(both.url(), idp.token(both.url())["access_token"]).status_code == 200
    assert post(both.url(), idp.token("https://other.example.fly.dev/mcp")["access_token"]).status_code == 401
    assert post(both.url(), STATIC + "x").status_code == 401
    assert post(both.url()).status_code == 401


def test_both_lets_the_sdk_oauth_client_through_as_well(both, idp) -> None:
    report = oauth_idp.oauth_client(sdk_clients.PY_SDK1, both.url(), "legacy", "register")
    assert "error" not in report, f"{report.get('error')}\n" + "\n".join(flow_paths(report, idp, both))
    assert report["result"] == "hello through oauth" and report["claims"]["aud"] == both.url()


@pytest.mark.parametrize(
    ("sdk", "mode"),
    [(sdk_clients.PY_SDK1, "legacy"), (sdk_clients.PY_SDK2, "auto"), (sdk_clients.TS_CLIENT, "auto")],
    ids=["sdk1", "sdk2", "ts2"],
)
def test_only_the_allowed_users_of_the_provider_get_through(for_the_user, for_someone_else, idp, sdk, mode) -> None:
    admitted = oauth_idp.oauth_client(sdk, for_the_user.url(), mode, "register")
    assert "error" not in admitted, f"{admitted.get('error')}\n" + "\n".join(flow_paths(admitted, idp, for_the_user))
    assert admitted["result"] == "hello through oauth" and admitted["claims"]["sub"] == oauth_idp.USER

    refused = oauth_idp.oauth_client(sdk, for_someone_else.url(), mode, "register", timeout=120)
    steps = flow_paths(refused, idp, for_someone_else)
    assert "error" in refused, "\n".join(steps)
    # The provider logged the user in and minted a token for this server; the gateway refuses that user, and
    # the client gives up after at most one more authorization (never a loop through the provider).
    assert "POST idp/token 200" in steps and "POST gateway/mcp 403" in steps, "\n".join(steps)
    assert " 200" not in "".join(step for step in steps if step.startswith("POST gateway")), "\n".join(steps)
    assert sum(step.startswith("GET idp/authorize") for step in steps) <= 2, "\n".join(steps)
    token = idp.token(for_someone_else.url())["access_token"]
    answer = post(for_someone_else.url(), token)
    assert answer.status_code == 403 and 'error="insufficient_scope"' in answer.headers["www-authenticate"]


def test_given_the_issuer_alone_the_gateway_finds_the_providers_keys_in_its_metadata(for_the_user, idp) -> None:
    # The stand-in serves its keys at /jwks, named only by its OpenID Connect discovery document.
    assert httpx.get(idp.issuer + "/.well-known/jwks.json", timeout=10).status_code == 404
    assert post(for_the_user.url(), idp.token(for_the_user.url())["access_token"]).status_code == 200
    assert post(for_the_user.url(), idp.token(for_the_user.url(), user="mallory")["access_token"]).status_code == 403
