"""The test stack deployed for real: `harness up` builds and pushes the images, and the Fly emulator runs
each machine as a container of its image (by digest, from the local registry).

The stack is `Pulumi.test.yaml` without its prebuilt image, so `up` builds the unified image from `deploy/`,
bakes each server on it, pushes both to the registry of CATWALK_REGISTRY and creates machines of the baked
digests; every server then answers MCP through its machine's URL, with its token only. A second `up` changes
nothing; after `deploy/entrypoint.sh` changes (in a copy of `deploy/` the program builds from), `up` rebuilds
the images and rolls every machine onto its new digest.
"""

from __future__ import annotations

import shutil

import httpx
import pytest

from components.mcpcheck import check
from tests.docker.conftest import DEPLOY, ROOT
from tests.tools.fly_emulator.containers import Engine as ContainerEngine
from tests.tools.fly_emulator.fixture import running_emulator
from tests.tools.stack_files import stack_harness, write_test_stack

pytestmark = [pytest.mark.network, pytest.mark.slow, pytest.mark.timeout(3600)]
APPS = {"memory": "catwalk-test-memory", "time": "catwalk-test-time"}
PROGRAM = ROOT / "tests" / "docker" / "program_deploy_copy.py"


@pytest.fixture(scope="module")
def stack(provider_env, tmp_path_factory):
    work = tmp_path_factory.mktemp("stack")
    deploy = work / "deploy"
    shutil.copytree(DEPLOY, deploy, ignore=shutil.ignore_patterns("__pycache__"))
    engine = ContainerEngine(host=provider_env.host, client=provider_env.client)
    with running_emulator(containers=engine, workdir=work / "machines") as emulator:
        # build: the unified image, then one baked image per server
        config = write_test_stack(work / "Pulumi.test.yaml", without=["catwalk:image"])
        harness = stack_harness(
            emulator,
            config,
            work / "state.json",
            env={"CATWALK_TEST_DEPLOY_DIR": str(deploy)},
            program=PROGRAM,
            timeout=3000,
        )
        yield emulator, harness, deploy


def after_machine(emulator, app: str) -> str:
    [machine] = [m["id"] for m in emulator.machines() if m["app"] == app and m["state"] == "started"]
    return machine


def started_images(emulator) -> dict[str, str]:
    return {m["app"]: m["process"]["image"] for m in emulator.machines() if m["state"] == "started"}


def test_up_builds_pushes_and_runs_each_server_as_a_container_that_answers_mcp(stack, provider_env):
    emulator, harness, _ = stack
    up = harness("up", show_secrets=True)
    assert up.ok, up.error
    images = started_images(emulator)
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
    emulator, harness, _ = stack
    emulator.clear_calls()
    again = harness("up")
    assert again.ok, again.error
    assert {o["op"] for o in again.operations} == {"same"}
    assert emulator.mutating_calls() == []


def test_a_changed_entrypoint_rebuilds_the_images_and_rolls_every_machine(stack, provider_env):
    emulator, harness, deploy = stack
    before = started_images(emulator)
    entrypoint = deploy / "entrypoint.sh"
    entrypoint.write_text(entrypoint.read_text() + "# changed after the first deployment\n")
    emulator.clear_calls()
    up = harness("up", show_secrets=True)
    assert up.ok, up.error
    changed = {(o["type"].rsplit(":", 1)[-1], o["op"]) for o in up.operations if o["op"] != "same"}
    assert {kind for kind, _ in changed} >= {"UnifiedImage", "BakedImage", "FlyMachine"}, changed
    assert {op for kind, op in changed if kind == "FlyMachine"} == {"update"}, changed  # rolled, not replaced
    after = started_images(emulator)
    for server, app in APPS.items():
        assert after[app] != before[app] and after[app].startswith(f"{provider_env.registry}/{app}@sha256:"), after
        assert emulator.mutating_calls(f"/apps/{app}/machines/" + after_machine(emulator, app)), app
        outputs = up.outputs[server]
        answer = check(outputs["local_url"], token=outputs["token"], timeout=300, wait_until_up=True, poll_interval=1)
        assert answer.ok, f"{server}: {answer.error}"
        [machine] = [m for m in emulator.machines() if m["app"] == app and m["state"] == "started"]
        config = provider_env.docker("inspect", "--format", "{{.Config.Image}}", machine["process"]["container"])
        assert config.stdout.strip() == after[app]
