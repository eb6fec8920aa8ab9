"""Each `auth` mode under the program: what the gateway's machine env says, what the MCP check proves, and
what the outputs tell a user about connecting (a connector URL for web clients, a header for CLI clients)."""

from __future__ import annotations

import json

import pulumi
import pytest

from tests.program.test_program import is_secret, run_program, value

IDP = {
    "issuer": "https://acme.eu.auth0.com/",
    "scopes": ["mcp:tools"],
    "allowedUsers": ["ada@acme.dev"],
    "allowedGroups": ["mcp-operators"],
}


def stack(*servers: dict, **settings) -> dict:
    return {"appPrefix": "acme", "oauth": IDP, "servers": list(servers), **settings}


def git(**overrides) -> dict:
    return {"name": "git", "package": "mcp-server-git", **overrides}


def memory(**overrides) -> dict:
    return {"name": "memory", "package": "@modelcontextprotocol/server-memory", **overrides}


def machine_env(mocks, name: str) -> dict:
    return value({r[1]: r[2] for r in mocks.of(":FlyMachine")}[name]["env"])


def test_an_oauth_server_tells_its_gateway_the_issuer_its_own_audience_scopes_and_who_may_in(monkeypatch):
    mocks, _ = run_program(monkeypatch, stack(git(auth="oauth")))
    env = machine_env(mocks, "git-iad-0")
    assert env["MCP_AUTH_MODE"] == "oauth"
    assert env["MCP_OAUTH_ISSUER"] == "https://acme.eu.auth0.com/"
    assert env["MCP_OAUTH_RESOURCE"] == "https://acme-git.fly.dev/mcp", "the audience is the server's own URL"
    assert env["MCP_OAUTH_SCOPES"] == "mcp:tools"
    assert json.loads(env["MCP_OAUTH_ALLOWED_USERS"]) == ["ada@acme.dev"]
    assert json.loads(env["MCP_OAUTH_ALLOWED_GROUPS"]) == ["mcp-operators"]
    assert "MCP_OAUTH_JWKS_URI" not in env and "MCP_AUTH" not in env


def test_a_jwks_uri_of_the_identity_provider_reaches_the_gateway(monkeypatch):
    idp = {"issuer": "https://login.example.com/realms/ops", "jwksUri": "https://login.example.com/certs"}
    mocks, _ = run_program(monkeypatch, stack(git(auth="both"), oauth=idp))
    env = machine_env(mocks, "git-iad-0")
    assert env["MCP_AUTH_MODE"] == "both" and env["MCP_OAUTH_JWKS_URI"] == "https://login.example.com/certs"
    assert "MCP_OAUTH_SCOPES" not in env and "MCP_OAUTH_ALLOWED_USERS" not in env


def test_a_bearer_server_keeps_its_machine_env_free_of_oauth_settings(monkeypatch):
    # Stacks written before OAuth must not see their machines updated.
    mocks, _ = run_program(monkeypatch, stack(git(), memory(auth="bearer")))
    for name in ("git-iad-0", "memory-iad-0"):
        assert not [k for k in machine_env(mocks, name) if k.startswith(("MCP_AUTH", "MCP_OAUTH"))]


def test_an_oauth_server_still_gets_a_gateway_token_but_hands_no_client_a_header(monkeypatch):
    mocks, exports = run_program(monkeypatch, stack(git(auth="oauth")))
    secrets = {r[1]: r[2] for r in mocks.of(":FlySecrets")}["git-secrets"]["values"]["value"]
    assert secrets == {"MCP_AUTH_TOKEN": "tok-git-token"}, "the gateway starts only with a token or MCP_AUTH=off"
    out = value(exports["git"])
    assert out["auth"] == "oauth" and out["token"] is None
    assert out["connector_url"] == "https://acme-git.fly.dev/mcp"
    assert out["authorization_server"] == "https://acme.eu.auth0.com/"
    assert "Authorization" not in out["clients"]["cursor"] and "--header" not in out["clients"]["claude_code"]
    assert out["clients"]["claude_code"] == "claude mcp add --transport http git https://acme-git.fly.dev/mcp"


def test_both_gives_a_connector_url_and_the_header_config(monkeypatch):
    _, exports = run_program(monkeypatch, stack(git(auth="both")))
    out = value(exports["git"])
    assert out["auth"] == "both" and out["token"] == "tok-git-token"
    assert out["connector_url"] == "https://acme-git.fly.dev/mcp"
    headers = json.loads(out["clients"]["vscode"])["servers"]["git"]["headers"]
    assert headers == {"Authorization": "Bearer tok-git-token"}
    assert is_secret(exports["git"]["token"]) and is_secret(exports["git"]["clients"])


def test_bearer_has_no_connector_url_and_open_says_open(monkeypatch):
    _, exports = run_program(monkeypatch, stack(git(), memory(auth=False)))
    bearer, open_ = value(exports["git"]), value(exports["memory"])
    assert bearer["auth"] == "bearer" and bearer["connector_url"] is None and bearer["authorization_server"] is None
    assert open_["auth"] == "open" and open_["token"] is None
    assert open_["connector_url"] == "https://acme-memory.fly.dev/mcp"


