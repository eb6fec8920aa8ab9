"""--run-machines gives each machine Fly's disks: a root that is fresh at every start, a volume that is not,
and the config's files written before the process starts."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest

from components import storage
from components.fly import FlyClient
from tests.tools.fly_emulator.fixture import running_emulator

APP = "cw-disks"
ROOT = Path(__file__).resolve().parents[2]
# Each start appends the file Fly wrote into the working directory to a log on the machine's own disk, then
# (last, so a test that sees it knows the rest is done) to one on the volume, and stays up.
SCRIPT = 'cat greeting.txt >> "$SCRATCH"; cat key.txt > "$KEEP.key"; cat greeting.txt >> "$KEEP"; sleep 60'


@pytest.fixture
def fly(tmp_path):
    with running_emulator(run_machines=True, workdir=tmp_path) as emu:
        client = FlyClient(emu.base_url, emu.token, mutation_rate=0, backoff=0.001)
        client.create_app(APP, "personal")
        yield client, emu, tmp_path
        client.close()


def read_when(path: Path, predicate, timeout: float = 15.0) -> str:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.is_file() and predicate(text := path.read_text()):
            return text
        time.sleep(0.05)
    raise AssertionError(f"{path}: {path.read_text() if path.is_file() else 'missing'}")


def test_the_volume_survives_stop_start_and_update_while_the_root_does_not(fly):
    client, _emu, work = fly
    client.set_secrets(APP, {"CATWALK_FILE_KEY": base64.b64encode(b"k3y").decode()})
    volume = client.create_volume(APP, "data_iad_0", "iad", 1)
    config = {
        "image": "registry.fly.io/any:1",
        "init": {"exec": ["sh", "-c", SCRIPT]},
        "env": {"KEEP": "/data/log.txt", "SCRATCH": "/tmp/log.txt"},
        "mounts": [{"volume": volume.id, "path": "/data"}],
        "files": [
            {"guest_path": "/home/app/greeting.txt", "raw_value": base64.b64encode(b"hello\n").decode()},
            {"guest_path": "/home/app/key.txt", "secret_name": "CATWALK_FILE_KEY"},
        ],
    }
    m = client.create_machine(APP, "tool-iad-0", "iad", config)
    client.wait_machine(APP, m.id, "started", deadline_s=10)
    keep = work / "volumes" / volume.id / "log.txt"
    scratch = work / "machines" / m.id / "root" / "tmp" / "log.txt"
    read_when(keep, lambda t: t == "hello\n")
    assert read_when(keep.with_suffix(".txt.key"), bool) == "k3y"
    assert scratch.read_text() == "hello\n"

    client.stop_machine(APP, m.id)
    client.wait_machine(APP, m.id, "stopped", deadline_s=10)
    client.start_machine(APP, m.id)
    client.wait_machine(APP, m.id, "started", deadline_s=10)
    read_when(keep, lambda t: t == "hello\n" * 2)
    assert scratch.read_text() == "hello\n", "the machine's own disk starts fresh"

    updated = client.update_machine(
        APP, m.id, {**config, "env": {**config["env"], "X": "1"}}, current_version=m.version
    )
    client.wait_machine(APP, m.id, "started", instance_id=updated.version, deadline_s=10)
    read_when(keep, lambda t: t == "hello\n" * 3)


def test_a_snapshot_restores_into_a_new_volume_and_destroying_a_volume_removes_its_data(fly):
    client, emu, work = fly
    volume = client.create_volume(APP, "data_iad_0", "iad", 1)
    (work / "volumes" / volume.id).mkdir(parents=True)
    (work / "volumes" / volume.id / "db.sqlite").write_text("rows")
    client.create_snapshot(APP, volume.id)
    [snap] = client.list_snapshots(APP, volume.id)
    restored = emu.emulator.state.create_volume(APP, {"name": "data_iad_1", "region": "iad", "snapshot_id": snap.id})
    assert (work / "volumes" / restored["id"] / "db.sqlite").read_text() == "rows"
    client.delete_volume(APP, volume.id)
    assert not (work / "volumes" / volume.id).exists()


def test_the_working_directory_files_land_in_is_the_images():
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text().splitlines()
    assert f"WORKDIR {storage.WORKDIR}" in dockerfile
