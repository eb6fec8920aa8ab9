"""The providers against the Fly emulator, driven the way the engine drives them.

`Engine` keeps a tiny state per resource (id, inputs, outputs) and runs check → diff → create/update/
replace/delete like `pulumi up`, with a provider unpickled from `__provider` as the provider host does.
The emulator's call log proves what reached "Fly".
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import dill
import pytest
import requests
from pulumi.dynamic.dynamic import serialize_provider

from components.fly import FlyClient
from components.providers import (
    FlyAppProvider,
    FlyIpProvider,
    FlyMachineProvider,
    FlyProviderError,
    FlySecretsProvider,
    ownership,
)
from components.providers import base as provider_base
from tests.tools.fly_emulator.server import Emulator, Faults
from tests.tools.fly_emulator.state import ApiError

OWNER = "k3x9a2b1"  # the stack id every app of these tests carries

TOKEN = "fo1_emulator_token_for_tests"
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}


class Emu:
    """An in-process emulator on a free loopback port, with helpers to inspect what it received."""

    def __init__(self, **faults: Any):
        self.emulator = Emulator(token=TOKEN, faults=Faults(retry_after=0, **faults), transition_s=0.01)
        self.server = self.emulator.serve("127.0.0.1", 0)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.emulator.close()

    def client(self) -> FlyClient:
        return FlyClient(self.base_url, TOKEN, mutation_rate=0, backoff=0.001, backoff_max=0.01, max_attempts=12)

    def calls(self) -> list[dict[str, Any]]:
        return requests.get(f"{self.base_url}/_emulator/calls", timeout=5).json()["calls"]

    def mutating_calls(self) -> list[dict[str, Any]]:
        return [c for c in self.calls() if c["method"] in MUTATING]

    def clear_calls(self) -> None:
        requests.delete(f"{self.base_url}/_emulator/calls", timeout=5)

    def faults(self, rate: float, seed: int = 0, kinds: list[str] | None = None) -> None:
        body = {"rate": rate, "seed": seed, "retry_after": 0, **({"kinds": kinds} if kinds else {})}
        requests.post(f"{self.base_url}/_emulator/faults", json=body, timeout=5).raise_for_status()

    def live_machines(self, app: str | None = None) -> list[dict[str, Any]]:
        rows = requests.get(f"{self.base_url}/_emulator/machines", timeout=5).json()["machines"]
        return [m for m in rows if m["state"] not in ("destroyed", "destroying") and (app is None or m["app"] == app)]


@pytest.fixture
def emu(monkeypatch):
    e = Emu()
    monkeypatch.setattr(provider_base, "make_client", lambda token=None, base_url=None: e.client())
    yield e
    e.close()


def host_copy(provider):
    """The provider as the host gets it: serialized by the SDK into `__provider`, unpickled with dill."""
    pickled = serialize_provider(provider)
    return pickled, dill.loads(base64.b64decode(pickled))


@dataclass
class Res:
    provider: Any
    pickled: str
    id: str | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)


class Engine:
    """The engine's step logic for dynamic resources (create-before-delete replacement, like Pulumi)."""

    def __init__(self):
        self.state: dict[str, Res] = {}

    def up(self, key: str, provider_class: type, news: dict[str, Any]) -> str:
        """Returns what happened: create, update, replace or same."""
        res = self.state.get(key)
        if res is None:
            pickled, provider = host_copy(provider_class())
            res = Res(provider, pickled)
        props = {**news, "__provider": res.pickled}
        checked = res.provider.check(dict(res.inputs), props)
        assert checked.failures == [], [f.reason for f in checked.failures]
        inputs = {**checked.inputs, "__provider": res.pickled}
        if res.id is None:
            created = res.provider.create(inputs)
            res.id, res.outputs, res.inputs = created.id, {**created.outs, "__provider": res.pickled}, inputs
            self.state[key] = res
            return "create"
        diff = res.provider.diff(res.id, dict(res.outputs), inputs)
        if diff.replaces:
            assert diff.changes is True
            created = res.provider.create(inputs)
            res.provider.delete(res.id, dict(res.outputs))
            res.id, res.outputs, res.inputs = created.id, {**created.outs, "__provider": res.pickled}, inputs
            return "replace"
        if diff.changes:
            updated = res.provider.update(res.id, dict(res.outputs), inputs)
            res.outputs, res.inputs = {**updated.outs, "__provider": res.pickled}, inputs
            return "update"
        return "same"

    def refresh(self, key: str) -> None:
        res = self.state[key]
        read = res.provider.read(res.id, dict(res.outputs))
        if read.id is None:
            del self.state[key]
            return
        res.outputs = {**read.outs, "__provider": res.pickled}
        if read.inputs is not None:
            res.inputs = {**read.inputs, "__provider": res.pickled}

    def destroy(self, key: str) -> None:
        res = self.state[key]
        res.provider.delete(res.id, dict(res.outputs))
        del self.state[key]


