"""Secret stack settings through the engine harness and the Fly emulator: a secret is used, never taken as absent.

Custom-command servers on a prebuilt image: nothing is detected from a registry or built, so the whole
program and its real providers run offline against the emulator.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.tools.fly_emulator.fixture import running_emulator
from tests.tools.stack_files import per_file_harness

NESTED = "catwalk:servers[0].env.API_BASE"


def stack_file(path: Path, api_base: object, **settings: object) -> Path:
    config = {
        "catwalk:appPrefix": "catwalk-sec",
        "catwalk:image": "registry.fly.io/catwalk-base:v1",
        "catwalk:verify": False,
        "catwalk:servers": [
            {"name": "tool", "command": "node /srv/tool.js --stdio", "env": {"API_BASE": api_base}},
            {"name": "other", "command": "node /srv/other.js"},
        ],
        **{f"catwalk:{k}": v for k, v in settings.items()},
    }
    path.write_text(yaml.safe_dump({"config": config}))
    return path


@pytest.fixture
def stack(tmp_path):
    with running_emulator() as emulator:
        yield emulator, per_file_harness(emulator, tmp_path / "state.json", stack="sec"), tmp_path


def test_a_nested_secret_under_servers_plans_no_delete_and_reaches_the_app_secrets(stack):
    emulator, harness, tmp = stack
    plain = harness("up", stack_file(tmp / "plain.yaml", "https://one.example"))
    assert plain.ok, plain.error
    machines = {m["id"] for m in emulator.machines()}

    # `pulumi config set --secret --path 'catwalk:servers[0].env.API_BASE'`: the whole key turns secret.
    nested = stack_file(tmp / "nested.yaml", {"secure": "v1:encrypted"})
    preview = harness("preview", nested, secrets={NESTED: "https://two.example"})
    assert preview.ok, preview.error
    assert not preview.ops("delete") and not preview.ops("replace"), preview.operations

    up = harness("up", nested, secrets={NESTED: "https://two.example"})
    assert up.ok, up.error
    assert not up.ops("delete") and not up.ops("replace"), up.operations
    assert {m["id"] for m in emulator.machines()} == machines, "the same machines keep running"
    state = emulator.emulator.state
    assert state.secret_env("catwalk-sec-tool")["API_BASE"] == "https://two.example"
    assert state.secret_env("catwalk-sec-tool")["MCP_COMMAND"] == "node /srv/tool.js --stdio"
    [machine] = [m for m in state.machines.values() if m.app == "catwalk-sec-tool"]
    assert "API_BASE" not in machine.config["env"], "a secret value never lands in the machine config"
    assert "two.example" not in (tmp / "state.json").read_text(), "nor in plain state"


def test_a_secret_app_prefix_names_the_apps(stack):
    emulator, harness, tmp = stack
    config = stack_file(tmp / "prefix.yaml", "https://one.example", appPrefix={"secure": "v1:encrypted"})
    up = harness("up", config, secrets={"catwalk:appPrefix": "team-sec"})
    assert up.ok, up.error
    assert {m["app"] for m in emulator.machines()} == {"team-sec-tool", "team-sec-other"}
