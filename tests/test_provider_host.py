"""The real provider host: `python -m pulumi.dynamic`, driven over gRPC the way the engine drives it.

The host is started from /tmp (not the project directory) with the project's interpreter, so it must
import `components` from the installed package to unpickle `__provider`. The Fly token reaches it only
through `Configure` (the host's environment has no FLY_API_TOKEN), as the engine passes stack config.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import Any

import grpc
import pytest
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime import rpc
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

from components.fly import FlyClient
from components.providers import FlyAppProvider, FlyIpProvider, FlyMachineProvider, FlySecretsProvider
from tests.fly_emulator.fixture import emulator_process
from tests.test_providers_emulator import TOKEN, Emu

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


def _struct(props: dict[str, Any]):
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(rpc.serialize_properties(props, {}))
    finally:
        loop.close()


def _props(struct) -> dict[str, Any]:
    return rpc.deserialize_properties(struct)


class ProviderHost:
    """A running `python -m pulumi.dynamic` and a stub speaking the ResourceProvider protocol."""

    def __init__(self, env: dict[str, str]):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pulumi.dynamic"],
            cwd="/tmp",
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        port = self.proc.stdout.readline().decode().strip()
        if not port.isdigit():
            self.proc.kill()
            raise RuntimeError(f"provider host did not start: {self.proc.stderr.read().decode()[-2000:]}")
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = provider_pb2_grpc.ResourceProviderStub(self.channel)

    def close(self) -> str:
        self.channel.close()
        self.proc.terminate()
        try:
            _, err = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return err.decode(errors="replace")

    def configure(self, config: dict[str, str]) -> provider_pb2.ConfigureResponse:
        return self.stub.Configure(provider_pb2.ConfigureRequest(args=_struct(config), acceptSecrets=False))

    def check(self, olds: dict, news: dict) -> provider_pb2.CheckResponse:
        return self.stub.Check(provider_pb2.CheckRequest(urn=URN, olds=_struct(olds), news=_struct(news)))

    def diff(self, id_: str, olds: dict, news: dict) -> provider_pb2.DiffResponse:
        return self.stub.Diff(provider_pb2.DiffRequest(id=id_, urn=URN, olds=_struct(olds), news=_struct(news)))

    def create(self, props: dict) -> provider_pb2.CreateResponse:
        return self.stub.Create(provider_pb2.CreateRequest(urn=URN, properties=_struct(props)))

    def update(self, id_: str, olds: dict, news: dict) -> provider_pb2.UpdateResponse:
        return self.stub.Update(provider_pb2.UpdateRequest(id=id_, urn=URN, olds=_struct(olds), news=_struct(news)))

    def read(self, id_: str, props: dict) -> provider_pb2.ReadResponse:
        return self.stub.Read(provider_pb2.ReadRequest(id=id_, urn=URN, properties=_struct(props)))

    def delete(self, id_: str, props: dict) -> None:
        self.stub.Delete(provider_pb2.DeleteRequest(id=id_, urn=URN, properties=_struct(props)))


def host_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLY_", "PULUMI_"))}
    env.update(extra)
    return env


@pytest.fixture
def host():
    h = ProviderHost(host_env())
    yield h
    h.close()


def test_host_check_unpickles_the_provider_and_names_the_bad_field(host):
    provider = serialize_provider(FlyMachineProvider())
    host.configure({})
    ok = host.check({}, {**MACHINE, "__provider": provider})
    assert list(ok.failures) == []
    assert _props(ok.inputs)["memory"] == 512  # defaults filled in by the inputs model
    bad = host.check({}, {**MACHINE, "region": "moon", "__provider": provider})
    assert [(f.property, "not a Fly.io region" in f.reason) for f in bad.failures] == [("region", True)]


def test_host_runs_configure_check_create_diff_update_read_delete_against_the_emulator():
    """Full lifecycle through the real host; the emulator accepts only TOKEN, which only Configure carries."""
    emu = Emu()
    host = ProviderHost(host_env(FLY_API_URL=emu.base_url, CATWALK_FLY_RATE="off"))
    secret = "sk-host-test-value-DO-NOT-LEAK"
    try:
        host.configure({"catwalk:flyApiToken": TOKEN})
        app_p = serialize_provider(FlyAppProvider())
        app_in = {"name": "catwalk-dev-memory", "org": "personal", "stack": "dev", "__provider": app_p}
        app = host.create(_props(host.check({}, app_in).inputs) | {"__provider": app_p})
        assert app.id == "catwalk-dev-memory"

        sec_p = serialize_provider(FlySecretsProvider())
        sec_in = {"app": "catwalk-dev-memory", "values": {"API_KEY": secret}, "__provider": sec_p}
        sec = host.create(_props(host.check({}, sec_in).inputs) | {"__provider": sec_p})
        sec_out = _props(sec.properties)
        assert sec_out["names"] == ["API_KEY"] and secret not in repr(sec_out)

        provider = serialize_provider(FlyMachineProvider())
        news = {**MACHINE, "secrets_version": sec_out["version"], "__provider": provider}
        checked = _props(host.check({}, news).inputs) | {"__provider": provider}
        created = host.create(checked)
        outs = _props(created.properties)
        assert outs["state"] == "started" and outs["machine_id"] == created.id
        assert [m["id"] for m in emu.live_machines()] == [created.id]

        emu.clear_calls()
        same = host.diff(created.id, outs, checked)
        assert same.changes == provider_pb2.DiffResponse.DIFF_NONE and list(same.replaces) == []
        assert emu.calls() == []  # a no-op diff does not even read

        moved = host.diff(created.id, outs, {**checked, "region": "ams"})
        assert moved.changes == provider_pb2.DiffResponse.DIFF_SOME and list(moved.replaces) == ["region"]

        env = {**MACHINE["env"], "LOG_LEVEL": "debug"}
        changed = _props(host.check(checked, {**checked, "env": env}).inputs) | {"__provider": provider}
        diff = host.diff(created.id, outs, changed)
        assert diff.changes == provider_pb2.DiffResponse.DIFF_SOME and list(diff.replaces) == []
        updated = _props(host.update(created.id, outs, changed).properties)
        assert updated["machine_id"] == created.id and updated["version"] != outs["version"]
        assert updated["env"]["LOG_LEVEL"] == "debug"

        read = host.read(created.id, updated)
        assert read.id == created.id and _props(read.properties)["env"]["LOG_LEVEL"] == "debug"

        # Import (`import_=` in the program): the engine sends no properties, only the program's inputs.
        imported = host.stub.Read(provider_pb2.ReadRequest(id=created.id, urn=URN, inputs=_struct(changed)))
        assert imported.id == created.id
        assert _props(imported.inputs)["env"] == env and _props(imported.inputs)["region"] == "iad"

        host.delete(created.id, updated)
        host.delete(created.id, updated)  # already gone: still succeeds
        host.delete(sec.id, sec_out)
        host.delete(app.id, _props(app.properties))
        assert emu.live_machines() == []
        assert emu.client().list_apps("personal") == []
    finally:
        stderr = host.close()
        emu.close()
    assert secret not in stderr and TOKEN not in stderr


def test_host_without_a_token_fails_with_a_clear_error_and_creates_nothing():
    emu = Emu()
    host = ProviderHost(host_env(FLY_API_URL=emu.base_url, CATWALK_FLY_RATE="off"))
    try:
        host.configure({})
        provider = serialize_provider(FlyAppProvider())
        with pytest.raises(grpc.RpcError) as err:
            host.create({"name": "catwalk-dev-memory", "org": "personal", "stack": "dev", "__provider": provider})
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
        inputs = _props(checked.inputs)
        if entry is None:
            created = self.host.create(inputs)
            self.state[key] = {
                "id": created.id,
                "inputs": inputs,
                "outputs": _props(created.properties),
                "pickled": pickled,
            }
            return "create"
        diff = self.host.diff(entry["id"], entry["outputs"], inputs)
        if diff.replaces:
            created = self.host.create(inputs)
            self.host.delete(entry["id"], entry["outputs"])
            entry.update(id=created.id, inputs=inputs, outputs=_props(created.properties))
            return "replace"
        if diff.changes == provider_pb2.DiffResponse.DIFF_SOME:
            entry.update(
                inputs=inputs, outputs=_props(self.host.update(entry["id"], entry["outputs"], inputs).properties)
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
            (f"app-{s}", FlyAppProvider, lambda app=app: {"name": app, "org": "personal", "stack": "dev"}),
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
    """Acceptance: `python -m tests.fly_emulator --fault-rate 0.3`, the real host, 5 servers: create, env
    update, unchanged re-run (zero calls), destroy; never a duplicate or orphan machine."""
    with emulator_process(
        "--fault-rate", "0.3", "--seed", "11", "--retry-after", "0", "--transition-s", "0.01", token=TOKEN
    ) as emu:
        host = ProviderHost(host_env(FLY_API_URL=emu.base_url, CATWALK_FLY_RATE="off"))
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