def server_secret_names(emu) -> set[str]:
    """The app's secrets but the stack's owner mark, which the app provider sets."""
    return {s.name for s in emu.client().list_secrets("catwalk-dev-memory") if not ownership.is_marker(s.name)}


def server_secret_env(emu) -> dict[str, str]:
    env = emu.emulator.state.secret_env("catwalk-dev-memory")
    return {k: v for k, v in env.items() if not ownership.is_marker(k)}


def app_inputs(server: str) -> dict[str, Any]:
    return {"name": f"catwalk-dev-{server}", "org": "personal", "stack": "dev", "owner": OWNER}


def machine_inputs(server: str, **extra: Any) -> dict[str, Any]:
    return {
        "app": f"catwalk-dev-{server}",
        "stack": "dev",
        "server": server,
        "region": "iad",
        "index": 0,
        "image": f"registry.fly.io/catwalk-dev-{server}:deployment-1",
        "env": {"MCP_RUNTIME": "npm", "MCP_PACKAGE": "@modelcontextprotocol/server-memory"},
        **extra,
    }


# -- FlyApp ------------------------------------------------------------------------------------------


def test_app_create_read_noop_and_delete(emu):
    engine = Engine()
    assert engine.up("app", FlyAppProvider, app_inputs("memory")) == "create"
    app = emu.client().get_app("catwalk-dev-memory")
    assert app.organization.slug == "personal"
    assert engine.state["app"].outputs["fly_id"] == app.id
    assert engine.state["app"].outputs["app_id"] == "catwalk-dev-memory"  # what the other resources take
    emu.clear_calls()
    assert engine.up("app", FlyAppProvider, app_inputs("memory")) == "same"
    assert emu.calls() == []
    engine.refresh("app")
    assert engine.state["app"].outputs["name"] == "catwalk-dev-memory"
    res = engine.state["app"]
    engine.destroy("app")
    assert [c["method"] for c in emu.mutating_calls()] == ["DELETE"]
    res.provider.delete(res.id, dict(res.outputs))  # already gone: still succeeds


def test_app_rename_is_a_replacement(emu):
    engine = Engine()
    engine.up("app", FlyAppProvider, app_inputs("memory"))
    assert engine.up("app", FlyAppProvider, {**app_inputs("memory"), "name": "catwalk-dev-memory2"}) == "replace"
    names = {a.name for a in emu.client().list_apps("personal")}
    assert names == {"catwalk-dev-memory2"}


def test_app_delete_refuses_while_it_holds_machines_we_did_not_create(emu):
    engine = Engine()
    engine.up("app", FlyAppProvider, app_inputs("memory"))
    foreign = emu.client().create_machine(
        "catwalk-dev-memory", "hand-made", "iad", {"image": "nginx:1", "metadata": {"owner": "someone"}}
    )
    with pytest.raises(FlyProviderError, match=rf"hand-made \({foreign.id}\)") as err:
        engine.destroy("app")
    assert "did not create" in str(err.value)
    assert emu.client().get_app("catwalk-dev-memory").name == "catwalk-dev-memory"


def test_app_name_taken_elsewhere_fails_with_a_clear_message(emu):
    requests.post(f"{emu.base_url}/_emulator/apps/catwalk-dev-memory/reserve", timeout=5).raise_for_status()
    with pytest.raises(FlyProviderError, match=r"Fly app 'catwalk-dev-memory': create failed: .*taken"):
        Engine().up("app", FlyAppProvider, app_inputs("memory"))


def test_app_import_by_name(emu):
    emu.client().create_app("catwalk-dev-memory", "personal")
    _, provider = host_copy(FlyAppProvider())
    read = provider.read("catwalk-dev-memory", {})
    assert read.id == "catwalk-dev-memory"
    assert read.inputs["name"] == "catwalk-dev-memory" and read.inputs["org"] == "personal"


