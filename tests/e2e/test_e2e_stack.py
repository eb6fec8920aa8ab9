"""End to end, locally: the real program, real providers and real servers, against the Fly emulator.

The emulator runs each started machine as a local `deploy/entrypoint.sh` process, so the MCP servers the
stack deploys really answer (through the auth gateway) on loopback. Slow: it installs real npm and PyPI
servers, so every step shares one module-scoped deployment.
"""

from __future__ import annotations

import httpx
import pytest

from components.fly import FlyClient
from components.mcpcheck import check
from tests.tools.fly_emulator.fixture import running_emulator
from tests.tools.stack_files import edit_servers, stack_harness, write_test_stack

pytestmark = [pytest.mark.network, pytest.mark.slow]
APPS = {"memory": "catwalk-test-memory", "time": "catwalk-test-time"}


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    work = tmp_path_factory.mktemp("e2e")
    with running_emulator(run_machines=True, workdir=work / "machines") as emulator:
        config = write_test_stack(work / "Pulumi.test.yaml")
        yield emulator, stack_harness(emulator, config, work / "state.json", timeout=900), config


def local_url(emulator, app: str) -> str:
    """Where the emulator runs the app's one started machine: its loopback /mcp endpoint."""
    [machine] = [m for m in emulator.machines() if m["app"] == app and m["state"] == "started"]
    return machine["process"]["url"] + "/mcp"


def test_up_deploys_an_npm_and_a_python_server_that_answer_mcp_with_their_token(deployment):
    emulator, harness, _ = deployment
    preview = harness("preview")
    assert preview.ok, preview.error
    assert {o["op"] for o in preview.operations} == {"create"}
    assert not emulator.machines(), "preview must not create anything"

    up = harness("up", show_secrets=True)
    assert up.ok, up.error
    assert {o["op"] for o in up.operations} == {"create"}
    for server, app in APPS.items():
        outputs = up.outputs[server]
        assert outputs["url"] == f"https://{app}.fly.dev/mcp" and outputs["app"] == app
        url = outputs["local_url"]
        assert url == local_url(emulator, app)
        answer = check(url, token=outputs["token"], timeout=300, wait_until_up=True, poll_interval=1)
        assert answer.ok, f"{server}: {answer.error}"
        assert answer.tools, server
        assert httpx.post(url, json={}, timeout=10).status_code == 401
    assert up.outputs["memory"]["badge"] == "📦 npm" and up.outputs["time"]["badge"] == "🐍 python"


def test_second_up_changes_nothing_and_makes_no_mutating_fly_call(deployment):
    emulator, harness, _ = deployment
    emulator.clear_calls()
    again = harness("up")
    assert again.ok, again.error
    assert {o["op"] for o in again.operations} == {"same"}
    assert emulator.mutating_calls() == []
    assert again.outputs["time"]["token"] == "[secret]"


def test_env_change_updates_that_servers_machine_in_place(deployment):
    emulator, harness, config = deployment
    before = {m["app"]: m["id"] for m in emulator.machines()}

    def add_env(servers):
        servers[1]["env"] = {"TZ_HINT": "utc"}
        return servers

    edit_servers(config, add_env)
    changed = harness("up")
    assert changed.ok, changed.error
    changes = [(o["name"], o["op"]) for o in changed.operations if o["op"] != "same"]
    assert changes == [("time-iad-0", "update")]
    after = {m["app"]: m["id"] for m in emulator.machines()}
    assert after == before, "an env change keeps the same machine"


def test_removing_a_server_deletes_its_resources_and_destroy_empties_fly(deployment):
    emulator, harness, config = deployment
    edit_servers(config, lambda servers: servers[:1])
    removed = harness("up")
    assert removed.ok, removed.error
    deleted = {o["name"] for o in removed.operations if o["op"] == "delete"}
    assert {"time", "time-iad-0", "time-secrets", "time-ipv4", "time-ipv6"} <= deleted
    assert {o["op"] for o in removed.operations if not o["name"].startswith("time")} == {"same"}
    assert {m["app"] for m in emulator.machines() if m["state"] != "destroyed"} == {APPS["memory"]}

    destroyed = harness("destroy")
    assert destroyed.ok, destroyed.error
    assert [m for m in emulator.machines() if m["state"] != "destroyed"] == []
    apps = FlyClient(emulator.base_url, emulator.token).list_apps("personal")
    assert apps == []
