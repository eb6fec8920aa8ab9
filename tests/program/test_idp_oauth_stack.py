"""A stack whose OAuth server trusts "your identity provider" (`catwalk:oauth: {issuer: …}`), deployed by the real
program and providers against the Fly emulator, whose machines run `deploy/entrypoint.sh` as local processes;
then a web connector's whole flow against it, through the emulator's Fly proxy: the SDK's own OAuth client
(Python 1.x and 2.x, TypeScript 2.x) asks `https://<app>.fly.dev/mcp`, gets 401, follows the server's metadata
to the provider (oauth2-mock-server on loopback, tests/tools/oauth_idp.py), registers, is authorized with PKCE
and calls a tool. No built-in authorization server is deployed; the allowed users the stack names hold on the
server's machines."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.tools import oauth_idp, sdk_clients
from tests.tools.entrypoint_env import TINY_SERVER
from tests.tools.fly_emulator.fixture import running_emulator
from tests.tools.harness import run_subprocess

pytestmark = [pytest.mark.network, pytest.mark.slow, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
SCOPE = "mcp:tools"
ALLOWED = ["someone@example.com", oauth_idp.USER]


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[oauth_idp.Idp, object, dict]]:
    tmp = tmp_path_factory.mktemp("idp-stack")
    script = tmp / "tiny.py"
    script.write_text(TINY_SERVER)
    config = tmp / "Pulumi.test.yaml"
    with oauth_idp.running_idp() as idp, running_emulator(run_machines=True, proxy=True, workdir=tmp / "m") as fly:
        servers = [{"name": "notes", "command": f"{sys.executable} {script}", "auth": "oauth"}]
        stack = {
            "catwalk:appPrefix": "acme",
            "catwalk:image": "registry.fly.io/catwalk-test-images:local",
            "catwalk:verify": False,
            "catwalk:servers": servers,
            # The issuer alone: the machines find its keys in its discovery document, as with Okta or Keycloak.
            "catwalk:oauth": {
                "issuer": idp.issuer,
                "scopes": [SCOPE],
                "allowedUsers": ALLOWED,
            },
        }
        config.write_text(yaml.safe_dump({"config": stack}))
        env = {"FLY_API_URL": fly.base_url, "FLY_API_TOKEN": fly.token, "CATWALK_FLY_RATE": "off"}
        up = run_subprocess("up", "test", project_dir=ROOT, config_file=config, state=tmp / "state.json", env=env,
                            timeout=600)  # fmt: skip
        assert up.ok, up.error
        yield idp, fly, up.outputs


def test_up_deploys_no_authorization_server_and_points_the_server_at_the_provider(deployed) -> None:
    idp, fly, outputs = deployed
    assert "authorization_server" not in outputs
    assert {m["app"] for m in fly.machines() if m["state"] == "started"} == {"acme-notes"}
    assert outputs["notes"]["auth"] == "oauth"
    assert outputs["notes"]["connector_url"] == "https://acme-notes.fly.dev/mcp"
    document = httpx.get(fly.app_url("acme-notes") + "/.well-known/oauth-protected-resource/mcp", timeout=60)
    assert document.json() == {"resource": "https://acme-notes.fly.dev/mcp", "authorization_servers": [idp.issuer],
                               "bearer_methods_supported": ["header"], "scopes_supported": [SCOPE]}  # fmt: skip


@pytest.mark.parametrize(
    ("sdk", "mode"),
    [(sdk_clients.PY_SDK1, "legacy"), (sdk_clients.PY_SDK2, "auto"), (sdk_clients.TS_CLIENT, "auto")],
    ids=["sdk1", "sdk2", "ts2"],
)
def test_a_web_connector_reaches_the_tool_through_the_provider_and_the_fly_proxy(deployed, sdk, mode) -> None:
    idp, fly, outputs = deployed
    url = outputs["notes"]["connector_url"]
    routes = {"https://acme-notes.fly.dev": fly.app_url("acme-notes")}
    report = oauth_idp.oauth_client(sdk, url, mode, "register", routes=routes)
    steps = [f"{method} {target} {status}" for method, target, status in report["flow"]]
    assert "error" not in report, f"{report.get('error')}\n" + "\n".join(steps)
    assert report["result"] == "hello through oauth"
    assert steps[0] == "POST https://acme-notes.fly.dev/mcp 401", "\n".join(steps)
    assert "GET https://acme-notes.fly.dev/.well-known/oauth-protected-resource/mcp 200" in steps
    assert f"POST {idp.issuer}/register 201" in steps and f"POST {idp.issuer}/token 200" in steps
    assert report["claims"]["aud"] == url and report["claims"]["iss"] == idp.issuer


def test_only_the_allowed_users_and_only_tokens_for_this_server_get_through(deployed) -> None:
    idp, fly, outputs = deployed
    url = outputs["notes"]["connector_url"]
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                  "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                             "clientInfo": {"name": "t", "version": "0"}}}  # fmt: skip

    def status(token: str) -> int:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"}
        return httpx.post(fly.app_url("acme-notes") + "/mcp", json=initialize, headers=headers, timeout=60).status_code

    assert status(idp.token(url, SCOPE)["access_token"]) == 200
    assert status(idp.token(url, SCOPE, user="mallory")["access_token"]) == 403  # logged in, not allowed here
    assert status(idp.token("https://acme-ledger.fly.dev/mcp", SCOPE)["access_token"]) == 401  # another server's