def test_app_of_the_same_name_not_made_by_this_stack_stops_check_and_create_before_any_write(emu):
    emu.client().create_app("catwalk-dev-memory", "personal")  # the user's own app, or another checkout's
    emu.clear_calls()
    _, provider = host_copy(FlyAppProvider())
    checked = provider.check({}, app_inputs("memory"))  # what a preview runs
    [failure] = checked.failures
    assert failure.property == "name"
    assert "Fly app 'catwalk-dev-memory' already exists" in failure.reason
    assert "catwalk:appPrefix" in failure.reason and "catwalk:adoptApps" in failure.reason
    with pytest.raises(FlyProviderError, match=r"'catwalk-dev-memory' already exists .*nothing was changed"):
        provider.create(app_inputs("memory"))
    refused = [(c["method"], c["path"], c["status"]) for c in emu.mutating_calls()]
    assert refused == [("POST", "/v1/apps", 422)], "the one write tried was the create Fly refused"
    assert emu.client().list_secrets("catwalk-dev-memory") == []


def test_app_marked_by_another_stack_is_named_with_that_stacks_id(emu):
    Engine().up("app", FlyAppProvider, {**app_inputs("memory"), "owner": "other000"})
    _, provider = host_copy(FlyAppProvider())
    [failure] = provider.check({}, app_inputs("memory")).failures
    assert "another catwalk stack (id other000)" in failure.reason and f"this stack (id {OWNER})" in failure.reason


def test_a_preview_before_the_stack_id_exists_treats_any_existing_app_as_foreign(emu):
    emu.client().create_app("catwalk-dev-memory", "personal")
    _, provider = host_copy(FlyAppProvider())
    unknown = provider_base.rpc.UNKNOWN
    assert [f.property for f in provider.check({}, {**app_inputs("memory"), "owner": unknown}).failures] == ["name"]
    assert provider.check({}, {**app_inputs("other"), "owner": unknown}).failures == []


def test_app_this_stack_made_in_an_interrupted_run_is_taken_back(emu):
    Engine().up("app", FlyAppProvider, app_inputs("memory"))  # created and marked, then the state was lost
    engine = Engine()
    assert engine.up("app", FlyAppProvider, app_inputs("memory")) == "create"
    assert ownership.owners(n.name for n in emu.client().list_secrets("catwalk-dev-memory")) == [OWNER]


def test_adopting_an_app_deliberately_marks_it_as_ours_only(emu):
    Engine().up("app", FlyAppProvider, {**app_inputs("memory"), "owner": "other000"})
    engine = Engine()
    assert engine.up("app", FlyAppProvider, {**app_inputs("memory"), "adopt": True}) == "create"
    assert ownership.owners(n.name for n in emu.client().list_secrets("catwalk-dev-memory")) == [OWNER]


def test_app_delete_refuses_an_app_another_stack_has_taken_over(emu):
    engine = Engine()
    engine.up("app", FlyAppProvider, app_inputs("memory"))
    Engine().up("app", FlyAppProvider, {**app_inputs("memory"), "owner": "other000", "adopt": True})
    with pytest.raises(FlyProviderError, match=r"not deleting it, it is marked as another stack's \(id other000\)"):
        engine.destroy("app")
    assert emu.client().get_app("catwalk-dev-memory").name == "catwalk-dev-memory"


def test_app_from_state_before_stack_ids_is_marked_on_its_next_up(emu):
    emu.client().create_app("catwalk-dev-memory", "personal")
    pickled, provider = host_copy(FlyAppProvider())
    legacy = {"name": "catwalk-dev-memory", "org": "personal", "stack": "dev", "__provider": pickled}
    engine = Engine()
    engine.state["app"] = Res(
        provider, pickled, "catwalk-dev-memory", legacy, {**legacy, "app_id": "catwalk-dev-memory"}
    )
    assert engine.up("app", FlyAppProvider, app_inputs("memory")) == "update"
    assert ownership.owners(n.name for n in emu.client().list_secrets("catwalk-dev-memory")) == [OWNER]


# -- FlySecrets --------------------------------------------------------------------------------------


