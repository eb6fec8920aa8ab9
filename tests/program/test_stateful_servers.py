"""Volumes and files through the engine harness and the Fly emulator: data is never deleted by a config slip.

Custom-command servers on a prebuilt image: nothing is detected from a registry or built, so the whole
program and its real providers run offline against the emulator.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml

from tests.tools.fly_emulator.fixture import running_emulator
from tests.tools.stack_files import per_file_harness

ROOT = Path(__file__).resolve().parents[2]
APP = "catwalk-vol-tool"
VOLUME = {"path": "/data", "size": 1}


def stack_file(path: Path, *, volume: dict | None = VOLUME, files=None, servers=None, **settings) -> Path:
    tool = {"name": "tool", "command": "node /srv/tool.js --stdio", "env": {"DB_PATH": "/data/tool.db"}}
    if volume is not None:
        tool["volume"] = volume
    if files is not None:
        tool["files"] = files
    config = {
        "catwalk:appPrefix": "catwalk-vol",
        "catwalk:image": "registry.fly.io/catwalk-base:v1",
        "catwalk:verify": False,
        "catwalk:servers": [tool] if servers is None else servers,
        **{f"catwalk:{k}": v for k, v in settings.items()},
    }
    path.write_text(yaml.safe_dump({"config": config}))
    return path


@pytest.fixture
def stack(tmp_path):
    with running_emulator() as emulator:
        yield emulator, per_file_harness(emulator, tmp_path / "state.json", stack="vol"), tmp_path


def live_volumes(emulator) -> list:
    return [v for v in emulator.emulator.state.volumes.values() if v.state != "destroyed"]


def tool_machine(emulator):
    [machine] = [m for m in emulator.emulator.state.machines.values() if m.app == APP and m.state != "destroyed"]
    return machine


def test_a_volume_is_made_per_machine_mounted_and_grown_in_place(stack):
    emulator, harness, tmp = stack
    up = harness("up", stack_file(tmp / "s.yaml"))
    assert up.ok, up.error
    assert ("tool-volume-iad-0", "create") in [(o["name"], o["op"]) for o in up.operations]
    [volume] = live_volumes(emulator)
    assert (volume.name, volume.region, volume.size_gb, volume.encrypted) == ("data_iad_0", "iad", 1, True)
    machine = tool_machine(emulator)
    assert [(m["volume"], m["path"]) for m in machine.config["mounts"]] == [(volume.id, "/data")]
    assert volume.attached_machine_id == machine.id

    grown = harness("up", stack_file(tmp / "s.yaml", volume={**VOLUME, "size": 3, "snapshotRetention": 10}))
    assert grown.ok, grown.error
    assert [(o["name"], o["op"]) for o in grown.operations if o["op"] != "same"] == [("tool-volume-iad-0", "update")]
    [after] = live_volumes(emulator)
    assert (after.id, after.size_gb, after.snapshot_retention) == (volume.id, 3, 10)
    assert tool_machine(emulator).id == machine.id

    shrink = harness("preview", stack_file(tmp / "s.yaml", volume={**VOLUME, "size": 2}))
    assert not shrink.ok and "cannot shrink" in shrink.error


def test_removing_the_volume_is_planned_refused_by_up_then_done_with_delete_volumes(stack):
    emulator, harness, tmp = stack
    assert harness("up", stack_file(tmp / "s.yaml")).ok
    [volume] = live_volumes(emulator)
    machine = tool_machine(emulator)

    without = stack_file(tmp / "s.yaml", volume=None)
    preview = harness("preview", without)
    assert preview.ok, preview.error
    planned = {(o["name"], o["op"]) for o in preview.operations if o["op"] != "same"}
    assert planned == {("tool-volume-iad-0", "delete"), ("tool-iad-0", "update")}

    refused = harness("up", without)
    assert not refused.ok
    assert "catwalk:deleteVolumes" in refused.error and "tool" in refused.error
    assert [v.id for v in live_volumes(emulator)] == [volume.id], "the volume and its data stay"
    assert tool_machine(emulator).config["mounts"][0]["volume"] == volume.id, "the machine still mounts it"
    assert tool_machine(emulator).version == machine.version, "nothing was changed on the machine"

    confirmed = harness("up", stack_file(tmp / "s.yaml", volume=None, deleteVolumes=["tool"]))
    assert confirmed.ok, confirmed.error
    assert live_volumes(emulator) == []
    assert "mounts" not in tool_machine(emulator).config


def test_removing_a_server_with_a_volume_keeps_the_volume_and_its_app_until_confirmed(stack):
    emulator, harness, tmp = stack
    other = {"name": "other", "command": "node /srv/other.js"}
    tool = {"name": "tool", "command": "node /srv/tool.js", "volume": VOLUME}
    assert harness("up", stack_file(tmp / "s.yaml", servers=[tool, other])).ok
    [volume] = live_volumes(emulator)

    refused = harness("up", stack_file(tmp / "s.yaml", servers=[other]))
    assert not refused.ok and "catwalk:deleteVolumes" in refused.error
    assert [v.id for v in live_volumes(emulator)] == [volume.id]
    assert APP in emulator.emulator.state.apps, "the app (which would take its volumes along) stays"

    confirmed = harness("up", stack_file(tmp / "s.yaml", servers=[other], deleteVolumes="tool"))
    assert confirmed.ok, confirmed.error
    assert live_volumes(emulator) == [] and APP not in emulator.emulator.state.apps


def test_files_reach_the_machine_config_and_secret_ones_only_through_fly_secrets(stack):
    emulator, harness, tmp = stack
    (tmp / "key.pem").write_text("-----BEGIN KEY-----\nsupersecretbytes\n")
    files = [
        {"path": "config.json", "content": '{"answer": 42}'},
        {"path": "/etc-like/key.pem", "source": "key.pem", "secret": True},
    ]
    # `source` is read next to the stack file, in the project directory: a project of its own for this test.
    (tmp / "Pulumi.yaml").write_text("name: catwalk\n")
    config = stack_file(tmp / "Pulumi.vol.yaml", files=files)
    up = harness("up", config, project_dir=tmp, program=ROOT / "infra")
    assert up.ok, up.error
    plain, secret = tool_machine(emulator).config["files"]
    assert plain["guest_path"] == "/home/app/config.json"
    assert base64.b64decode(plain["raw_value"]) == b'{"answer": 42}'
    assert secret["guest_path"] == "/etc-like/key.pem" and "raw_value" not in secret
    stored = emulator.emulator.state.secret_env(APP)[secret["secret_name"]]
    assert base64.b64decode(stored) == b"-----BEGIN KEY-----\nsupersecretbytes\n"
    assert "supersecretbytes" not in (tmp / "state.json").read_text()
    assert base64.b64encode(b"-----BEGIN KEY-----\nsupersecretbytes\n").decode() not in (tmp / "state.json").read_text()


def test_destroy_keeps_volumes_unless_delete_volumes_lists_their_server(stack):
    emulator, harness, tmp = stack
    assert harness("up", stack_file(tmp / "s.yaml")).ok
    refused = harness("destroy", stack_file(tmp / "s.yaml"))
    assert not refused.ok and "catwalk:deleteVolumes" in refused.error
    assert len(live_volumes(emulator)) == 1 and APP in emulator.emulator.state.apps

    destroyed = harness("destroy", stack_file(tmp / "s.yaml", deleteVolumes=["tool"]))
    assert destroyed.ok, destroyed.error
    assert live_volumes(emulator) == [] and emulator.emulator.state.apps == {}


def test_preview_warns_when_each_machine_would_keep_its_own_copy_of_the_data(stack, tmp_path, caplog, monkeypatch):
    from tests.tools import harness

    emulator = stack[0]
    monkeypatch.setenv("FLY_API_URL", emulator.base_url)
    monkeypatch.setenv("FLY_API_TOKEN", emulator.token)
    monkeypatch.setenv("CATWALK_FLY_RATE", "off")
    servers = [{"name": "tool", "command": "node /srv/tool.js", "count": 2, "volume": VOLUME}]
    config = stack_file(tmp_path / "s.yaml", servers=servers)
    with caplog.at_level("WARNING"):
        result = harness.run("preview", "vol", project_dir=ROOT, config_file=config, state=tmp_path / "state.json")
    assert result.ok, result.error
    assert ("tool-volume-iad-1", "create") in [(o["name"], o["op"]) for o in result.operations]
    assert "server 'tool': count: 2 machines per region each get their own volume" in caplog.text
