"""Locked resolution on plain data: when the state's resolution is kept, when it moves, when it is refused."""

from __future__ import annotations

import pytest

from components import resolution
from components.config import ConfigError, parse_stack

OLD = {"runtime": "npm", "package": "memory-mcp", "pinned": "memory-mcp@1.0.0", "version": "1.0.0"}
NEW = {"runtime": "npm", "package": "memory-mcp", "pinned": "memory-mcp@1.1.0", "version": "1.1.0"}
REQUEST = {"package": "memory-mcp"}


@pytest.mark.parametrize(
    ("old_request", "old", "new_request", "fresh", "upgrade", "kept", "moved"),
    [
        (REQUEST, OLD, REQUEST, NEW, False, OLD, None),  # a newer release alone moves nothing
        (REQUEST, OLD, REQUEST, NEW, True, NEW, "memory-mcp@1.0.0"),  # the upgrade switch
        (REQUEST, OLD, {**REQUEST, "version": "^1"}, NEW, False, NEW, "memory-mcp@1.0.0"),  # config changed
        (REQUEST, OLD, REQUEST, OLD, True, OLD, None),  # an upgrade with nothing newer stays, saying nothing
        (None, None, REQUEST, NEW, False, NEW, None),  # a first resolution
    ],
)
def test_the_state_resolution_is_kept_until_config_or_upgrade_moves_it(
    old_request, old, new_request, fresh, upgrade, kept, moved
):
    decision = resolution.decide("memory", old_request, old, new_request, fresh, upgrade)
    assert (decision.resolved, decision.moved_from, decision.refusal) == (kept, moved, None)


SHARED_PY = {"runtime": "python", "package": "both", "pinned": "both==2.0", "both_registries": True, "spec": "both"}


def test_a_bare_name_on_both_registries_is_refused_without_a_choice_in_the_state():
    decision = resolution.decide("tool", None, None, {"package": "both"}, SHARED_PY, False)
    assert decision.resolved is None
    assert decision.refusal is not None and decision.refusal.startswith("server 'tool': package: 'both' is published")
    assert "`npm:both` or `pypi:both`" in decision.refusal


def test_a_bare_name_whose_registry_the_state_holds_stays_there():
    held = {"runtime": "npm", "package": "both", "pinned": "both@1.0.0"}
    same = resolution.decide("tool", {"package": "both"}, held, {"package": "both"}, SHARED_PY, True)
    assert same.redetect == "npm" and same.refusal is None
    agrees = {**SHARED_PY, "runtime": "npm", "pinned": "both@1.2.0"}
    moved = resolution.decide("tool", {"package": "both"}, held, {"package": "both"}, agrees, True)
    assert (moved.resolved, moved.moved_from) == (agrees, "both@1.0.0")
    other = resolution.decide("tool", {"package": "else"}, held, {"package": "both"}, SHARED_PY, False)
    assert other.refusal is not None, "a choice held for another name does not count"


def test_upgrade_takes_true_or_server_names_and_names_an_unknown_server():
    servers = [{"name": "git", "package": "pypi:mcp-server-git"}, {"name": "memory", "package": "npm:m"}]
    assert parse_stack({"servers": servers, "upgrade": "true"}).upgrades("memory")
    some = parse_stack({"servers": servers, "upgrade": "git"})
    assert (some.upgrades("git"), some.upgrades("memory")) == (True, False)
    assert not parse_stack({"servers": servers}).upgrades("git")
    with pytest.raises(ConfigError, match=r"upgrade: names no server of this stack: gti \(servers: git, memory\)"):
        parse_stack({"servers": servers, "upgrade": "gti"})