def test_secrets_create_update_unset_removed_names_and_delete(emu):
    engine = Engine()
    engine.up("app", FlyAppProvider, app_inputs("memory"))
    values = {"API_KEY": "value-one-aaaa", "OTHER_KEY": "value-two-bbbb"}
    assert engine.up("sec", FlySecretsProvider, {"app": "catwalk-dev-memory", "values": values}) == "create"
    first = engine.state["sec"].outputs
    assert first["names"] == ["API_KEY", "OTHER_KEY"] and isinstance(first["version"], int)
    assert server_secret_names(emu) == {"API_KEY", "OTHER_KEY"}

    emu.clear_calls()
    assert engine.up("sec", FlySecretsProvider, {"app": "catwalk-dev-memory", "values": values}) == "same"
    assert emu.calls() == []

    # Change one value and drop the other: the dropped name is unset (pulumi-flyio's bug never unsets).
    news = {"API_KEY": "value-three-cccc"}
    assert engine.up("sec", FlySecretsProvider, {"app": "catwalk-dev-memory", "values": news}) == "update"
    after = engine.state["sec"].outputs
    assert after["version"] > first["version"] and after["names"] == ["API_KEY"]
    assert server_secret_names(emu) == {"API_KEY"}
    assert server_secret_env(emu) == news

    engine.destroy("sec")
    assert server_secret_names(emu) == set()


def test_secrets_refresh_sees_a_name_removed_out_of_band_and_up_restores_it(emu):
    engine = Engine()
    engine.up("app", FlyAppProvider, app_inputs("memory"))
    inputs = {"app": "catwalk-dev-memory", "values": {"A_KEY": "aaaa-1111", "B_KEY": "bbbb-2222"}}
    engine.up("sec", FlySecretsProvider, inputs)
    emu.client().unset_secrets("catwalk-dev-memory", ["B_KEY"])
    engine.refresh("sec")
    assert engine.state["sec"].outputs["names"] == ["A_KEY"]
    assert engine.up("sec", FlySecretsProvider, inputs) == "update"
    assert server_secret_env(emu) == inputs["values"]


def test_secrets_refresh_sees_a_value_changed_out_of_band_and_up_sets_ours_again(emu):
    engine = Engine()
    engine.up("app", FlyAppProvider, app_inputs("memory"))
    inputs = {"app": "catwalk-dev-memory", "values": {"A_KEY": "aaaa-1111", "B_KEY": "bbbb-2222"}}
    engine.up("sec", FlySecretsProvider, inputs)
    emu.client().set_secrets("catwalk-dev-memory", {"B_KEY": "changed-by-hand"})  # same names, another value
    engine.refresh("sec")
    assert engine.up("sec", FlySecretsProvider, inputs) == "update"
    assert server_secret_env(emu) == inputs["values"]
    engine.refresh("sec")
    emu.clear_calls()
    assert engine.up("sec", FlySecretsProvider, inputs) == "same", "an untouched secret refreshes clean"


# -- FlyIp -------------------------------------------------------------------------------------------


def test_ip_create_adopts_an_existing_assignment_and_delete_tolerates_gone(emu):
    engine = Engine()
    engine.up("app", FlyAppProvider, app_inputs("memory"))
    assert engine.up("v4", FlyIpProvider, {"app": "catwalk-dev-memory", "type": "shared_v4"}) == "create"
    assert engine.up("v6", FlyIpProvider, {"app": "catwalk-dev-memory", "type": "v6"}) == "create"
    v4, v6 = engine.state["v4"].id, engine.state["v6"].id
    assert "." in v4 and ":" in v6
    # A second create of the same kind (a re-run after a lost answer) adopts instead of allocating again.
    _, provider = host_copy(FlyIpProvider())
    again = provider.create({"app": "catwalk-dev-memory", "type": "v6"})
    assert again.id == v6
    assert len(emu.client().list_ips("catwalk-dev-memory")) == 2
    imported = provider.read(f"catwalk-dev-memory/{v6}", {})
    assert imported.id == v6 and imported.inputs == {"app": "catwalk-dev-memory", "type": "v6"}
    res = engine.state["v6"]
    engine.destroy("v6")
    res.provider.delete(res.id, dict(res.outputs))
    assert [i.ip for i in emu.client().list_ips("catwalk-dev-memory")] == [v4]


# -- FlyMachine --------------------------------------------------------------------------------------


def test_machine_create_starts_it_with_our_config_and_metadata(emu):
    engine = Engine()
    engine.up("app", FlyAppProvider, app_inputs("memory"))
    assert engine.up("m", FlyMachineProvider, machine_inputs("memory")) == "create"
    out = engine.state["m"].outputs
    live = emu.client().get_machine("catwalk-dev-memory", out["machine_id"])
    assert live.state == "started" and live.name == "memory-iad-0" and live.region == "iad"
    assert live.config.metadata["catwalk_stack"] == "dev" and live.config.metadata["fly_process_group"] == "app"
    assert live.config.services[0].internal_port == 8080
    assert out["state"] == "started" and out["version"] == live.version


