"""The image provider inside the real provider host, `python -m pulumi.dynamic`, over gRPC as the engine
drives it: the provider is unpickled from `__provider` (by reference: the host starts outside the repo),
the token arrives only through `Configure`, and `docker` is the fake on PATH."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime import rpc
from pulumi.runtime.proto import provider_pb2

from components.image import ImageProvider
from components.image.provider import context_inputs
from tests.tools.fakes import fake_docker
from tests.tools.provider_host import ProviderHost, host_env, props_of, struct

URN = "urn:pulumi:dev::catwalk::pulumi-python:dynamic/catwalk/image:UnifiedImage::runtime"
TOKEN = "fly-host-token-Lm4wQ"


class Host(ProviderHost):
    """The host with the image provider: `check` adds `__provider` and insists on no failures."""

    def __init__(self, env: dict[str, str], cwd: Path):
        super().__init__(env, URN, cwd)
        self.provider = serialize_provider(ImageProvider())

    def check(self, olds: dict, news: dict) -> dict[str, Any]:
        response = super().check(olds, {**news, "__provider": self.provider})
        assert list(response.failures) == []
        return props_of(response.inputs)

    def diff(self, olds: dict, news: dict) -> provider_pb2.DiffResponse:
        return super().diff("x", olds, news)


@pytest.fixture
def host(tmp_path: Path, monkeypatch):
    docker = fake_docker.install(tmp_path, monkeypatch)
    env = host_env()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    h = Host(env, outside)
    h.stub.Configure(provider_pb2.ConfigureRequest(args=struct({"catwalk:flyApiToken": TOKEN}), acceptSecrets=False))
    yield h, docker
    h.close()


@pytest.mark.slow
def test_real_host_builds_once_diffs_without_docker_and_rebuilds_on_change(host, tmp_path: Path):
    h, docker = host
    deploy = tmp_path / "deploy"
    deploy.mkdir()
    (deploy / "Dockerfile").write_text("FROM python:3.12-slim\n")
    (deploy / "entrypoint.sh").write_text("#!/bin/sh\n")

    checked = h.check({}, context_inputs(app="catwalk-dev-images", context_dir=deploy))
    created = h.stub.Create(provider_pb2.CreateRequest(urn=URN, properties=struct(checked)))
    outputs = props_of(created.properties)
    (build,) = docker.builds()
    assert outputs["image_ref"] == f"registry.fly.io/catwalk-dev-images@{build['digest']}"
    (login,) = [c for c in docker.calls() if c["argv"][0] == "login"]
    assert login["stdin"].strip() == TOKEN and TOKEN not in repr(outputs)

    again = h.check(checked, context_inputs(app="catwalk-dev-images", context_dir=deploy))
    assert h.diff(outputs, again).changes == provider_pb2.DiffResponse.DIFF_NONE

    (deploy / "entrypoint.sh").write_text("#!/bin/sh\necho changed\n")
    docker.clear()
    changed = h.check(checked, context_inputs(app="catwalk-dev-images", context_dir=deploy))
    diff = h.diff(outputs, changed)
    assert diff.changes == provider_pb2.DiffResponse.DIFF_SOME and list(diff.replaces) == []
    assert docker.calls() == []  # check and diff (all a preview does) ran no docker

    updated = h.stub.Update(
        provider_pb2.UpdateRequest(id=created.id, urn=URN, olds=struct(outputs), news=struct(changed))
    )
    new_outputs = props_of(updated.properties)
    assert new_outputs["tag"] != outputs["tag"]
    assert new_outputs["digest"] == docker.builds()[0]["digest"]


@pytest.mark.slow
def test_real_host_accepts_an_unknown_base_in_preview_and_plans_a_rebuild(host):
    h, docker = host
    baked = {
        "kind": "baked",
        "app": "catwalk-dev-git",
        "runtime": "python",
        "package": "mcp-server-git==2025.1.14",
        "launch": ["mcp-server-git"],
        "resolved_at": "2025-01-14T09:30:00Z",
    }
    checked = h.check({}, {**baked, "base": "registry.fly.io/catwalk-dev-images@sha256:" + "ab" * 32})
    created = props_of(h.stub.Create(provider_pb2.CreateRequest(urn=URN, properties=struct(checked))).properties)
    preview = h.check(checked, {**baked, "base": rpc.UNKNOWN})
    assert h.diff(created, preview).changes == provider_pb2.DiffResponse.DIFF_SOME
    assert len(docker.builds()) == 1
