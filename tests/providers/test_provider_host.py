"""The real provider host: `python -m pulumi.dynamic`, driven over gRPC the way the engine drives it.

The host is started from /tmp (not the project directory) with the project's interpreter, so it must
import `components` from the installed package to unpickle `__provider`. The Fly token reaches it only
through `Configure` (the host's environment has no FLY_API_TOKEN), as the engine passes stack config.
"""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime.proto import provider_pb2

from components.fly import FlyClient
from components.providers import FlyAppProvider, FlyIpProvider, FlyMachineProvider, FlySecretsProvider
from tests.providers.test_providers_emulator import TOKEN, Emu
from tests.tools.fly_emulator.fixture import emulator_process
from tests.tools.provider_host import ProviderHost, host_env, props_of, struct

OWNER = "k3x9a2b1"  # the stack id every app of these tests carries

MACHINE = {
    "app": "catwalk-dev-memory",
    "stack": "dev",
    "server": "memory",
    "region": "iad",
    "index": 0,
    "image": "registry.fly.io/catwalk-dev-memory:deployment-1",
    "env": {"MCP_RUNTIME": "npm"},
}
URN = "urn:pulumi:dev::catwalk::pulumi-python:dynamic/catwalk:FlyMachine::memory-iad-0"


@pytest.fixture
def host():
    h = ProviderHost(host_env(), URN)
    yield h
    h.close()


def test_host_check_unpickles_the_provider_and_names_the_bad_field(host):
    provider = serialize_provider(FlyMachineProvider())
    host.configure({})
    ok = host.check({}, {**MACHINE, "__provider": provider})
    assert list(ok.failures) == []
    assert props_of(ok.inputs)["memory"] == 512  # defaults filled in by the inputs model
    bad = host.check({}, {**MACHINE, "region": "moon", "__provider": provider})
    assert [(f.property, "not a Fly.io region" in f.reason) for f in bad.failures] == [("region", True)]


def test_host_runs_configure_check_create_diff_update_read_delete_against_the_emulator():
    """Full lifecycle through the real host; the emulator accepts only TOKEN, which only Configure carries."""
    emu = Emu()
    host = ProviderHost(host_env(FLY_API_URL=emu.base_url, CATWALK_FLY_RATE="off"), URN)
    secret = "sk-host-test-value-DO-NOT-LEAK"
    try:
        host.configure({"catwalk:flyApiToken": TOKEN})
        app_p = serialize_provider(FlyAppProvider())
        app_in = {"name": "catwalk-dev-memory", "org": "personal", "stack": "dev", "owner": OWNER, "__provider": app_p}
        app = host.create(props_of(host.check({}, app_in).inputs) | {"__provider": app_p})
        assert app.id == "catwalk-dev-memory"

        sec_p = serialize_provider(FlySecretsProvider())
        sec_in = {"app": "catwalk-dev-memory", "values": {"API_KEY": secret}, "__provider": sec_p}
        sec = host.create(props_of(host.check({}, sec_in).inputs) | {"__provider": sec_p})
        sec_out = props_of(sec.properties)
        assert sec_out["names"] == ["API_KEY"] and secret not in repr(sec_out)

        provider = serialize_provider(FlyMachineProvider())
        news = {**MACHINE, "secrets_version": sec_out["version"], "__provider": provider}
        checked = props_of(host.check({}, news).inputs) | {"__provider": provider}
        created = host.create(checked)
        outs = props_of(created.properties)
        assert outs["state"] == "started" and outs["machine_id"] == created.id
        assert [m["id"] for m in emu.live_machines()] == [created.id]

        emu.clear_calls()
        same = host.diff(created.id, outs, checked)
        assert same.changes == provider_pb2.DiffResponse.DIFF_NONE and list(same.replaces) == []
        assert emu.calls() == []  # a no-op diff does not even read

        moved = host.diff(created.id, outs, {**checked, "region": "ams"})
        assert moved.changes == provider_pb2.DiffResponse.DIFF_SOME and list(moved.replaces) == ["region"]

        env = {**MACHINE["env"], "LOG_LEVEL": "debug"}
        changed = props_of(host.check(checked, {**checked, "env": env}).inputs) | {"__provider": provider}
        diff = host.diff(created.id, outs, changed)
        assert diff.changes == provider_pb2.DiffResponse.DIFF_SOME and list(diff.replaces) == []
        updated = props_of(host.update(created.id, outs, changed).properties)
        assert updated["machine_id"] == created.id and updated["version"] != outs["version"]
        assert updated["env"]["LOG_LEVEL"] == "debug"

        read = host.read(created.id, updated)
        assert read.id == created.id and props_of(read.properties)["env"]["LOG_LEVEL"] == "debug"

        # Import (`import_=` in the program): the engine sends no properties, only the program's inputs.
        imported = host.stub.Read(provider_pb2.ReadRequest(id=created.id, urn=URN, inputs=struct(changed)))
        assert imported.id == created.id
        assert props_of(imported.inputs)["env"] == env and props_of(imported.inputs)["region"] == "iad"

        host.delete(created.id, updated)
        host.delete(created.id, updated)  # already gone: still succeeds
        host.delete(sec.id, sec_out)
        host.delete(app.id, props_of(app.properties))
        assert emu.live_machines() == []
        assert emu.client().list_apps("personal") == []
    finally:
        stderr = host.close()
        emu.close()
    assert secret not in stderr and TOKEN not in stderr