def test_unchanged_second_up_makes_no_call_at_all_even_after_refresh(emu):
    engine = Engine()
    engine.up("app", FlyAppProvider, app_inputs("memory"))
    engine.up("m", FlyMachineProvider, machine_inputs("memory"))
    emu.clear_calls()
    assert engine.up("m", FlyMachineProvider, machine_inputs("memory")) == "same"
    assert emu.calls() == []
    engine.refresh("m")  # Fly added defaults (init, autostop spelling): a refresh must not create a diff
    emu.clear_calls()
    assert engine.up("m", FlyMachineProvider, machine_inputs("memory")) == "same"
    assert emu.mutating_calls() == []


def test_env_change_updates_the_same_machine_to_a_new_version(emu):
    engine = Engine()
    engine.up("app", FlyAppProvider, app_inputs("memory"))
    engine.up("m", FlyMachineProvider, machine_inputs("memory"))
    before = dict(engine.state["m"].outputs)
    new_env = {**machine_inputs("memory")["env"], "LOG_LEVEL": "debug"}
    assert engine.up("m", FlyMachineProvider, machine_inputs("memory", env=new_env)) == "update"
    after = engine.state["m"].outputs
    assert after["machine_id"] == before["machine_id"] and after["version"] != before["version"]
    live = emu.client().get_machine("catwalk-dev-memory", after["machine_id"])
    assert live.state == "started" and live.config.env["LOG_LEVEL"] == "debug"
    assert len(emu.live_machines("catwalk-dev-memory")) == 1


def test_update_of_a_machine_leased_by_someone_else_fails_and_changes_nothing(emu):
    engine = Engine()
    engine.up("app", FlyAppProvider, app_inputs("memory"))
    engine.up("m", FlyMachineProvider, machine_inputs("memory"))
    mid = engine.state["m"].id
    emu.client().acquire_lease("catwalk-dev-memory", mid, ttl=60, description="fly deploy by a colleague")
    version = emu.client().get_machine("catwalk-dev-memory", mid).version
    env = {**machine_inputs("memory")["env"], "LOG_LEVEL": "debug"}
    with pytest.raises(
        FlyProviderError, match=r"Fly machine 'memory-iad-0': update in app 'catwalk-dev-memory'.*lease"
    ):
        engine.up("m", FlyMachineProvider, machine_inputs("memory", env=env))
    assert emu.client().get_machine("catwalk-dev-memory", mid).version == version


def test_region_change_creates_the_new_machine_then_destroys_the_old(emu):
    engine = Engine()
    engine.up("app", FlyAppProvider, app_inputs("memory"))
    engine.up("m", FlyMachineProvider, machine_inputs("memory"))
    old = engine.state["m"].id
    assert engine.up("m", FlyMachineProvider, machine_inputs("memory", region="ams")) == "replace"
    new = engine.state["m"].id
    assert new != old
    live = emu.live_machines("catwalk-dev-memory")
    assert [(m["id"], m["region"], m["name"]) for m in live] == [(new, "ams", "memory-ams-0")]
    mutations = [(c["method"], c["path"]) for c in emu.mutating_calls()]
    create_at = mutations.index(("POST", "/v1/apps/catwalk-dev-memory/machines"))
    delete_at = mutations.index(("DELETE", f"/v1/apps/catwalk-dev-memory/machines/{old}"))
    assert create_at < delete_at


def test_lost_create_response_adopts_the_machine_instead_of_duplicating(emu):
    engine = Engine()
    engine.up("app", FlyAppProvider, app_inputs("memory"))
    emu.faults(1.0, kinds=["lost"])  # every mutation is carried out, then its answer is lost (504)
    try:
        engine.up("m", FlyMachineProvider, machine_inputs("memory"))
    finally:
        emu.faults(0.0)
    live = emu.live_machines("catwalk-dev-memory")
    assert [m["id"] for m in live] == [engine.state["m"].id]