def test_the_check_of_an_oauth_server_proves_its_discovery_and_of_both_also_the_handshake(monkeypatch):
    mocks, _ = run_program(monkeypatch, stack(git(auth="oauth"), memory(auth="both")))
    checks = {r[1]: r[2] for r in mocks.of(":McpCheck")}
    assert checks["git-check"]["issuer"] == "https://acme.eu.auth0.com/" and checks["git-check"].get("token") is None
    assert checks["memory-check"]["issuer"] == "https://acme.eu.auth0.com/"
    sealed = checks["memory-check"]["token"]
    assert sealed[pulumi.runtime.rpc._special_sig_key] == pulumi.runtime.rpc._special_secret_sig


def test_oauth_without_an_issuer_and_without_a_passphrase_fails_before_any_resource(monkeypatch):
    with pytest.raises(pulumi.RunError, match=r"oauthPassphrase: has no value") as caught:
        run_program(monkeypatch, {"servers": [git(auth="oauth")]})
    assert "pulumi config set --secret catwalk:oauthPassphrase" in str(caught.value)


PASSPHRASE = "correct horse battery staple"


def builtin(*servers: dict, **settings) -> dict:
    return {"appPrefix": "acme", "servers": list(servers), "oauthPassphrase": PASSPHRASE, **settings}


def test_oauth_without_an_issuer_deploys_the_builtin_server_in_its_own_app(monkeypatch):
    config = builtin(git(auth="oauth"), memory(auth="both"), {"name": "time", "package": "mcp-server-git"})
    mocks, exports = run_program(monkeypatch, config, secret_keys=["oauthPassphrase"])
    assert [r[1] for r in mocks.of(":AuthServer")] == ["auth"]
    assert sorted(r[2]["name"] for r in mocks.of(":FlyApp")) == ["acme-auth", "acme-git", "acme-images",
                                                                 "acme-memory", "acme-time"]  # fmt: skip
    machines = {r[1]: r[2] for r in mocks.of(":FlyMachine")}
    machine = machines["auth-iad-0"]
    assert machine["cmd"] == ["authserver"] and "cmd" not in machines["git-iad-0"]
    env = value(machine["env"])
    assert env["CATWALK_AS_ISSUER"] == "https://acme-auth.fly.dev"
    assert json.loads(env["CATWALK_AS_RESOURCES"]) == [
        "https://acme-git.fly.dev/mcp",
        "https://acme-memory.fly.dev/mcp",
    ]
    assert env["CATWALK_AS_SCOPES"] == "mcp" and env["CATWALK_AS_STATE"] == "/data"
    assert PASSPHRASE not in json.dumps(env) and not [k for k in env if "SEED" in k or "PASSPHRASE" in k]
    assert value(machine["mounts"])[0]["path"] == "/data"
    [volume] = [r[2] for r in mocks.of(":FlyVolume")]
    assert volume["server"] == "auth" and volume["size_gb"] == 1

    for server in ("git-iad-0", "memory-iad-0"):
        gateway = value(machines[server]["env"])
        assert gateway["MCP_OAUTH_ISSUER"] == "https://acme-auth.fly.dev" and gateway["MCP_OAUTH_SCOPES"] == "mcp"
    assert "MCP_OAUTH_ISSUER" not in value(machines["time-iad-0"]["env"])
    assert value(exports["git"])["authorization_server"] == "https://acme-auth.fly.dev"
    assert value(exports["authorization_server"]) == {"app": "acme-auth", "issuer": "https://acme-auth.fly.dev"}


def test_the_builtin_servers_seed_and_passphrase_reach_only_its_fly_secrets_as_pulumi_secrets(monkeypatch):
    mocks, _ = run_program(monkeypatch, builtin(git(auth="oauth")), secret_keys=["oauthPassphrase"])
    secrets = {r[1]: r[2] for r in mocks.of(":FlySecrets")}
    sealed = secrets["auth-secrets"]["values"]
    assert sealed[pulumi.runtime.rpc._special_sig_key] == pulumi.runtime.rpc._special_secret_sig
    assert sealed["value"] == {"CATWALK_AS_SIGNING_SEED": "tok-auth-signing-seed", "CATWALK_AS_PASSPHRASE": PASSPHRASE}
    [seed] = [r[2] for r in mocks.of(":RandomPassword") if r[1] == "auth-signing-seed"]
    assert seed["length"] >= 32 and seed["keepers"] == {"rotation": "1"}, "rotates with catwalk:tokenRotation"
    assert PASSPHRASE not in json.dumps(secrets["git-secrets"], default=str)


def test_no_builtin_server_when_an_identity_provider_is_named_or_no_server_uses_oauth(monkeypatch):
    mocks, exports = run_program(monkeypatch, stack(git(auth="oauth")))
    assert not mocks.of(":AuthServer") and "authorization_server" not in exports
    mocks, _ = run_program(monkeypatch, builtin(git()), secret_keys=["oauthPassphrase"])
    assert not mocks.of(":AuthServer") and not mocks.of(":FlyVolume")


def test_a_short_passphrase_fails_before_any_resource(monkeypatch):
    config = {**builtin(git(auth="oauth")), "oauthPassphrase": "hunter2"}
    with pytest.raises(pulumi.RunError, match=r"oauthPassphrase: is shorter than 12 characters") as caught:
        run_program(monkeypatch, config, secret_keys=["oauthPassphrase"])
    assert "hunter2" not in str(caught.value)
