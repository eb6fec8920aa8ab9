"""Locked resolution through the engine harness: what a stack resolved stays until its config or an upgrade moves it.

The registries are recorded responses (`RecordedSession`); a "new release" is the recorded document with one
more version added, answered from then on. Fly is the emulator, the image prebuilt, so nothing is built.
"""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.detect import core as detect_core
from tests.tools.fly_emulator.fixture import running_emulator
from tests.tools.harness import run
from tests.tools.registry_fakes import FIXTURES, RecordedSession

ROOT = Path(__file__).resolve().parents[2]
MEMORY = "@modelcontextprotocol/server-memory"
MEMORY_URL = "https://registry.npmjs.org/@modelcontextprotocol%2Fserver-memory"
SQLITE_PYPI_URL = "https://pypi.org/pypi/mcp-server-sqlite/json"
RESOLUTION = "pulumi-python:dynamic/catwalk:Resolution"


def recorded(url: str) -> dict[str, Any]:
    for path in FIXTURES.glob("*.json"):
        entry = json.loads(path.read_text())
        if entry["url"] == url:
            return json.loads(base64.b64decode(entry["body_b64"])) if "body_b64" in entry else entry["body"]
    raise LookupError(url)


def publish(session: RecordedSession, url: str, version: str, when: str) -> None:
    """The registry now has `version` as its latest release (a copy of the current latest's manifest)."""
    doc = recorded(url)
    latest = doc["dist-tags"]["latest"]
    doc["versions"][version] = {**doc["versions"][latest], "version": version}
    doc["time"][version] = when
    doc["dist-tags"]["latest"] = version
    session.add(url, 200, doc)


class Stack:
    """One checkout: a stack file, a state file, the harness run in this process (so detection's session is ours)."""

    def __init__(self, directory: Path, prefix: str = "lock"):
        directory.mkdir(exist_ok=True)
        self.prefix = prefix
        self.config = directory / "Pulumi.dev.yaml"
        self.state = directory / "state.json"

    def configure(self, servers: list[dict[str, Any]], **settings: Any) -> None:
        config = {
            "catwalk:image": "registry.fly.io/catwalk-base:v1",
            "catwalk:verify": False,
            "catwalk:appPrefix": self.prefix,
            "catwalk:servers": servers,
            **{f"catwalk:{k}": v for k, v in settings.items()},
        }
        self.config.write_text(yaml.safe_dump({"config": config}))

    def __call__(self, command: str):
        return run(command, "dev", project_dir=ROOT, config_file=self.config, state=self.state)