def test_create_after_an_earlier_run_left_a_machine_adopts_it(emu):
    """A run whose create never returned left the machine; the next run's create finds it by name."""
    engine = Engine()
    engine.up("app", FlyAppProvider, app_inputs("memory"))
    _, provider = host_copy(FlyMachineProvider())
    first = provider.create({**machine_inputs("memory")})
    assert engine.up("m", FlyMachineProvider, machine_inputs("memory")) == "create"
    assert engine.state["m"].id == first.id
    assert len(emu.live_machines("catwalk-dev-memory")) == 1


def test_adopted_machine_from_a_failed_run_with_older_inputs_is_brought_up_to_date(emu):
    engine = Engine()
    engine.up("app", FlyAppProvider, app_inputs("memory"))
    _, provider = host_copy(FlyMachineProvider())
    stale = provider.create(machine_inputs("memory", env={"OLD": "1"}))
    assert engine.up("m", FlyMachineProvider, machine_inputs("memory")) == "create"
    assert engine.state["m"].id == stale.id
    live = emu.client().get_machine("catwalk-dev-memory", stale.id)
    assert live.config.env == machine_inputs("memory")["env"] and live.state == "started"
    assert engine.state["m"].outputs["version"] == live.version


def test_refresh_shows_an_out_of_band_change_and_up_reverts_it(emu):
    engine = Engine()
    engine.up("app", FlyAppProvider, app_inputs("memory"))
    engine.up("m", FlyMachineProvider, machine_inputs("memory"))
    mid = engine.state["m"].id
    client = emu.client()
    live = client.get_machine("catwalk-dev-memory", mid)
    hand_edited = live.config.to_api()
    hand_edited["env"]["INJECTED"] = "by-hand"
    hand_edited["guest"]["memory_mb"] = 1024
    client.update_machine("catwalk-dev-memory", mid, hand_edited, current_version=live.version)
    engine.refresh("m")
    out = engine.state["m"].outputs
    assert out["env"]["INJECTED"] == "by-hand" and out["memory"] == 1024
    assert engine.up("m", FlyMachineProvider, machine_inputs("memory")) == "update"
    restored = client.get_machine("catwalk-dev-memory", mid)
    assert "INJECTED" not in restored.config.env and restored.config.guest.memory_mb == 512


def test_import_by_app_and_machine_id_then_up_is_a_no_op(emu):
    engine = Engine()
    engine.up("app", FlyAppProvider, app_inputs("memory"))
    engine.up("m", FlyMachineProvider, machine_inputs("memory", secrets_version=None))
    mid = engine.state["m"].id
    pickled, provider = host_copy(FlyMachineProvider())
    read = provider.read(f"catwalk-dev-memory/{mid}", {})
    assert read.id == mid
    expected = provider.check({}, machine_inputs("memory")).inputs
    # An MCP server's machine has no `cmd` (the image's own CMD): read leaves it out, as state before it did.
    assert "cmd" not in read.inputs and expected["cmd"] == []
    assert {k: v for k, v in read.inputs.items() if v is not None} == {
        k: v for k, v in expected.items() if v is not None and k != "cmd"
    }
    diff = provider.diff(mid, {**read.outs, "__provider": pickled}, expected)
    assert diff.changes is False


def test_machine_delete_when_already_gone_succeeds(emu):
    engine = Engine()
    engine.up("app", FlyAppProvider, app_inputs("memory"))
    engine.up("m", FlyMachineProvider, machine_inputs("memory"))
    res = engine.state["m"]
    emu.client().delete_machine("catwalk-dev-memory", res.id, force=True)
    engine.refresh("m")
    assert "m" not in engine.state  # refresh drops it from the state
    res.provider.delete(res.id, dict(res.outputs))  # and a delete of the stored resource still succeeds
    emu.client().delete_app("catwalk-dev-memory")
    res.provider.delete(res.id, dict(res.outputs))  # even when the whole app is gone


def test_machine_delete_stops_it_gracefully_before_destroying_it(emu):
    engine = Engine()
    engine.up("app", FlyAppProvider, app_inputs("memory"))
    engine.up("m", FlyMachineProvider, machine_inputs("memory"))
    mid = engine.state["m"].id
    emu.clear_calls()
    engine.destroy("m")
    path = f"/v1/apps/catwalk-dev-memory/machines/{mid}"
    assert [(c["method"], c["path"]) for c in emu.mutating_calls()] == [("POST", path + "/stop"), ("DELETE", path)]
    events = [(e["type"], e["status"]) for e in reversed(emu.emulator.state.machines[mid].events)]
    stopped, destroyed = events.index(("exit", "stopped")), events.index(("destroy", "destroying"))
    assert stopped < destroyed  # the destroy came once the machine had stopped, not while it ran
    assert emu.live_machines("catwalk-dev-memory") == []