def test_host_without_a_token_fails_with_a_clear_error_and_creates_nothing():
    emu = Emu()
    host = ProviderHost(host_env(FLY_API_URL=emu.base_url, CATWALK_FLY_RATE="off"), URN)
    try:
        host.configure({})
        provider = serialize_provider(FlyAppProvider())
        with pytest.raises(grpc.RpcError) as err:
            host.create(
                {
                    "name": "catwalk-dev-memory",
                    "org": "personal",
                    "stack": "dev",
                    "owner": OWNER,
                    "__provider": provider,
                }
            )
        assert "Fly app 'catwalk-dev-memory': create failed" in err.value.details()
        assert "catwalk:flyApiToken" in err.value.details()
        assert emu.client().list_apps("personal") == []
    finally:
        host.close()
        emu.close()


class HostEngine:
    """`pulumi up`/`destroy` step logic over the host's gRPC API (create-before-delete replacement)."""

    def __init__(self, host: ProviderHost):
        self.host = host
        self.state: dict[str, dict[str, Any]] = {}

    def up(self, key: str, provider_class: type, news: dict[str, Any]) -> str:
        entry = self.state.get(key)
        pickled = entry["pickled"] if entry else serialize_provider(provider_class())
        checked = self.host.check(entry["inputs"] if entry else {}, {**news, "__provider": pickled})
        assert list(checked.failures) == []
        inputs = props_of(checked.inputs)
        if entry is None:
            created = self.host.create(inputs)
            self.state[key] = {
                "id": created.id,
                "inputs": inputs,
                "outputs": props_of(created.properties),
                "pickled": pickled,
            }
            return "create"
        diff = self.host.diff(entry["id"], entry["outputs"], inputs)
        if diff.replaces:
            created = self.host.create(inputs)
            self.host.delete(entry["id"], entry["outputs"])
            entry.update(id=created.id, inputs=inputs, outputs=props_of(created.properties))
            return "replace"
        if diff.changes == provider_pb2.DiffResponse.DIFF_SOME:
            entry.update(
                inputs=inputs, outputs=props_of(self.host.update(entry["id"], entry["outputs"], inputs).properties)
            )
            return "update"
        return "same"

    def destroy(self, key: str) -> None:
        entry = self.state[key]
        self.host.delete(entry["id"], entry["outputs"])
        del self.state[key]


def converge(step, rounds: int = 12) -> None:
    """Re-run a failed step, as a user re-runs `pulumi up` after an error."""
    for _ in range(rounds):
        try:
            step()
            return
        except grpc.RpcError:
            continue
    raise AssertionError(f"did not converge in {rounds} runs")


SERVERS = ["memory", "git", "fetch", "time", "sqlite"]


def deploy(engine: HostEngine, extra_env: dict[str, str]) -> list[str]:
    ops = []
    for s in SERVERS:
        app = f"catwalk-dev-{s}"
        steps = [
            (
                f"app-{s}",
                FlyAppProvider,
                lambda app=app: {"name": app, "org": "personal", "stack": "dev", "owner": OWNER},
            ),
            (f"sec-{s}", FlySecretsProvider, lambda app=app, s=s: {"app": app, "values": {"API_KEY": f"v-{s}-0001"}}),
            (f"ip-{s}", FlyIpProvider, lambda app=app: {"app": app, "type": "shared_v4"}),
            (
                f"m-{s}",
                FlyMachineProvider,
                lambda app=app, s=s: {
                    **MACHINE,
                    "app": app,
                    "server": s,
                    "env": {**MACHINE["env"], **extra_env},
                    "secrets_version": engine.state[f"sec-{s}"]["outputs"]["version"],
                },
            ),
        ]
        for key, cls, news in steps:
            converge(lambda key=key, cls=cls, news=news: ops.append(engine.up(key, cls, news())))
    return ops


@pytest.mark.slow
def test_host_five_servers_converge_under_the_cli_emulators_30_percent_faults():
    """Acceptance: `python -m tests.tools.fly_emulator --fault-rate 0.3`, the real host, 5 servers: create, env
    update, unchanged re-run (zero calls), destroy; never a duplicate or orphan machine."""
    with emulator_process(
        "--fault-rate", "0.3", "--seed", "11", "--retry-after", "0", "--transition-s", "0.01", token=TOKEN
    ) as emu:
        host = ProviderHost(host_env(FLY_API_URL=emu.base_url, CATWALK_FLY_RATE="off"), URN)
        try:
            host.configure({"catwalk:flyApiToken": TOKEN})
            engine = HostEngine(host)

            def live() -> dict[str, str]:
                return {m["name"]: m["id"] for m in emu.machines() if m["state"] not in ("destroyed", "destroying")}

            assert set(deploy(engine, {})) == {"create"}
            assert live() == {f"{s}-iad-0": engine.state[f"m-{s}"]["id"] for s in SERVERS}
            faults = [c["fault"] for c in emu.calls() if c["fault"]]
            assert len(faults) >= 10, faults

            ids = live()
            ops = deploy(engine, {"LOG_LEVEL": "debug"})
            assert ops.count("update") == len(SERVERS) and "replace" not in ops and "create" not in ops
            assert live() == ids  # in place: the same machines
            assert all(engine.state[f"m-{s}"]["outputs"]["env"]["LOG_LEVEL"] == "debug" for s in SERVERS)

            emu.clear_calls()
            assert set(deploy(engine, {"LOG_LEVEL": "debug"})) == {"same"}
            assert emu.calls() == []

            for key in sorted(engine.state, key=lambda k: k.startswith("app-")):  # apps last
                converge(lambda key=key: engine.destroy(key))
            assert live() == {}
            assert FlyClient(emu.base_url, TOKEN, mutation_rate=0).list_apps("personal") == []
        finally:
            host.close()
