"""The official MCP conformance suite (``@modelcontextprotocol/conformance``: the pin in tests/tools/sdk_clients.py
and a pre-release, tests/tools/conformance_auth.py) and a server that asks for OAuth.

Every auth scenario of the pinned suites tests a client: each stands up the suite's own resource server and
authorization server and checks what the client under test does. None checks a server, so none can be run
against the gateway; the first test holds that fact, so a new pin that adds such scenarios fails here until they
are run. What does apply is the rest of the suite under authorization: the gateway in ``oauth`` mode, every
request carrying an access token minted by an identity provider (tests/tools/oauth_idp.py) for this server,
passes every server scenario the same gateway passes without auth (but the one the suite scopes to servers
without authentication), for each revision from 2025-06-18 to 2026-07-28; without the token it is refused. The
suite's authorization server scenarios (metadata, the authorization code grant with PKCE), which come with the
pre-release pin, run against the stack's built-in authorization server, the consent page answered with the
operator's passphrase.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.parse
from collections.abc import Iterator

import httpx
import pytest

from tests.tools import conformance_auth, oauth_idp, sdk_clients
from tests.tools.authserver_process import running_authserver
from tests.tools.entrypoint_env import ROOT, Served, base_env, free_port, serving

pytestmark = [pytest.mark.network, pytest.mark.slow, pytest.mark.timeout(1500)]

SERVER = ROOT / "tests" / "fixtures" / "conformance_server.py"
# Each revision with the suite that has its server scenarios (2026-07-28: the pre-release only).
REVISIONS = [
    ("2025-06-18", sdk_clients.CONFORMANCE),
    ("2025-11-25", sdk_clients.CONFORMANCE),
    ("2026-07-28", conformance_auth.PRERELEASE_CONFORMANCE),
]
SCOPE = "mcp:tools"
# Scenarios that do not apply to a server with authorization, each with the reason.
NOT_APPLICABLE = {
    "dns-rebinding-protection": "the suite scopes it to servers without authentication: with a token required, "
    "the token guards (a browser never adds one by itself) and Host is whatever name the server is reached by "
    "(docs/dns-rebinding-guard.md); the rebinding request itself, which carries no token, is refused (below)",
}


def started(served: Served, probe: str, timeout: float = 90) -> Served:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(served.url(path=probe), timeout=5).status_code < 500:
                return served
        except httpx.HTTPError:
            pass
        assert served.process.poll() is None and time.monotonic() < deadline, served.output()
        time.sleep(0.2)


@pytest.fixture(scope="module")
def idp() -> Iterator[oauth_idp.Idp]:
    with oauth_idp.running_idp() as provider:
        yield provider


@pytest.fixture(scope="module")
def open_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("open")
    env = base_env(home, MCP_RUNTIME="custom", MCP_COMMAND=f"{sys.executable} {SERVER}", MCP_HOST="loopback")
    with serving(env) as served:
        yield started(served, "/status")


@pytest.fixture(scope="module")
def oauth_gateway(tmp_path_factory: pytest.TempPathFactory, idp: oauth_idp.Idp) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("oauth")
    env = base_env(home, MCP_RUNTIME="custom", MCP_COMMAND=f"{sys.executable} {SERVER}", MCP_HOST="loopback",
                   MCP_AUTH_TOKEN="static-token-not-accepted-in-oauth-mode", MCP_AUTH_MODE="oauth")  # fmt: skip
    env.update({"MCP_OAUTH_ISSUER": idp.issuer, "MCP_OAUTH_JWKS_URI": idp.jwks_uri, "MCP_OAUTH_SCOPES": SCOPE,
                "MCP_OAUTH_RESOURCE": f"http://127.0.0.1:{env['PORT']}/mcp"})  # fmt: skip
    with serving(env) as served:
        yield started(served, "/.well-known/oauth-protected-resource/mcp")


@pytest.mark.parametrize(
    ("spec", "client_auth"), [(sdk_clients.CONFORMANCE, 22), (conformance_auth.PRERELEASE_CONFORMANCE, 33)]
)
def test_every_auth_scenario_of_the_pinned_suites_tests_a_client_and_none_a_server(spec, client_auth) -> None:
    server, client = conformance_auth.scenarios("server", spec), conformance_auth.scenarios("client", spec)
    assert len(server) >= 30, server
    assert [name for name in server if "auth" in name] == []
    auth = [name for name in client if name.startswith("auth/")]
    assert len(auth) == client_auth, auth


@pytest.mark.parametrize(("version", "spec"), REVISIONS, ids=[version for version, _ in REVISIONS])
def test_with_an_access_token_the_oauth_gateway_passes_every_scenario_the_open_gateway_passes(
    open_gateway, oauth_gateway, idp, tmp_path, version, spec
) -> None:
    token = idp.token(oauth_gateway.url(), SCOPE)["access_token"]
    reference, _ = conformance_auth.run_server_suite(open_gateway.url(), version, tmp_path / "open", spec=spec)
    oauth, output = conformance_auth.run_server_suite(
        oauth_gateway.url(), version, tmp_path / "oauth", token, spec=spec
    )
    table = "\n".join(f"{name:40} open {'pass' if ok else 'FAIL'}  oauth {'pass' if oauth.get(name) else 'FAIL'}"
                      for name, ok in sorted(reference.items()))  # fmt: skip
    print(f"\nconformance {version} with OAuth:\n{table}")
    assert sum(reference.values()) >= 20, table  # the reference itself is sound
    lost = sorted(name for name, ok in reference.items() if ok and not oauth.get(name) and name not in NOT_APPLICABLE)
    assert not lost, f"{table}\n{output}"


def test_without_a_token_the_suite_is_refused_and_so_is_a_rebinding_request(oauth_gateway, tmp_path) -> None:
    url = oauth_gateway.url()
    results, output = conformance_auth.run_server_suite(url, "2025-11-25", tmp_path / "bare", scenario="tools-list")
    assert results == {"tools-list": False}, output
    results, output = conformance_auth.run_server_suite(
        url, "2025-11-25", tmp_path / "rebinding", scenario="dns-rebinding-protection"
    )
    statuses = {check["id"]: check["status"] for path in (tmp_path / "rebinding").glob("server-*/checks.json")
                for check in json.loads(path.read_text())}  # fmt: skip
    assert statuses == {"localhost-host-rebinding-rejected": "SUCCESS", "localhost-host-valid-accepted": "FAILURE"}, (
        output
    )


def test_the_built_in_authorization_server_passes_every_authorization_server_scenario(tmp_path) -> None:
    listed = conformance_auth.scenarios("authorization", conformance_auth.PRERELEASE_CONFORMANCE)
    assert listed == ["authorization-server-metadata-endpoint", "authorization-code-grant"]
    resource = "https://demo.example.fly.dev/mcp"
    with running_authserver([resource]) as auth:
        port = free_port()
        registration = {"client_name": "conformance suite", "redirect_uris": [f"http://127.0.0.1:{port}/callback"],
                        "token_endpoint_auth_method": "none"}  # fmt: skip
        registered = httpx.post(auth.url + "/register", json=registration, timeout=10)
        assert registered.status_code == 201, registered.text
        consents: list[int] = []

        def approve(url: str) -> None:
            """The operator: opens the consent page, enters the passphrase, and the browser goes back."""
            page = httpx.get(url, timeout=10)
            assert page.status_code == 200 and 'name="passphrase"' in page.text, page.text[:500]
            request = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))  # what the form carries
            form = {**request, "passphrase": auth.passphrase, "decision": "allow"}
            answer = httpx.post(auth.url + "/authorize", data=form, timeout=10)
            consents.append(answer.status_code)
            assert answer.status_code in (302, 303), answer.text[:500]
            httpx.get(answer.headers["location"], timeout=10)

        results, output = conformance_auth.run_authorization_suite(
            auth.url, registered.json()["client_id"], resource, port, tmp_path / "authorization", approve
        )
        assert consents, output
    assert results == dict.fromkeys(listed, True), f"{results}\n{output}"
