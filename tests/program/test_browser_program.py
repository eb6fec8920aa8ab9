"""The Pulumi program with servers that drive a browser: their baked image gets Chromium, their machines
1024 MB, and a stack that would not bake them stops before anything is created.

The program runs under `set_mocks`; each BakedImage registration goes to the real image provider (check,
then create), which runs the fake `docker` on PATH, so the Dockerfile that would be built is checked.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from pathlib import Path

import pulumi
import pytest

from components.detect import DetectError, RuntimeSpec
from components.detect.browser import decide
from components.image import ImageProvider
from components.image.baked import baked_build, render_baked_dockerfile
from tests.program.test_program import SPECS, Mocks, run_main
from tests.tools.fakes import fake_docker

BASE = "registry.fly.io/acme-images@sha256:" + "a" * 64
# Detection's facts per package: the spec, and what names a browser driver (None: no driver).
RELEASES = {
    "fetcher-mcp": (
        RuntimeSpec(
            spec="fetcher-mcp",
            runtime="npm",
            registry="npm",
            package="fetcher-mcp",
            version="0.3.6",
            pinned="fetcher-mcp@0.3.6",
            launch=["fetcher-mcp"],
            resolved_at=datetime(2025, 6, 1, tzinfo=timezone.utc),
            evidence=["npm only"],
        ),
        "depends on playwright ^1.52.0",
    ),
    "mcp-server-git": (SPECS["mcp-server-git"], None),
}


def fake_detect(
    package, *, version=None, runtime=None, args=None, clients=None, browser=None, session=None, cache=None
):
    """What detection returns, the browser decided as detection decides it (config override included)."""
    if package not in RELEASES:
        raise DetectError(f"{package}: not found on PyPI or npm")
    spec, driver = RELEASES[package]
    needs, said = decide(driver, browser)
    evidence = spec.evidence + ([said] if said else [])
    return spec.model_copy(update={"args": list(args or []), "browser": needs, "evidence": evidence})


class BakingMocks(Mocks):
    """Mocks whose BakedImage registrations are checked and built by the real provider (fake docker)."""

    def __init__(self):
        super().__init__()
        self.baked: dict[str, dict] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        if not args.typ.endswith(":BakedImage"):
            if args.typ.endswith(":UnifiedImage"):
                self.resources.append((args.typ, args.name, dict(args.inputs)))
                return f"{args.name}-id", {**args.inputs, "image_ref": BASE}
            return super().new_resource(args)
        inputs = {k: v for k, v in args.inputs.items() if k != "__provider"}
        self.resources.append((args.typ, args.name, inputs))
        provider = ImageProvider()
        checked = provider.check({}, inputs)
        assert not checked.failures, [(f.property, f.reason) for f in checked.failures]
        created = provider.create(checked.inputs)
        self.baked[args.name] = created.outs
        return created.id, created.outs


def run_program(monkeypatch, tmp_path: Path, config: dict, *, preview: bool = False):
    docker = fake_docker.install(tmp_path, monkeypatch)
    mocks = BakingMocks()
    run_main(monkeypatch, mocks, config, detect=fake_detect, preview=preview)
    return mocks, docker


def stack(*servers: dict, **keys) -> dict:
    return {"appPrefix": "acme", "verify": False, "servers": list(servers), **keys}


FETCHER = {"name": "fetcher", "package": "fetcher-mcp"}
GIT = {"name": "git", "package": "mcp-server-git"}


def dockerfile_hash(**kwargs) -> str:
    return hashlib.sha256(render_baked_dockerfile(base=BASE, **kwargs).encode()).hexdigest()


def built_dockerfiles(docker) -> dict[str, str]:
    """The hash of the Dockerfile each build sent, by the app it was pushed to."""
    return {
        b["build"]["tags"][0].split("/")[1].split(":")[0]: b["context_files"]["Dockerfile"] for b in docker.builds()
    }


def machines(mocks) -> dict[str, dict]:
    return {r[1]: r[2] for r in mocks.of(":FlyMachine")}


def test_a_browser_server_is_baked_with_chromium_and_a_plain_server_as_before(monkeypatch, tmp_path):
    mocks, docker = run_program(monkeypatch, tmp_path, stack(FETCHER, GIT))
    assert "chromium fonts-liberation" in render_baked_dockerfile(base=BASE, browser=True)
    assert built_dockerfiles(docker) == {
        "acme-fetcher": dockerfile_hash(browser=True),
        "acme-git": dockerfile_hash(),
    }
    assert mocks.baked["fetcher-image"]["browser"] is True and mocks.baked["git-image"]["browser"] is False
    # The plain server's image is the one it had before browsers existed: same tag, so no rebuild.
    git, _ = RELEASES["mcp-server-git"]
    before = baked_build(
        base=BASE, runtime="python", package=git.pinned, launch=git.launch, resolved_at="2025-01-14T12:00:00Z"
    )
    assert mocks.baked["git-image"]["tag"] == before.tag


def test_a_browser_server_gets_1024_mb_and_tells_the_entrypoint_it_needs_chromium(monkeypatch, tmp_path):
    mocks, _ = run_program(monkeypatch, tmp_path, stack(FETCHER, GIT))
    fetcher, git = machines(mocks)["fetcher-iad-0"], machines(mocks)["git-iad-0"]
    assert fetcher["memory"] == 1024 and git["memory"] == 512
    assert fetcher["env"]["MCP_NEEDS_BROWSER"] == "chromium" and "MCP_NEEDS_BROWSER" not in git["env"]


def test_memory_set_in_the_config_is_kept_for_a_browser_server(monkeypatch, tmp_path):
    mocks, _ = run_program(monkeypatch, tmp_path, stack({**FETCHER, "memory": 512}))
    assert machines(mocks)["fetcher-iad-0"]["memory"] == 512


def test_a_bigger_size_keeps_its_own_larger_default_memory(monkeypatch, tmp_path):
    mocks, _ = run_program(monkeypatch, tmp_path, stack({**FETCHER, "size": "performance-1x"}))
    assert machines(mocks)["fetcher-iad-0"]["memory"] == 2048


def test_browser_false_in_the_config_bakes_no_chromium_and_keeps_512_mb(monkeypatch, tmp_path):
    mocks, docker = run_program(monkeypatch, tmp_path, stack({**FETCHER, "browser": False}))
    assert built_dockerfiles(docker) == {"acme-fetcher": dockerfile_hash()}
    machine = machines(mocks)["fetcher-iad-0"]
    assert machine["memory"] == 512 and "MCP_NEEDS_BROWSER" not in machine["env"]


@pytest.mark.parametrize(
    ("keys", "reason", "fix"),
    [
        ({"bake": False}, "catwalk:bake is false", "set catwalk:bake to true"),
        ({"image": "registry.fly.io/my-runtime:v1"}, "catwalk:image is set", "remove catwalk:image"),
    ],
    ids=["bake-false", "prebuilt-image"],
)
def test_preview_stops_before_anything_when_a_detected_browser_server_would_not_be_baked(
    monkeypatch, tmp_path, keys, reason, fix
):
    with pytest.raises(pulumi.RunError) as caught:
        run_program(monkeypatch, tmp_path, stack(FETCHER, GIT, **keys), preview=True)
    message = str(caught.value)
    assert "server 'fetcher' needs a browser: chromium (Debian) (depends on playwright ^1.52.0)" in message
    assert f"but {reason}: only a server's baked image gets Chromium" in message
    assert f"Bake it ({fix})" in message and "set `browser: false` on 'fetcher'" in message
    assert "'git'" not in message


def test_preview_refuses_before_creating_any_resource(monkeypatch, tmp_path):
    import infra.program as program

    registered = []
    monkeypatch.setattr(program, "McpServer", lambda *a, **k: registered.append(a))
    monkeypatch.setattr(program, "stack_app", lambda *a, **k: registered.append(a))
    with pytest.raises(pulumi.RunError):
        run_program(monkeypatch, tmp_path, stack(FETCHER, bake=False), preview=True)
    assert registered == []


def test_browser_false_lets_an_unbaked_stack_run_the_server_without_chromium(monkeypatch, tmp_path):
    mocks, docker = run_program(monkeypatch, tmp_path, stack({**FETCHER, "browser": False}, bake=False))
    assert docker.builds() == [] and not mocks.of(":BakedImage")
    machine = machines(mocks)["fetcher-iad-0"]
    assert "MCP_NEEDS_BROWSER" not in machine["env"] and machine["memory"] == 512
