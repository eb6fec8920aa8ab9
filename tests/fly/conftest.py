"""What the client tests share: an emulator per test, a client with one app made in it, a machine config."""

from __future__ import annotations

import pytest

from components.fly import FlyClient
from tests.tools.fly_emulator.fixture import running_emulator

APP = "cw-test"
META = {"catwalk_server": "memory", "catwalk_stack": "dev"}


def config(**extra) -> dict:
    return {"image": "registry.fly.io/catwalk:1", "env": {"MCP_RUNTIME": "npm"}, "metadata": dict(META), **extra}


def make_client(emu, **kw) -> FlyClient:
    kw.setdefault("mutation_rate", 0)
    kw.setdefault("backoff", 0.001)
    return FlyClient(emu.base_url, emu.token, **kw)


@pytest.fixture
def emu():
    with running_emulator() as handle:
        yield handle


@pytest.fixture
def client(emu):
    """A client of ``emu`` in which APP exists; the calls that made it are cleared."""
    c = make_client(emu)
    c.create_app(APP, "personal")
    emu.clear_calls()
    yield c
    c.close()