def test_machine_delete_destroys_it_even_when_the_graceful_stop_fails(emu, monkeypatch, caplog):
    engine = Engine()
    engine.up("app", FlyAppProvider, app_inputs("memory"))
    engine.up("m", FlyMachineProvider, machine_inputs("memory"))
    mid = engine.state["m"].id

    def refuse(*args, **kwargs):
        raise ApiError(412, "machine cannot be stopped now")

    monkeypatch.setattr(emu.emulator.state, "stop_machine", refuse)
    caplog.set_level(logging.WARNING)
    engine.destroy("m")
    assert emu.live_machines("catwalk-dev-memory") == []
    assert any(mid in r.getMessage() and "graceful stop failed" in r.getMessage() for r in caplog.records)


def test_deletes_need_only_the_app_and_id_so_state_from_older_versions_still_deletes(emu):
    """pulumi/pulumi#6238: delete runs with whatever the state holds; app + id must be enough."""
    engine = Engine()
    engine.up("app", FlyAppProvider, app_inputs("memory"))
    engine.up("ip", FlyIpProvider, {"app": "catwalk-dev-memory", "type": "v6"})
    engine.up("m", FlyMachineProvider, machine_inputs("memory"))
    minimal = {"app": "catwalk-dev-memory", "__provider": engine.state["m"].pickled}
    engine.state["m"].provider.delete(engine.state["m"].id, minimal)
    engine.state["ip"].provider.delete(engine.state["ip"].id, minimal)
    assert emu.live_machines("catwalk-dev-memory") == []
    assert emu.client().list_ips("catwalk-dev-memory") == []
    engine.state["app"].provider.delete("catwalk-dev-memory", {"__provider": engine.state["app"].pickled})
    assert emu.client().list_apps("personal") == []


def test_machine_that_never_starts_is_destroyed_and_its_events_reported(emu, monkeypatch):
    engine = Engine()
    engine.up("app", FlyAppProvider, app_inputs("memory"))
    monkeypatch.setattr(FlyMachineProvider, "start_deadline_s", 1.0)
    monkeypatch.setattr(emu.emulator.state, "_begin_start", lambda m: None)  # flyd never starts it
    with pytest.raises(FlyProviderError, match=r"did not start.*events: .*launch/created"):
        engine.up("m", FlyMachineProvider, machine_inputs("memory"))
    assert emu.live_machines("catwalk-dev-memory") == []


def test_machine_passes_the_secrets_version_so_it_boots_with_current_secrets(emu):
    engine = Engine()
    engine.up("app", FlyAppProvider, app_inputs("memory"))
    engine.up("sec", FlySecretsProvider, {"app": "catwalk-dev-memory", "values": {"API_KEY": "k-123456"}})
    version = engine.state["sec"].outputs["version"]
    engine.up("m", FlyMachineProvider, machine_inputs("memory", secrets_version=version))
    engine.up("sec", FlySecretsProvider, {"app": "catwalk-dev-memory", "values": {"API_KEY": "k-654321"}})
    newer = engine.state["sec"].outputs["version"]
    assert newer > version
    emu.clear_calls()
    assert engine.up("m", FlyMachineProvider, machine_inputs("memory", secrets_version=newer)) == "update"
    machine_path = f"/v1/apps/catwalk-dev-memory/machines/{engine.state['m'].id}"
    updates = [c for c in emu.mutating_calls() if c["method"] == "POST" and c["path"] == machine_path]
    assert len(updates) == 1
    # a version Fly does not have yet is refused by Fly, and the error names the machine
    with pytest.raises(FlyProviderError, match="memory-iad-0"):
        engine.up("m", FlyMachineProvider, machine_inputs("memory", secrets_version=newer + 5))


# -- a 5-server set under faults, and the secret scan -------------------------------------------------

SERVERS = ["memory", "git", "fetch", "time", "sqlite"]


def converge(step, rounds: int = 12) -> int:
    """Re-run a step until it succeeds, as a user re-runs `pulumi up`; returns the failures seen."""
    failures = 0
    for _ in range(rounds):
        try:
            step()
            return failures
        except FlyProviderError:
            failures += 1
    raise AssertionError(f"did not converge in {rounds} runs")


