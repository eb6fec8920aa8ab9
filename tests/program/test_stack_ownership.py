"""A stack touches only what it owns: two checkouts of one project through the engine harness and the Fly emulator.

Each checkout has its own state file (as two people with local file state each), the same stack name and,
in the first tests, the same `appPrefix`. Custom-command servers on a prebuilt image keep it offline.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from components.providers import ownership
from tests.tools.fly_emulator.fixture import running_emulator
from tests.tools.stack_files import stack_harness

SERVERS = [{"name": "tool", "command": "node /srv/tool.js --stdio"}, {"name": "other", "command": "node /srv/o.js"}]


def stack_file(path: Path, **settings: object) -> Path:
    config = {
        "catwalk:image": "registry.fly.io/catwalk-base:v1",
        "catwalk:verify": False,
        "catwalk:servers": SERVERS,
        **{f"catwalk:{k}": v for k, v in settings.items()},
    }
    path.write_text(yaml.safe_dump({"config": config}))
    return path


@pytest.fixture
def fly():
    with running_emulator() as emulator:
        yield emulator


def checkout(fly, directory: Path, **settings: object):
    """A harness bound to one checkout: its own stack file and state, the stack name `dev`."""
    directory.mkdir()
    config = stack_file(directory / "Pulumi.dev.yaml", **settings)
    return stack_harness(fly, config, directory / "state.json", stack="dev")


def tokens(fly) -> dict[str, str]:
    state = fly.emulator.state
    return {name: state.secret_env(name).get("MCP_AUTH_TOKEN", "") for name in state.apps}


def test_a_second_checkout_with_the_same_prefix_stops_before_any_write_and_its_destroy_leaves_the_first(fly, tmp_path):
    first = checkout(fly, tmp_path / "first", appPrefix="catwalk-dev")
    second = checkout(fly, tmp_path / "second", appPrefix="catwalk-dev")
    up = first("up")
    assert up.ok, up.error
    before_tokens, before_machines = tokens(fly), {m["id"]: m["state"] for m in fly.machines()}
    fly.clear_calls()

    preview = second("preview")
    assert not preview.ok
    assert re.search(r"Fly app 'catwalk-dev-(tool|other)' already exists", preview.error), preview.error
    assert "catwalk:appPrefix" in preview.error and "catwalk:adoptApps" in preview.error
    assert fly.mutating_calls() == [], "a preview writes nothing"

    again = second("up")
    assert not again.ok and "'catwalk-dev-" in again.error and "nothing was changed" in again.error
    writes = [c for c in fly.mutating_calls() if c["status"] < 400]
    assert writes == [], f"the first checkout's apps were written to: {writes}"

    destroyed = second("destroy")
    assert destroyed.ok, destroyed.error
    assert tokens(fly) == before_tokens, "the first checkout's bearer tokens are untouched"
    assert {m["id"]: m["state"] for m in fly.machines()} == before_machines
    assert set(fly.emulator.state.apps) == {"catwalk-dev-tool", "catwalk-dev-other"}
    assert {o["op"] for o in first("up").operations} == {"same"}, "the first checkout still owns everything"


def test_adopting_apps_deliberately_takes_them_over_and_a_taken_machine_name_is_named(fly, tmp_path):
    first = checkout(fly, tmp_path / "first", appPrefix="catwalk-dev")
    assert first("up").ok
    apps = ["catwalk-dev-tool", "catwalk-dev-other"]
    adopting = checkout(fly, tmp_path / "second", appPrefix="catwalk-dev", adoptApps=apps)
    took = adopting("up")
    assert not took.ok
    assert "already holds a machine of that name that this stack did not create" in took.error
    assert "fly machine destroy" in took.error
    state = fly.emulator.state
    assert all(ownership.owners(state.secret_env(app)) == [owner_of(tmp_path / "second")] for app in apps)
    destroyed = first("destroy")
    assert not destroyed.ok and "marked as another stack's" in destroyed.error
    assert set(state.apps) == set(apps), "the first checkout's destroy leaves apps it no longer owns"


def owner_of(checkout_dir: Path) -> str:
    """The stack id a checkout's state holds (its stack-id resource's result)."""
    from tests.tools.harness.state import StateFile

    saved = StateFile(checkout_dir / "state.json").load("catwalk", "dev")
    [entry] = [e for e in saved.resources if e.name == "stack-id"]
    return entry.outputs["result"]


def test_copies_of_one_stack_file_without_app_prefix_get_distinct_apps_stable_across_ups(fly, tmp_path):
    first = checkout(fly, tmp_path / "first")
    second = checkout(fly, tmp_path / "second")
    one, two = first("up"), second("up")
    assert one.ok, one.error
    assert two.ok, two.error
    apps_one = {one.outputs[s]["app"] for s in ("tool", "other")}
    apps_two = {two.outputs[s]["app"] for s in ("tool", "other")}
    assert not apps_one & apps_two
    assert all(app.startswith("catwalk-dev-") and len(app.split("-")[2]) == 8 for app in apps_one | apps_two)
    again = first("up")
    assert {again.outputs[s]["app"] for s in ("tool", "other")} == apps_one
    assert {o["op"] for o in again.operations} == {"same"}
