"""The Pulumi program under `set_mocks`: resource graph, outputs and secrecy for each kind of server."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pulumi
import pytest
from pulumi.runtime.sync_await import _sync_await

from components.detect import DetectError, RuntimeSpec
from components.detect import core as detect_core

STACK_ID = "k3x9a2b1"
SPECS = {
    "mcp-server-git": RuntimeSpec(
        spec="mcp-server-git",
        runtime="python",
        registry="pypi",
        package="mcp-server-git",
        version="2025.1.14",
        pinned="mcp-server-git==2025.1.14",
        launch=["mcp-server-git"],
        resolved_at=datetime(2025, 1, 14, 12, 0, tzinfo=timezone.utc),
        evidence=["PyPI only"],
    ),
    "@modelcontextprotocol/server-memory": RuntimeSpec(
        spec="@modelcontextprotocol/server-memory",
        runtime="npm",
        registry="npm",
        package="@modelcontextprotocol/server-memory",
        version="2025.4.25",
        pinned="@modelcontextprotocol/server-memory@2025.4.25",
        launch=["mcp-server-memory"],
        resolved_at=datetime(2025, 4, 25, tzinfo=timezone.utc),
        evidence=["scoped"],
    ),
}


class Mocks(pulumi.runtime.Mocks):
    def __init__(self):
        self.resources: list[tuple[str, str, dict]] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        inputs = {k: v for k, v in args.inputs.items() if k != "__provider"}
        self.resources.append((args.typ, args.name, inputs))
        outputs = dict(inputs)
        if args.typ.endswith(":FlyApp"):
            outputs["app_id"] = inputs["name"]
        if args.typ.endswith(":FlyMachine"):
            outputs.update(machine_id=f"m-{args.name}", version="v1")
        if args.typ.endswith(":FlySecrets"):
            outputs["version"] = 3
        if "image" in args.typ.lower():
            outputs["image_ref"] = f"registry.fly.io/{inputs.get('app', 'x')}@sha256:{'a' * 64}"
        if args.typ == "random:index/randomPassword:RandomPassword":
            outputs["result"] = "tok-" + args.name
        if args.typ == "random:index/randomString:RandomString":
            outputs["result"] = STACK_ID
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}

    def of(self, suffix: str) -> list[tuple[str, str, dict]]:
        return [r for r in self.resources if r[0].endswith(suffix)]


def fake_detect(
    package, *, version=None, runtime=None, args=None, clients=None, browser=None, session=None, cache=None
):
    if package not in SPECS:
        raise DetectError(f"{package}: not found on PyPI or npm")
    return SPECS[package].model_copy(update={"args": list(args or [])})


def run_main(monkeypatch, mocks: pulumi.runtime.Mocks, config: dict, *, detect, secret_keys=(), preview=False) -> dict:
    """Run infra.program.main() under ``mocks``, with ``detect`` in place of detection; return what it exported."""
    import infra.program as program

    pulumi.runtime.set_mocks(mocks, project="catwalk", stack="dev", preview=preview)
    pulumi.runtime.set_all_config(
        {f"catwalk:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in config.items()},
        [f"catwalk:{k}" for k in secret_keys],
    )
    monkeypatch.setattr(detect_core, "detect", detect)
    monkeypatch.setattr(detect_core.Clients, "make", classmethod(lambda cls, *a, **k: None))
    exports: dict[str, object] = {}
    monkeypatch.setattr(pulumi, "export", lambda name, value: exports.__setitem__(name, value))
    pulumi.runtime.test(program.main)()  # returns once every registration has reached the mocks
    return exports


def run_program(monkeypatch, config: dict, secret_keys=()):
    """Run infra.program.main() under mocks; return the mocks and what the program exported."""
    mocks = Mocks()
    exports = run_main(monkeypatch, mocks, config, detect=fake_detect, secret_keys=secret_keys)
    return mocks, exports


def value(output):
    """The plain value of an output (Outputs nested in dicts and lists included)."""
    return _sync_await(pulumi.Output.from_input(output).future())


def is_secret(output) -> bool:
    return _sync_await(pulumi.Output.from_input(output).is_secret())


TWO_SERVERS = {
    "appPrefix": "acme",
    "servers": [
        {
            "name": "git",
            "package": "mcp-server-git",
            "args": ["--repository", "/data"],
            "regions": ["iad", "ams"],
            "secrets": ["GITHUB_TOKEN"],
        },
        {"name": "memory", "package": "@modelcontextprotocol/server-memory", "auth": False, "env": {"LOG": "1"}},
    ],
    "GITHUB_TOKEN": "ghp_supersecret",
}


def test_two_servers_build_their_apps_secrets_ips_images_and_a_machine_per_region(monkeypatch):
    mocks, exports = run_program(monkeypatch, TWO_SERVERS, secret_keys=["GITHUB_TOKEN"])
    assert sorted(r[1] for r in mocks.of(":McpServer")) == ["git", "memory"]
    assert sorted(r[2]["name"] for r in mocks.of(":FlyApp")) == ["acme-git", "acme-images", "acme-memory"]
    assert [r[1] for r in mocks.of(":UnifiedImage")] == ["unified"]
    assert sorted(r[1] for r in mocks.of(":BakedImage")) == ["git-image", "memory-image"]
    machines = {r[1]: r[2] for r in mocks.of(":FlyMachine")}
    assert sorted(machines) == ["git-ams-0", "git-iad-0", "memory-iad-0"]
    assert len(mocks.of(":RandomPassword")) == 1, "only the server with auth gets a token"
    assert len(mocks.of(":FlyIp")) == 4

    git = value(exports["git"])
    assert git["url"] == "https://acme-git.fly.dev/mcp" and git["sse_url"] == "https://acme-git.fly.dev/sse"
    assert git["badge"] == "🐍 python" and git["runtime"] == "python" and git["version"] == "2025.1.14"
    assert git["regions"] == ["iad", "ams"] and git["token"] == "tok-git-token"
    assert "claude mcp add --transport http git https://acme-git.fly.dev/mcp" in git["clients"]["claude_code"]
    assert json.loads(git["clients"]["cursor"])["mcpServers"]["git"]["headers"] == {
        "Authorization": "Bearer tok-git-token"
    }


def test_machine_env_carries_the_detected_contract_and_no_secret(monkeypatch):
    mocks, _ = run_program(monkeypatch, TWO_SERVERS, secret_keys=["GITHUB_TOKEN"])
    machines = {r[1]: r[2] for r in mocks.of(":FlyMachine")}

    env = value(machines["git-iad-0"]["env"])
    assert env["MCP_RUNTIME"] == "python" and env["MCP_PACKAGE"] == "mcp-server-git==2025.1.14"
    assert json.loads(env["MCP_LAUNCH"]) == ["mcp-server-git"]
    assert json.loads(env["MCP_ARGS"]) == ["--repository", "/data"]
    assert env["MCP_RESOLVED_AT"] == "2025-01-14T12:00:00Z"
    assert "GITHUB_TOKEN" not in env and "MCP_AUTH_TOKEN" not in env
    assert "ghp_supersecret" not in json.dumps(machines, default=str)
    assert machines["memory-iad-0"]["env"]["LOG"] == "1"


def test_secrets_and_token_reach_fly_secrets_only_as_pulumi_secrets(monkeypatch):
    mocks, exports = run_program(monkeypatch, TWO_SERVERS, secret_keys=["GITHUB_TOKEN"])
    secrets = {r[1]: r for r in mocks.of(":FlySecrets")}["git-secrets"]
    wrapped = secrets[2]["values"]  # sent to the engine as a secret: encrypted in state
    assert wrapped[pulumi.runtime.rpc._special_sig_key] == pulumi.runtime.rpc._special_secret_sig
    assert wrapped["value"] == {"GITHUB_TOKEN": "ghp_supersecret", "MCP_AUTH_TOKEN": "tok-git-token"}

    assert is_secret(exports["git"]["token"]) is True
    assert is_secret(exports["git"]["clients"]) is True
    assert is_secret(exports["git"]["url"]) is False


def test_auth_off_exports_no_token_and_plain_client_configs(monkeypatch):
    mocks, exports = run_program(monkeypatch, TWO_SERVERS, secret_keys=["GITHUB_TOKEN"])
    memory_secrets = {r[1]: r[2] for r in mocks.of(":FlySecrets")}["memory-secrets"]
    assert memory_secrets["values"]["value"] == {}, "kept, empty: turning auth off unsets the token first"
    memory = value(exports["memory"])
    assert memory["token"] is None and memory["badge"] == "📦 npm"
    assert "Authorization" not in memory["clients"]["cursor"]


def test_auth_off_is_an_explicit_opt_out_in_the_machine_env_and_auth_on_has_none(monkeypatch):
    # Without a token the gateway starts only when told to: a lost token must not mean an open server.
    mocks, _ = run_program(monkeypatch, TWO_SERVERS, secret_keys=["GITHUB_TOKEN"])
    machines = {r[1]: r[2] for r in mocks.of(":FlyMachine")}
    assert machines["memory-iad-0"]["env"]["MCP_AUTH"] == "off"
    assert "MCP_AUTH" not in machines["git-iad-0"]["env"] and "MCP_AUTH" not in machines["git-ams-0"]["env"]


def test_custom_command_runs_on_the_unified_image_without_baking(monkeypatch):
    config = {
        "image": "registry.fly.io/catwalk-base:v1",
        "verify": False,
        "servers": [{"name": "tool", "command": "node /srv/tool.js --stdio"}],
    }
    mocks, exports = run_program(monkeypatch, config)
    assert not mocks.of(":UnifiedImage") and not mocks.of(":BakedImage") and not mocks.of(":McpCheck")
    [(_, _, machine)] = mocks.of(":FlyMachine")
    assert machine["image"] == "registry.fly.io/catwalk-base:v1"
    assert machine["env"]["MCP_RUNTIME"] == "custom" and machine["env"]["MCP_COMMAND"] == "node /srv/tool.js --stdio"
    assert exports["tool"]["badge"] == "⚙️ custom"


def test_bad_config_fails_before_any_resource(monkeypatch):
    with pytest.raises(pulumi.RunError, match=r"server 'x': package: .*';'"):
        run_program(monkeypatch, {"servers": [{"name": "x", "package": "a;b"}]})


def test_missing_secret_value_fails_naming_the_config_command(monkeypatch):
    config = {"servers": [{"name": "git", "package": "mcp-server-git", "secrets": ["GITHUB_TOKEN"]}]}
    with pytest.raises(pulumi.RunError, match=r"pulumi config set --secret git\.GITHUB_TOKEN"):
        run_program(monkeypatch, config)


def test_unresolvable_packages_are_all_reported_together(monkeypatch):
    config = {"servers": [{"name": "a", "package": "no-such-mcp-a"}, {"name": "b", "package": "no-such-mcp-b"}]}
    with pytest.raises(pulumi.RunError) as caught:
        run_program(monkeypatch, config)
    assert "server 'a'" in str(caught.value) and "server 'b'" in str(caught.value)


SECRET_SERVERS = {
    "appPrefix": "acme",
    "image": "registry.fly.io/catwalk-base:v1",
    "verify": False,
    "servers": [
        {
            "name": "tool",
            "command": "node /srv/tool.js --stdio",
            "args": ["--key", "k-123"],
            "env": {"API_BASE": "b-1"},
        },
        {"name": "git", "package": "mcp-server-git", "env": {"LOG": "1"}},
    ],
}


def test_a_secret_servers_key_deploys_every_server_and_keeps_its_values_out_of_machine_config(monkeypatch):
    # A nested `--path` secret makes the whole `catwalk:servers` key secret: it is read, not taken as empty.
    mocks, exports = run_program(monkeypatch, SECRET_SERVERS, secret_keys=["servers"])
    assert sorted(r[1] for r in mocks.of(":FlyMachine")) == ["git-iad-0", "tool-iad-0"]
    machines = {r[1]: r[2] for r in mocks.of(":FlyMachine")}
    assert "b-1" not in json.dumps(machines, default=str) and "k-123" not in json.dumps(machines, default=str)
    tool_env = machines["tool-iad-0"]["env"]
    assert tool_env["MCP_RUNTIME"] == "custom" and "MCP_COMMAND" not in tool_env and "MCP_ARGS" not in tool_env
    assert "LOG" not in machines["git-iad-0"]["env"] and machines["git-iad-0"]["env"]["MCP_RUNTIME"] == "python"

    secrets = {r[1]: r[2] for r in mocks.of(":FlySecrets")}
    tool_values = secrets["tool-secrets"]["values"]
    assert tool_values[pulumi.runtime.rpc._special_sig_key] == pulumi.runtime.rpc._special_secret_sig
    assert tool_values["value"]["API_BASE"] == "b-1"
    assert tool_values["value"]["MCP_COMMAND"] == "node /srv/tool.js --stdio"
    assert json.loads(tool_values["value"]["MCP_ARGS"]) == ["--key", "k-123"]
    assert secrets["git-secrets"]["values"]["value"]["LOG"] == "1"
    assert is_secret(exports["tool"]["package"]) and is_secret(exports["tool"]["launch"])
    assert value(exports["git"]["package"]) == "mcp-server-git"


def test_a_plain_servers_key_keeps_env_in_the_machine_config(monkeypatch):
    mocks, _ = run_program(monkeypatch, SECRET_SERVERS)
    machines = {r[1]: r[2] for r in mocks.of(":FlyMachine")}
    assert machines["tool-iad-0"]["env"]["API_BASE"] == "b-1" and "MCP_COMMAND" in machines["tool-iad-0"]["env"]


def test_a_secret_app_prefix_names_the_apps(monkeypatch):
    mocks, exports = run_program(monkeypatch, {**SECRET_SERVERS, "appPrefix": "team-x"}, secret_keys=["appPrefix"])
    assert sorted(r[2]["name"] for r in mocks.of(":FlyApp")) == ["team-x-git", "team-x-tool"]
    assert value(exports["tool"]["url"]) == "https://team-x-tool.fly.dev/mcp"


def test_the_newest_dependencies_fallback_reaches_the_machine_env_and_the_baked_build_only_when_chosen(monkeypatch):
    config = {
        **TWO_SERVERS,
        "servers": [{**TWO_SERVERS["servers"][0], "fallback": "newest"}, TWO_SERVERS["servers"][1]],
    }
    mocks, _ = run_program(monkeypatch, config, secret_keys=["GITHUB_TOKEN"])
    machines = {r[1]: r[2] for r in mocks.of(":FlyMachine")}
    assert machines["git-iad-0"]["env"]["MCP_CUTOFF_FALLBACK"] == "none"
    assert "MCP_CUTOFF_FALLBACK" not in machines["memory-iad-0"]["env"]
    images = {r[1]: r[2] for r in mocks.of(":BakedImage")}
    assert images["git-image"]["newest_fallback"] is True and images["memory-image"]["newest_fallback"] is False