def deploy(engine: Engine, env_extra: dict[str, str]) -> None:
    for s in SERVERS:
        converge(lambda s=s: engine.up(f"app-{s}", FlyAppProvider, app_inputs(s)))
        converge(
            lambda s=s: engine.up(
                f"sec-{s}",
                FlySecretsProvider,
                {"app": f"catwalk-dev-{s}", "values": {"API_KEY": f"secret-{s}-value-0001"}},
            )
        )
        converge(lambda s=s: engine.up(f"ip-{s}", FlyIpProvider, {"app": f"catwalk-dev-{s}", "type": "shared_v4"}))
        version = engine.state[f"sec-{s}"].outputs["version"]
        env = {**machine_inputs(s)["env"], **env_extra}
        converge(
            lambda s=s, env=env, version=version: engine.up(
                f"m-{s}", FlyMachineProvider, machine_inputs(s, env=env, secrets_version=version)
            )
        )


def test_five_servers_converge_under_30_percent_faults_without_duplicates_or_orphans(emu):
    engine = Engine()
    emu.faults(0.3, seed=42)
    deploy(engine, {})
    live = emu.live_machines()
    assert sorted(m["name"] for m in live) == sorted(f"{s}-iad-0" for s in SERVERS)
    assert {m["id"] for m in live} == {engine.state[f"m-{s}"].id for s in SERVERS}

    deploy(engine, {"LOG_LEVEL": "debug"})  # env change: in place, same machines
    faults = [c["fault"] for c in emu.calls() if c["fault"]]
    assert len(faults) >= 20 and {"lost", "500", "429"} <= set(faults), faults  # the faults really happened
    live = emu.live_machines()
    assert {m["id"] for m in live} == {engine.state[f"m-{s}"].id for s in SERVERS}
    emu.faults(0.0)
    for s in SERVERS:
        live_machine = emu.client().get_machine(f"catwalk-dev-{s}", engine.state[f"m-{s}"].id)
        assert live_machine.config.env["LOG_LEVEL"] == "debug"

    emu.faults(0.3, seed=7)
    emu.clear_calls()
    deploy(engine, {"LOG_LEVEL": "debug"})  # unchanged second run
    assert emu.mutating_calls() == [] and emu.calls() == []

    for key in [k for k in engine.state if k.startswith("m-")] + [k for k in engine.state if not k.startswith("m-")]:
        if key.startswith("app-"):
            continue
        converge(lambda key=key: engine.destroy(key))
    for s in SERVERS:
        converge(lambda s=s: engine.destroy(f"app-{s}"))
    assert emu.live_machines() == []
    emu.faults(0.0)
    assert emu.client().list_apps("personal") == []


def test_no_secret_value_reaches_outputs_machine_config_logs_or_errors(emu, caplog):
    caplog.set_level(logging.DEBUG)
    secret = "sk-live-DO-NOT-LEAK-7f3a9c"
    engine = Engine()
    engine.up("app", FlyAppProvider, app_inputs("memory"))
    engine.up("sec", FlySecretsProvider, {"app": "catwalk-dev-memory", "values": {"API_KEY": secret}})
    version = engine.state["sec"].outputs["version"]
    engine.up("m", FlyMachineProvider, machine_inputs("memory", secrets_version=version))
    engine.up("sec", FlySecretsProvider, {"app": "catwalk-dev-memory", "values": {"API_KEY": secret + "-2"}})
    engine.refresh("sec")
    engine.refresh("m")
    # A failing secrets call (the app is gone) must not echo the value either.
    _, provider = host_copy(FlySecretsProvider())
    with pytest.raises(FlyProviderError) as err:
        provider.create({"app": "catwalk-dev-missing", "values": {"API_KEY": secret}})

    outputs = json.dumps({k: {**r.outputs, "__provider": ""} for k, r in engine.state.items()})
    machine = emu.client().get_machine("catwalk-dev-memory", engine.state["m"].id).to_api()
    texts = {
        "outputs": outputs,
        "machine config and events": json.dumps(machine),
        "logs": caplog.text,
        "error": f"{err.value} {err.value.__cause__}",
        "pickled providers": " ".join(base64.b64decode(r.pickled).decode("latin-1") for r in engine.state.values()),
    }
    for where, text in texts.items():
        assert secret not in text, f"secret value found in {where}"
    assert "API_KEY" in outputs  # names are kept; values are not
