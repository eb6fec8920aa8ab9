"""The test stack deployed for real: `harness up` builds and pushes the images, and the Fly emulator runs
each machine as a container of its image (by digest, from the local registry).

The stack is `Pulumi.test.yaml` without its prebuilt image, so `up` builds the unified image from `deploy/`,
bakes each server on it, pushes both to the registry of CATWALK_REGISTRY and creates machines of the baked
digests; every server then answers MCP through its machine's URL, with its token only.
"""

from __future__ import annotations

import httpx
import pytest
import yaml

from components.mcpcheck import check
from tests.docker.conftest import ROOT
from tests.tools.fly_emulator.containers import Engine as ContainerEngine
from tests.tools.fly_emulator.fixture import running_emulator
from tests.tools.harness import run_subprocess

pytestmark = [pytest.mark.network, pytest.mark.slow, pytest.mark.timeout(3600)]
APPS = {"memory": "catwalk-test-memory", "time": "catwalk-test-time"}


@pytest.fixture(scope="module")
def stack(provider_env, tmp_path_factory):
    work = tmp_path_factory.mktemp("stack")
    engine = ContainerEngine(host=provider_env.host, client=provider_env.client)
    with running_emulator(containers=engine, workdir=work / "machines") as emulator:
        env = {"FLY_API_URL": emulator.base_url, "FLY_API_TOKEN": emulator.token, "CATWALK_FLY_RATE": "off"}
        config = work / "Pulumi.test.yaml"
        doc = yaml.safe_load((ROOT / "Pulumi.test.yaml").read_text())
        del doc["config"]["catwalk:image"]  # build: the unified image, then one baked image per server
        config.write_text(yaml.safe_dump(doc))

        def harness(command: str, **kwargs):
            return run_subprocess(
                command,
                "test",
                project_dir=ROOT,
                config_file=config,
                state=work / "state.json",
                env=env,
                timeout=3000,
                **kwargs,
            )

        yield emulator, harness


def test_up_builds_pushes_and_runs_each_server_as_a_container_that_answers_mcp(stack, provider_env):
    emulator, harness = stack
    up = harness("up", show_secrets=True)
    assert up.ok, up.error
    images = {m["app"]: m["process"]["image"] for m in emulator.machines() if m["state"] == "started"}
    for server, app in APPS.items():
        assert images[app].startswith(f"{provider_env.registry}/{app}@sha256:"), images
        outputs = up.outputs[server]
        answer = check(outputs["local_url"], token=outputs["token"], timeout=300, wait_until_up=True, poll_interval=1)
        assert answer.ok, f"{server}: {answer.error}"
        assert answer.tools, server
        assert httpx.post(outputs["local_url"], json={}, timeout=10).status_code == 401
        [machine] = [m for m in emulator.machines() if m["app"] == app and m["state"] == "started"]
        top = provider_env.docker("top", machine["process"]["container"], "-eo", "pid,uid,args").stdout
        assert {row.split()[1] for row in top.splitlines()[1:] if row.strip()} == {"10001"}, top


def test_a_second_up_builds_nothing_and_changes_nothing(stack):
    emulator, harness = stack
    emulator.clear_calls()
    again = harness("up")
    assert again.ok, again.error
    assert {o["op"] for o in again.operations} == {"same"}
    assert emulator.mutating_calls() == []
