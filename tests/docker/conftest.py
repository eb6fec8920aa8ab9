"""The image tier: a real Docker engine, a registry on loopback and stand-in bases (tests/tools/docker_engine).

The engine is started once per session (or taken from CATWALK_TEST_DOCKER_HOST); where none can be had,
every test here skips with the reason, which `scripts/test` shows in its summary. What each stand-in base
replaces, and how long the cold parts took, is written to the terminal.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import pytest

from components.image import ImageProvider
from components.image.provider import context_inputs
from tests.tools.docker_engine import prune, standins
from tests.tools.docker_engine.engine import Engine, Unavailable, engine, provider_environment

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
RUNTIME_TAG = "catwalk-runtime:test"
RUNTIME_APP = "catwalk-test-images"
# The baked images (four build stages, one compiling a native module) and the whole stack in container
# mode take most of the tier's time (the whole tier, cold on overlay2, about 10 minutes on two busy cores):
# they run unless CATWALK_IMAGE_TIER=quick, for a faster loop while working on the image.
TIERS = ("full", "quick")
TIER = os.environ.get("CATWALK_IMAGE_TIER", "full").strip() or "full"
FULL_TIER_MODULES = {"test_baked_images.py", "test_stack_containers.py"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if TIER not in TIERS:
        raise pytest.UsageError(f"CATWALK_IMAGE_TIER must be one of {', '.join(TIERS)}, got {TIER!r}")
    if TIER == "full":
        return
    skip = pytest.mark.skip(reason="baked images and container mode skipped (CATWALK_IMAGE_TIER=quick)")
    for item in items:
        if item.path.name in FULL_TIER_MODULES and item.path.parent == Path(__file__).parent:
            item.add_marker(skip)


def say(config: pytest.Config, line: str) -> None:
    """A line in the test output, outside pytest's capture (what the tier substituted and what it cost)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        return
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        reporter.write_line(f"[image tier] {line}")


@pytest.fixture(scope="session")
def docker_engine(request: pytest.FixtureRequest):
    started = time.monotonic()
    try:
        with engine() as eng:
            for note in eng.notes:
                say(request.config, note)
            for line in standins.ensure(
                eng, standins.base_images(DEPLOY / "Dockerfile"), lambda m: say(request.config, m)
            ):
                say(request.config, line)
            if eng.data_root is not None:  # only an engine started here is pruned
                for line in prune.prune(eng):
                    say(request.config, line)
            say(request.config, f"engine and stand-ins ready in {time.monotonic() - started:.0f} s")
            yield eng
            if eng.data_root is not None:
                for line in prune.prune(eng):
                    say(request.config, line)
    except Unavailable as exc:
        pytest.skip(f"no Docker engine for the image tier: {exc}")


@pytest.fixture(scope="session")
def runtime_image(docker_engine: Engine, request: pytest.FixtureRequest) -> str:
    """`deploy/` built as it is, with Debian's client (BuildKit through `docker build`, no buildx)."""
    started = time.monotonic()
    docker_engine.docker(
        "build", "--network", docker_engine.build_network, "--tag", RUNTIME_TAG, str(DEPLOY), timeout=3600
    )
    say(request.config, f"deploy/ built unchanged as {RUNTIME_TAG} in {time.monotonic() - started:.0f} s")
    return RUNTIME_TAG


@pytest.fixture(scope="package")  # its environment must not outlive the tier: later image tests run a fake docker
def provider_env(docker_engine: Engine, tmp_path_factory: pytest.TempPathFactory):
    """The image provider's environment: Debian's client as `docker` (no buildx), the engine, the local
    registry (CATWALK_REGISTRY), host-network builds, a scratch docker config and a registry password."""
    work = tmp_path_factory.mktemp("provider")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in provider_environment(docker_engine, work).items():
            patch.setenv(name, value)
        yield docker_engine


@pytest.fixture(scope="package")
def pushed_runtime(provider_env: Engine, request: pytest.FixtureRequest) -> dict:
    """`deploy/` built and pushed by the image provider: its outputs (image_ref is registry/app@sha256:…)."""
    started = time.monotonic()
    provider = ImageProvider()
    checked = provider.check({}, context_inputs(app=RUNTIME_APP, context_dir=DEPLOY))
    assert not checked.failures, [(f.property, f.reason) for f in checked.failures]
    outs = provider.create(checked.inputs).outs
    say(request.config, f"the provider built and pushed {outs['image_ref']} in {time.monotonic() - started:.0f} s")
    return outs
