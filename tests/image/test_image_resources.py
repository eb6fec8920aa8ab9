"""The Pulumi resources as the program registers them.

Pulumi mocks stand in for the engine, and hand each registration to the real provider (check, then
create), which runs the fake `docker` on PATH: the program's inputs go through the SDK's serialization
and come back as the outputs machines will use.
"""

from __future__ import annotations

from pathlib import Path

import pulumi
import pytest

from components.image import BakedImage, ImageProvider, UnifiedImage, context_hash, tag_for
from tests.tools.fakes import fake_docker
from tests.tools.fakes.fake_docker import TOKEN

REGISTERED: list[pulumi.runtime.MockResourceArgs] = []


class Mocks(pulumi.runtime.Mocks):
    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        REGISTERED.append(args)
        provider = ImageProvider()
        checked = provider.check({}, dict(args.inputs))
        assert not checked.failures, [(f.property, f.reason) for f in checked.failures]
        created = provider.create(checked.inputs)
        return created.id, created.outs

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}


@pytest.fixture(autouse=True)
def mocks(tmp_path: Path, monkeypatch):
    docker = fake_docker.install(tmp_path, monkeypatch)
    REGISTERED.clear()
    pulumi.runtime.set_mocks(Mocks(), preview=False)
    yield docker
    REGISTERED.clear()


@pytest.fixture
def deploy(tmp_path: Path) -> Path:
    root = tmp_path / "deploy"
    root.mkdir()
    (root / "Dockerfile").write_text("FROM python:3.12-slim\n")
    return root


@pulumi.runtime.test
def test_unified_image_registers_a_typed_dynamic_resource_with_the_content_tag(deploy: Path, mocks):
    image = UnifiedImage("runtime", app="catwalk-dev-images", context_dir=deploy)

    def check(values):
        image_ref, tag = values
        (args,) = REGISTERED
        assert args.typ == "pulumi-python:dynamic/catwalk/image:UnifiedImage"
        assert args.inputs["kind"] == "context"
        assert args.inputs["content_hash"] == context_hash(deploy)
        assert args.inputs["context_dir"] == str(deploy.resolve())
        assert tag == tag_for(context_hash(deploy))
        (build,) = mocks.builds()
        assert image_ref == f"registry.fly.io/catwalk-dev-images@{build['digest']}"
        assert TOKEN not in repr(args.inputs)

    return pulumi.Output.all(image.image_ref, image.tag).apply(check)


@pulumi.runtime.test
def test_prebuilt_image_registers_no_build_and_needs_no_context(tmp_path: Path, mocks):
    ref = "ghcr.io/me/runtime@sha256:" + "34" * 32
    image = UnifiedImage("runtime", app="catwalk-dev-images", context_dir=tmp_path / "absent", prebuilt=ref)

    def check(image_ref):
        (args,) = REGISTERED
        assert args.inputs["kind"] == "prebuilt" and args.inputs["ref"] == ref
        assert "context_dir" not in args.inputs
        assert image_ref == ref
        assert mocks.calls() == []

    return image.image_ref.apply(check)


@pulumi.runtime.test
def test_baked_image_takes_the_unified_image_ref_as_its_base(deploy: Path, mocks):
    runtime = UnifiedImage("runtime", app="catwalk-dev-images", context_dir=deploy)
    git = BakedImage(
        "git",
        app="catwalk-dev-git",
        base=runtime.image_ref,
        runtime="python",
        package="mcp-server-git==2025.1.14",
        launch=["mcp-server-git"],
        resolved_at="2025-01-14T09:30:00Z",
    )

    def check(image_ref):
        baked = next(a for a in REGISTERED if a.name == "git")
        unified_build, baked_build = mocks.builds()
        assert baked.typ == "pulumi-python:dynamic/catwalk/image:BakedImage"
        assert baked.inputs["base"] == f"registry.fly.io/catwalk-dev-images@{unified_build['digest']}"
        assert baked.inputs["launch"] == ["mcp-server-git"]
        assert baked_build["build"]["build_args"]["MCP_PACKAGE"] == "mcp-server-git==2025.1.14"
        assert image_ref == f"registry.fly.io/catwalk-dev-git@{baked_build['digest']}"

    return git.image_ref.apply(check)


def test_a_missing_context_fails_when_the_program_runs(tmp_path: Path):
    from components.image import ContextError

    with pytest.raises(ContextError, match="is not a directory"):
        UnifiedImage("runtime", app="catwalk-dev-images", context_dir=tmp_path / "absent")


REPO_DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


@pytest.mark.skipif(not (REPO_DEPLOY / "Dockerfile").is_file(), reason="deploy/Dockerfile not in this checkout")
@pulumi.runtime.test
def test_the_default_context_is_the_repositorys_deploy_directory_whatever_the_cwd(mocks, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # Pulumi runs the program in infra/, not the repository root
    image = UnifiedImage("runtime", app="catwalk-dev-images")

    def check(tag):
        (args,) = REGISTERED
        assert args.inputs["context_dir"] == str(REPO_DEPLOY)
        assert tag == tag_for(context_hash(REPO_DEPLOY))

    return image.tag.apply(check)
