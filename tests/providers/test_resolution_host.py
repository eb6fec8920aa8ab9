"""The Resolution provider through the real provider host (`python -m pulumi.dynamic` over gRPC): a held
resolution survives the wire both ways, and only the upgrade switch or a changed request moves it."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime.proto import provider_pb2

from components import resolution
from components.detect.models import RuntimeSpec
from components.providers.resolution import ResolutionProvider
from tests.tools.provider_host import ProviderHost, host_env, props_of

URN = "urn:pulumi:dev::catwalk::pulumi-python:dynamic/catwalk:Resolution::memory-resolution"


def spec(version: str) -> dict:
    return resolution.stored(
        RuntimeSpec(
            spec="memory-mcp",
            runtime="npm",
            registry="https://registry.npmjs.org/",
            package="memory-mcp",
            version=version,
            pinned=f"memory-mcp@{version}",
            launch=["memory-mcp"],
            resolved_at=datetime(2026, 9, 1, 22, 46, 36, 382000, tzinfo=timezone.utc),
            evidence=["only on npm"],
        )
    )


@pytest.fixture
def host():
    h = ProviderHost(host_env(), URN)
    yield h
    h.close()


def test_a_held_resolution_survives_the_wire_and_moves_only_on_upgrade(host):
    provider = serialize_provider(ResolutionProvider())
    host.configure({})
    request = {"package": "memory-mcp"}
    first = {"server": "memory", "request": request, "resolved": spec("1.0.0"), "upgrade": False}
    checked = props_of(host.check({}, {**first, "__provider": provider}).inputs)
    created = host.create(checked)
    assert created.id == "memory"
    outs = props_of(created.properties)
    assert resolution.restored(outs["resolved"], ["--x"]).pinned == "memory-mcp@1.0.0"

    newer = {**first, "resolved": spec("1.1.0"), "__provider": provider}
    kept = props_of(host.check(checked, newer).inputs)
    assert kept["resolved"] == outs["resolved"] and "moved_from" not in kept
    assert host.diff(created.id, outs, kept).changes == provider_pb2.DiffResponse.DIFF_NONE

    upgraded = props_of(host.check(checked, {**newer, "upgrade": True}).inputs)
    assert (upgraded["resolved"]["pinned"], upgraded["moved_from"]) == ("memory-mcp@1.1.0", "memory-mcp@1.0.0")
    assert host.diff(created.id, outs, upgraded).changes == provider_pb2.DiffResponse.DIFF_SOME
    updated = props_of(host.update(created.id, outs, upgraded).properties)
    assert updated["resolved"]["pinned"] == "memory-mcp@1.1.0" and "moved_from" not in updated

    bogus = host.check({}, {**first, "bogus": 1, "__provider": provider})
    assert [f.property for f in bogus.failures] == ["bogus"]
