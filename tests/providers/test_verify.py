"""McpCheck: `up` succeeds only when the server answers MCP through its URL with the token."""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from components.mcpcheck import check
from components.verify import McpCheckProvider
from tests.tools.entrypoint_env import TINY_SERVER, base_env, free_port, serving
from tests.tools.fly_emulator.fixture import running_emulator

TOKEN = "verify-token-0123456789abcdef0123456789"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    home = tmp_path_factory.mktemp("verify")
    script = home / "tiny.py"
    script.write_text(TINY_SERVER)
    env = base_env(home, MCP_RUNTIME="custom", MCP_COMMAND=f"{sys.executable} {script}", MCP_AUTH_TOKEN=TOKEN)
    with serving(env) as served:
        assert check(served.url(), token=TOKEN, timeout=60, wait_until_up=True).ok, served.output()
        yield served


def props(url: str, token: str | None) -> dict:
    return {"url": url, "app": "catwalk-test-tiny", "server": "tiny", "revision": "v1", "token": token}


def test_check_passes_and_records_the_tools_but_not_the_token(tiny, monkeypatch):
    monkeypatch.setenv("CATWALK_VERIFY_DEADLINE_S", "30")
    result = McpCheckProvider().create(props(tiny.url(), TOKEN))
    assert result.outs["tools"] == ["echo"] and result.outs["server_name"] == "tiny"
    assert TOKEN not in repr(result.outs)


def test_wrong_token_fails_the_update_naming_the_server_and_the_401(tiny, monkeypatch):
    monkeypatch.setenv("CATWALK_VERIFY_DEADLINE_S", "10")
    with running_emulator() as emulator:
        monkeypatch.setenv("FLY_API_URL", emulator.base_url)
        monkeypatch.setenv("FLY_API_TOKEN", emulator.token)
        with pytest.raises(RuntimeError) as caught:
            McpCheckProvider().create(props(tiny.url(), "wrong-token-value"))
    message = str(caught.value)
    assert "MCP server 'tiny' did not answer" in message and "401" in message
    assert "fly logs -a catwalk-test-tiny" in message and "wrong-token-value" not in message


def test_unreachable_server_fails_after_the_deadline(monkeypatch):
    monkeypatch.setenv("CATWALK_VERIFY_DEADLINE_S", "3")
    monkeypatch.setenv("FLY_API_URL", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(RuntimeError, match=r"within 3 s"):
        McpCheckProvider().create(props(f"http://127.0.0.1:{free_port()}/mcp", TOKEN))


def test_diff_reruns_the_check_only_when_machines_or_url_change():
    provider = McpCheckProvider()
    old = {"url": "https://a.fly.dev/mcp", "revision": "v1", "tools": ["echo"]}
    assert provider.diff("id", old, {"url": "https://a.fly.dev/mcp", "revision": "v1", "token": TOKEN}).changes is False
    assert provider.diff("id", old, {"url": "https://a.fly.dev/mcp", "revision": "v2", "token": TOKEN}).changes is True


class IssuerMetadata(BaseHTTPRequestHandler):
    """An authorization server's RFC 8414 metadata at the path its issuer (`<origin>/issuer`) puts it."""

    def do_GET(self):
        issuer = f"http://127.0.0.1:{self.server.server_address[1]}/issuer"
        if self.path != "/.well-known/oauth-authorization-server/issuer" or self.server.broken:
            self.send_error(404)
            return
        body = json.dumps({"issuer": issuer, "jwks_uri": issuer + "/jwks"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def issuer():
    """A local authorization server's metadata; `.broken = True` makes it answer 404."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), IssuerMetadata)
    httpd.broken = False
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def issuer_of(httpd) -> str:
    return f"http://127.0.0.1:{httpd.server_address[1]}/issuer"


@pytest.fixture(scope="module")
def tiny_oauth(tmp_path_factory, issuer):
    """The tiny server behind a gateway that accepts only OAuth access tokens of the local issuer."""
    home = tmp_path_factory.mktemp("verify-oauth")
    script = home / "tiny.py"
    script.write_text(TINY_SERVER)
    env = base_env(home, MCP_RUNTIME="custom", MCP_COMMAND=f"{sys.executable} {script}", MCP_AUTH_TOKEN=TOKEN,
                   MCP_AUTH_MODE="oauth", MCP_OAUTH_ISSUER=issuer_of(issuer))  # fmt: skip
    env["MCP_OAUTH_RESOURCE"] = f"http://127.0.0.1:{env['PORT']}/mcp"
    with serving(env) as served:
        yield served


def test_an_oauth_servers_check_follows_the_401_to_its_metadata_and_its_issuers(tiny_oauth, issuer, monkeypatch):
    monkeypatch.setenv("CATWALK_VERIFY_DEADLINE_S", "60")
    result = McpCheckProvider().create({**props(tiny_oauth.url(), None), "issuer": issuer_of(issuer)})
    assert result.outs["url"] == tiny_oauth.url() and result.outs["tools"] == []


def test_an_oauth_servers_check_fails_when_its_issuer_publishes_no_metadata(tiny_oauth, issuer, monkeypatch):
    monkeypatch.setenv("CATWALK_VERIFY_DEADLINE_S", "10")
    monkeypatch.setenv("FLY_API_URL", f"http://127.0.0.1:{free_port()}")
    issuer.broken = True
    try:
        with pytest.raises(RuntimeError) as caught:
            McpCheckProvider().create({**props(tiny_oauth.url(), None), "issuer": issuer_of(issuer)})
    finally:
        issuer.broken = False
    message = str(caught.value)
    assert f"the authorization server {issuer_of(issuer)} publishes no metadata where connectors look" in message
    assert "/.well-known/openid-configuration/issuer: HTTP 404" in message


def test_an_oauth_servers_check_fails_when_its_metadata_names_another_issuer(tiny_oauth, monkeypatch):
    monkeypatch.setenv("CATWALK_VERIFY_DEADLINE_S", "60")
    with running_emulator() as emulator:
        monkeypatch.setenv("FLY_API_URL", emulator.base_url)
        monkeypatch.setenv("FLY_API_TOKEN", emulator.token)
        with pytest.raises(RuntimeError) as caught:
            McpCheckProvider().create({**props(tiny_oauth.url(), None), "issuer": "https://idp.example.com"})
    message = str(caught.value)
    assert "MCP server 'tiny' does not offer OAuth as a web connector needs" in message
    assert "does not name the authorization server https://idp.example.com" in message


def test_a_bearer_servers_check_with_an_issuer_fails_on_the_missing_metadata(tiny, issuer, monkeypatch):
    monkeypatch.setenv("CATWALK_VERIFY_DEADLINE_S", "10")
    monkeypatch.setenv("FLY_API_URL", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(RuntimeError, match=r"names no resource_metadata"):
        McpCheckProvider().create({**props(tiny.url(), TOKEN), "issuer": issuer_of(issuer)})
