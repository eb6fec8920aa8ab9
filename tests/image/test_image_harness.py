"""End to end through the local engine harness: a real Pulumi program, the SDK's serialization, the
provider unpickled from state as `python -m pulumi.dynamic` does, and the fake `docker` on PATH."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.tools import harness
from tests.tools.fakes import fake_docker

PROGRAM = """
import pulumi
from components.image import BakedImage, UnifiedImage

cfg = pulumi.Config()
runtime = UnifiedImage("runtime", app="catwalk-test-images", context_dir=cfg.require("deploy"))
git = BakedImage("git", app="catwalk-test-git", base=runtime.image_ref, runtime="python",
                 package="mcp-server-git==2025.1.14", launch=["mcp-server-git"],
                 resolved_at="2025-01-14T09:30:00Z")
pulumi.export("runtime", {"image": runtime.image_ref, "digest": runtime.digest, "tag": runtime.tag})
pulumi.export("git", {"image": git.image_ref, "digest": git.digest, "tag": git.tag})
"""
UNIFIED = "pulumi-python:dynamic/catwalk/image:UnifiedImage"
BAKED = "pulumi-python:dynamic/catwalk/image:BakedImage"


class ImageStack:
    def __init__(self, tmp: Path):
        self.project = tmp / "project"
        self.project.mkdir()
        (self.project / "Pulumi.yaml").write_text("name: imagetest\nruntime: python\n")
        (self.project / "__main__.py").write_text(PROGRAM)
        self.deploy = tmp / "deploy"
        self.deploy.mkdir()
        (self.deploy / "Dockerfile").write_text("FROM python:3.12-slim\nCOPY entrypoint.sh /app/\n")
        (self.deploy / "entrypoint.sh").write_text("#!/bin/sh\nexit 0\n")
        self.config = tmp / "Pulumi.test.yaml"
        self.config.write_text(yaml.safe_dump({"config": {"imagetest:deploy": str(self.deploy)}}))
        self.state = tmp / "state.json"

    def run(self, command: str) -> harness.Result:
        result = harness.run_subprocess(
            command, "test", project_dir=self.project, config_file=self.config, state=self.state, timeout=120
        )
        assert result.ok, result.error
        return result


@pytest.mark.slow
def test_up_twice_builds_once_and_touching_the_entrypoint_rebuilds_both_images(tmp_path: Path, monkeypatch):
    docker = fake_docker.install(tmp_path, monkeypatch)
    stack = ImageStack(tmp_path)

    first = stack.run("up")
    assert {(o["type"], o["op"]) for o in first.operations} == {(UNIFIED, "create"), (BAKED, "create")}
    unified_build, baked_build = docker.builds()
    assert first.outputs["runtime"]["digest"] == unified_build["digest"]
    assert first.outputs["runtime"]["image"] == f"registry.fly.io/catwalk-test-images@{unified_build['digest']}"
    assert first.outputs["git"]["image"] == f"registry.fly.io/catwalk-test-git@{baked_build['digest']}"

    second = stack.run("up")
    assert {o["op"] for o in second.operations} <= {"same"}
    assert len(docker.builds()) == 2
    assert second.outputs == first.outputs

    with (stack.deploy / "entrypoint.sh").open("a") as handle:
        handle.write("# touched\n")
    docker.clear()
    preview = stack.run("preview")
    assert (UNIFIED, "update") in {(o["type"], o["op"]) for o in preview.operations}
    assert docker.calls() == [], "preview ran docker"

    third = stack.run("up")
    assert {(o["type"], o["op"]) for o in third.operations} == {(UNIFIED, "update"), (BAKED, "update")}
    assert third.outputs["runtime"]["tag"] != first.outputs["runtime"]["tag"]
    assert third.outputs["runtime"]["digest"] != first.outputs["runtime"]["digest"]
    rebuilt = docker.builds()
    assert len(rebuilt) == 2
    assert rebuilt[1]["build"]["tags"][0].startswith("registry.fly.io/catwalk-test-git:bake-")
    assert third.outputs["git"]["digest"] == rebuilt[1]["digest"]


@pytest.mark.slow
def test_a_refused_push_fails_up_naming_the_resource_and_what_to_do_without_the_token(tmp_path: Path, monkeypatch):
    docker = fake_docker.install(tmp_path, monkeypatch)
    docker.mode("push-auth")
    stack = ImageStack(tmp_path)
    result = harness.run_subprocess(
        "up", "test", project_dir=stack.project, config_file=stack.config, state=stack.state, timeout=120
    )
    assert not result.ok
    assert f"{UNIFIED} 'runtime': create failed" in result.error and "refused FLY_API_TOKEN" in result.error
    assert fake_docker.TOKEN not in result.error
    assert not any(o["op"] == "create" and o["type"] == BAKED for o in result.operations)