@pytest.fixture
def registry(monkeypatch, tmp_path) -> RecordedSession:
    session = RecordedSession()
    monkeypatch.setattr(detect_core, "make_session", lambda: session)
    monkeypatch.setenv("CATWALK_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CATWALK_CACHE_TTL", "0")  # every run asks the registry what exists now
    for name in ("PIP_INDEX_URL", "UV_INDEX_URL", "UV_DEFAULT_INDEX", "npm_config_registry"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NPM_CONFIG_REGISTRY", "https://registry.npmjs.org/")
    return session


@pytest.fixture
def stack(monkeypatch, tmp_path, registry) -> Stack:
    with running_emulator() as fly:
        monkeypatch.setenv("FLY_API_URL", fly.base_url)
        monkeypatch.setenv("FLY_API_TOKEN", fly.token)
        monkeypatch.setenv("CATWALK_FLY_RATE", "off")
        yield Stack(tmp_path / "stack")


def ok(result):
    assert result.ok, result.error
    return result


def changed(result) -> set[tuple[str, str]]:
    return {(o["name"], o["op"]) for o in result.operations if o["op"] != "same"}


def test_an_unpinned_server_stays_on_its_release_when_the_registry_publishes_a_newer_one(stack, registry):
    stack.configure([{"name": "memory", "package": MEMORY}])
    first = ok(stack("up"))
    assert first.outputs["memory"]["version"] == "2026.8.31"

    publish(registry, MEMORY_URL, "2026.9.9", "2026-09-09T09:00:00.000Z")
    preview = ok(stack("preview"))
    assert changed(preview) == set(), "nothing moves without the config asking"
    assert preview.outputs["memory"]["version"] == "2026.8.31"
    again = ok(stack("up"))
    assert changed(again) == set()
    assert again.outputs["memory"]["version"] == "2026.8.31"


def test_the_upgrade_switch_moves_it_and_the_preview_shows_old_and_new(stack, registry, caplog):
    stack.configure([{"name": "memory", "package": MEMORY}])
    ok(stack("up"))
    publish(registry, MEMORY_URL, "2026.9.9", "2026-09-09T09:00:00.000Z")

    stack.configure([{"name": "memory", "package": MEMORY}], upgrade=True)
    with caplog.at_level(logging.INFO, logger="catwalk.harness"):
        preview = ok(stack("preview"))
    assert ("memory-resolution", "update") in changed(preview)
    assert ("memory-iad-0", "update") in changed(preview), "the machine moves to the new release"
    assert f"memory: {MEMORY}@2026.8.31 → {MEMORY}@2026.9.9 (catwalk:upgrade)" in caplog.messages
    assert preview.outputs["memory"]["version"] == "2026.9.9"

    moved = ok(stack("up"))
    assert moved.outputs["memory"]["version"] == "2026.9.9"
    stack.configure([{"name": "memory", "package": MEMORY}])  # the switch removed: the new release is kept
    assert changed(ok(stack("up"))) == set()


def test_upgrade_names_only_the_servers_it_lists(stack, registry):
    servers = [{"name": "memory", "package": MEMORY}, {"name": "notes", "package": MEMORY}]
    stack.configure(servers)
    ok(stack("up"))
    publish(registry, MEMORY_URL, "2026.9.9", "2026-09-09T09:00:00.000Z")
    stack.configure(servers, upgrade="notes")
    result = ok(stack("up"))
    assert (result.outputs["memory"]["version"], result.outputs["notes"]["version"]) == ("2026.8.31", "2026.9.9")


def test_changing_the_package_config_moves_it(stack, registry, caplog):
    stack.configure([{"name": "memory", "package": MEMORY}])
    ok(stack("up"))
    publish(registry, MEMORY_URL, "2026.9.9", "2026-09-09T09:00:00.000Z")

    stack.configure([{"name": "memory", "package": MEMORY, "version": "2026.7.4"}])
    with caplog.at_level(logging.INFO, logger="catwalk.harness"):
        ok(stack("preview"))
    assert f"memory: {MEMORY}@2026.8.31 → {MEMORY}@2026.7.4 (its package config changed)" in caplog.messages
    assert ok(stack("up")).outputs["memory"]["version"] == "2026.7.4"

    stack.configure([{"name": "memory", "package": MEMORY}])  # unpinned again: resolved again, to the newest
    assert ok(stack("up")).outputs["memory"]["version"] == "2026.9.9"


def test_a_bare_name_on_both_registries_is_refused_naming_the_field_and_the_prefixes(stack, registry):
    stack.configure([{"name": "sqlite", "package": "mcp-server-sqlite"}])
    preview = stack("preview")
    assert not preview.ok
    assert "server 'sqlite': package: 'mcp-server-sqlite' is published on both PyPI and npm" in preview.error
    assert "`npm:mcp-server-sqlite` or `pypi:mcp-server-sqlite`" in preview.error
    assert not stack.state.exists() or not any(
        o["op"] == "create" for o in preview.operations if o["type"] == RESOLUTION
    )

    stack.configure([{"name": "sqlite", "package": "pypi:mcp-server-sqlite"}])
    written = ok(stack("up"))
    assert (written.outputs["sqlite"]["runtime"], written.outputs["sqlite"]["version"]) == ("python", "2025.4.25")


def test_a_bare_name_whose_choice_the_state_holds_keeps_its_registry_when_the_other_one_gets_the_name(stack, registry):
    """Deployed while only npm had the name; PyPI's project appears later, and detection alone would pick it."""
    registry.add(SQLITE_PYPI_URL, 404, {"message": "Not Found"})
    stack.configure([{"name": "sqlite", "package": "mcp-server-sqlite"}])
    first = ok(stack("up"))
    assert (first.outputs["sqlite"]["runtime"], first.outputs["sqlite"]["version"]) == ("npm", "0.0.2")

    registry.recordings[SQLITE_PYPI_URL].pop(0)  # PyPI now has mcp-server-sqlite
    assert changed(ok(stack("up"))) == set()
    stack.configure([{"name": "sqlite", "package": "mcp-server-sqlite"}], upgrade=True)
    upgraded = ok(stack("up"))
    assert (upgraded.outputs["sqlite"]["runtime"], upgraded.outputs["sqlite"]["version"]) == ("npm", "0.0.2")

    fresh = Stack(stack.state.parent.parent / "fresh", prefix="fresh")  # the same config without that state is refused
    fresh.configure([{"name": "sqlite", "package": "mcp-server-sqlite"}])
    refused = fresh("preview")
    assert not refused.ok and "is published on both PyPI and npm" in refused.error


def test_a_held_resolution_runs_while_the_registry_is_down_and_a_new_server_fails_naming_it(stack, registry):
    stack.configure([{"name": "memory", "package": MEMORY}])
    ok(stack("up"))
    registry.add(MEMORY_URL, 503, "Service Unavailable")

    held = ok(stack("preview"))
    assert changed(held) == set() and held.outputs["memory"]["version"] == "2026.8.31"
    assert changed(ok(stack("up"))) == set()

    stack.configure([{"name": "memory", "package": MEMORY}, {"name": "notes", "package": MEMORY}])
    added = stack("preview")
    assert not added.ok
    assert "server 'notes': package:" in added.error and "HTTP 503" in added.error
    assert "server 'memory'" not in added.error, "the held server is not the problem"

    stack.configure([{"name": "memory", "package": MEMORY}], upgrade=True)
    upgrading = stack("preview")
    assert not upgrading.ok and "server 'memory': package:" in upgrading.error and "HTTP 503" in upgrading.error
