"""End to end: the example memory server keeps what it was told across a stop, a start and a deploy, on a volume.

The real program and providers deploy to the Fly emulator, which runs each machine as a local
`deploy/entrypoint.sh` process with Fly's disks: a root that is fresh at every start and a volume that is
not. A second memory server without a volume is the control: it forgets.
"""

from __future__ import annotations

import json
import time

import anyio
import httpx
import pytest
import yaml

from components.fly import FlyClient
from components.mcpcheck import check
from tests.tools.fly_emulator.fixture import running_emulator
from tests.tools.stack_files import stack_harness, write_test_stack

pytestmark = [pytest.mark.network, pytest.mark.slow]
MEMORY = {"package": "@modelcontextprotocol/server-memory", "version": "2026.8.31"}
SERVERS = [
    {"name": "memory", **MEMORY, "env": {"MEMORY_FILE_PATH": "/data/memory.json"}, "volume": {"path": "/data"}},
    {"name": "scratch", **MEMORY, "env": {"MEMORY_FILE_PATH": "/tmp/memory.json"}},
]
ENTITY = {"name": "catwalk", "entityType": "project", "observations": ["deploys MCP servers to Fly"]}


async def call_tool(url: str, token: str, name: str, arguments: dict) -> str:
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async with (
        httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60) as http,
        streamable_http_client(url, http_client=http) as streams,
        ClientSession(streams[0], streams[1]) as session,
    ):
        await session.initialize()
        result = await session.call_tool(name, arguments)
    assert not result.isError, result.content
    return "".join(getattr(part, "text", "") for part in result.content)


def entities(url: str, token: str) -> list[str]:
    graph = json.loads(anyio.run(call_tool, url, token, "read_graph", {}))
    return [e["name"] for e in graph["entities"]]


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    work = tmp_path_factory.mktemp("stateful")
    with running_emulator(run_machines=True, workdir=work / "machines") as emulator:
        config = write_test_stack(work / "Pulumi.test.yaml", servers=SERVERS)
        harness = stack_harness(emulator, config, work / "state.json", timeout=900)
        up = harness("up", show_secrets=True)
        assert up.ok, up.error
        tokens = {name: up.outputs[name]["token"] for name in ("memory", "scratch")}
        yield emulator, harness, config, tokens


def serving(emulator, server: str, token: str) -> str:
    """The /mcp URL of the server's started machine, once it answers."""
    [machine] = [m for m in emulator.machines() if m["app"] == f"catwalk-test-{server}" and m["state"] == "started"]
    url = machine["process"]["url"] + "/mcp"
    deadline = time.monotonic() + 300
    while True:  # the first start installs the server: a connection may drop until it serves
        answer = check(url, token=token, timeout=60, wait_until_up=True, poll_interval=1)
        if answer.ok or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert answer.ok, f"{server}: {answer.error}"
    return url


def restart(emulator, server: str) -> None:
    app = f"catwalk-test-{server}"
    with FlyClient(emulator.base_url, emulator.token, mutation_rate=0) as fly:
        [machine] = fly.list_machines(app)
        fly.stop_machine(app, machine.id)
        fly.wait_machine(app, machine.id, "stopped", deadline_s=60)
        fly.start_machine(app, machine.id)
        fly.wait_machine(app, machine.id, "started", deadline_s=60)


def test_an_entity_stored_on_the_volume_survives_stop_and_start_and_the_control_forgets(deployment):
    emulator, _, _, tokens = deployment
    for server in ("memory", "scratch"):
        url = serving(emulator, server, tokens[server])
        anyio.run(call_tool, url, tokens[server], "create_entities", {"entities": [ENTITY]})
        assert entities(url, tokens[server]) == ["catwalk"]
        restart(emulator, server)
    assert entities(serving(emulator, "memory", tokens["memory"]), tokens["memory"]) == ["catwalk"]
    assert entities(serving(emulator, "scratch", tokens["scratch"]), tokens["scratch"]) == [], (
        "without a volume the machine's disk starts fresh"
    )


def test_the_entity_survives_a_deploy_that_changes_the_env(deployment):
    emulator, harness, config, tokens = deployment
    doc = yaml.safe_load(config.read_text())
    doc["config"]["catwalk:servers"][0]["env"]["LOG_HINT"] = "changed"
    config.write_text(yaml.safe_dump(doc))
    changed = harness("up")
    assert changed.ok, changed.error
    assert [(o["name"], o["op"]) for o in changed.operations if o["op"] != "same"] == [("memory-iad-0", "update")]
    assert entities(serving(emulator, "memory", tokens["memory"]), tokens["memory"]) == ["catwalk"]
