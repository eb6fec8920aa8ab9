"""FlyVolume against the emulator: adopted after a lost state, grown in place, never shrunk or deleted unasked."""

from __future__ import annotations

import pytest
from pulumi.dynamic import Config, ConfigureRequest

from components.providers import FlyAppProvider, FlyMachineProvider, FlyProviderError, FlyVolumeProvider
from tests.providers.test_providers_emulator import Engine, app_inputs, emu, machine_inputs  # noqa: F401

APP = "catwalk-dev-memory"


def volume_inputs(**extra) -> dict:
    return {"app": APP, "stack": "dev", "server": "memory", "region": "iad", "index": 0, "size_gb": 1, **extra}


def allow_delete(engine: Engine, key: str, value: str) -> None:
    """What the engine does on each run: configure the provider with the stack config."""
    engine.state[key].provider.configure(
        ConfigureRequest(Config(raw_config={"catwalk:deleteVolumes": value}, project_name="catwalk"))
    )


def test_create_adopts_the_volume_a_lost_state_left_behind_and_grows_it(emu):  # noqa: F811
    engine = Engine()
    engine.up("app", FlyAppProvider, app_inputs("memory"))
    assert engine.up("vol", FlyVolumeProvider, volume_inputs()) == "create"
    first = engine.state.pop("vol").id  # the state is lost; the volume and its data are not

    assert engine.up("vol", FlyVolumeProvider, volume_inputs(size_gb=2, snapshot_retention=9)) == "create"
    assert engine.state["vol"].id == first
    [volume] = emu.client().list_volumes(APP)
    assert (volume.id, volume.size_gb, volume.snapshot_retention) == (first, 2, 9)


def test_shrinking_or_changing_encryption_fails_the_check_naming_the_field(emu):  # noqa: F811
    engine = Engine()
    engine.up("app", FlyAppProvider, app_inputs("memory"))
    engine.up("vol", FlyVolumeProvider, volume_inputs(size_gb=3))
    res = engine.state["vol"]
    shrink = res.provider.check(dict(res.inputs), volume_inputs(size_gb=2))
    assert [f.property for f in shrink.failures] == ["size_gb"] and "cannot shrink" in shrink.failures[0].reason
    plain = res.provider.check(dict(res.inputs), volume_inputs(size_gb=3, encrypted=False))
    assert [f.property for f in plain.failures] == ["encrypted"]


def test_delete_refuses_unless_delete_volumes_lists_the_server(emu):  # noqa: F811
    engine = Engine()
    engine.up("app", FlyAppProvider, app_inputs("memory"))
    engine.up("vol", FlyVolumeProvider, volume_inputs())
    allow_delete(engine, "vol", "git")
    with pytest.raises(FlyProviderError, match=r"not deleting it.*catwalk:deleteVolumes"):
        engine.destroy("vol")
    assert len(emu.client().list_volumes(APP)) == 1
    allow_delete(engine, "vol", '["git", "memory"]')
    engine.destroy("vol")
    assert emu.client().list_volumes(APP) == []


def test_the_delete_setting_never_lands_in_the_pickled_provider(emu):  # noqa: F811
    import dill

    provider = FlyVolumeProvider()
    provider.configure(ConfigureRequest(Config(raw_config={"catwalk:deleteVolumes": "memory"}, project_name="c")))
    assert provider.volume_delete_allowed("memory")
    assert not dill.loads(dill.dumps(provider)).volume_delete_allowed("memory")


def test_a_machine_update_that_unmounts_its_volume_is_refused_before_any_fly_call(emu):  # noqa: F811
    engine = Engine()
    engine.up("app", FlyAppProvider, app_inputs("memory"))
    engine.up("vol", FlyVolumeProvider, volume_inputs())
    mount = [{"volume": engine.state["vol"].id, "path": "/data"}]
    engine.up("m", FlyMachineProvider, machine_inputs("memory", mounts=mount))
    emu.clear_calls()
    with pytest.raises(FlyProviderError, match=r"not unmounting volume .*catwalk:deleteVolumes"):
        engine.up("m", FlyMachineProvider, machine_inputs("memory"))
    assert emu.calls() == []
    allow_delete(engine, "m", "memory")
    assert engine.up("m", FlyMachineProvider, machine_inputs("memory")) == "update"
