"""Volumes through the client and the emulator: create once, grow only, a mounted volume is held, files."""

from __future__ import annotations

import base64

import pytest

from components.fly import FlyApiError, FlyConflict, FlyNotFound
from tests.fly.conftest import APP, config


def test_volume_lifecycle_create_update_extend_snapshot_delete(client):
    v = client.create_volume(APP, "data_iad_0", "iad", 1, snapshot_retention=7)
    assert (v.name, v.region, v.size_gb, v.encrypted, v.snapshot_retention) == ("data_iad_0", "iad", 1, True, 7)
    assert [x.id for x in client.list_volumes(APP)] == [v.id]
    assert client.find_volume(APP, "data_iad_0", "iad").id == v.id
    assert client.find_volume(APP, "data_iad_0", "ams") is None

    assert client.update_volume(APP, v.id, snapshot_retention=14).snapshot_retention == 14
    grown = client.extend_volume(APP, v.id, 3)
    assert grown.volume.size_gb == 3 and client.get_volume(APP, v.id).size_gb == 3
    client.create_snapshot(APP, v.id)
    [snap] = client.list_snapshots(APP, v.id)
    assert snap.retention_days == 14 and snap.status == "created"

    client.delete_volume(APP, v.id)
    assert client.list_volumes(APP) == []
    client.delete_volume(APP, v.id)  # already gone: no error


def test_an_unencrypted_volume_is_asked_for_explicitly(client):
    v = client.create_volume(APP, "plain", "iad", 1, encrypted=False)
    assert v.encrypted is False


def test_a_volume_cannot_shrink_or_stay_the_same_size_on_extend(client):
    v = client.create_volume(APP, "data_iad_0", "iad", 2)
    for size in (1, 2):
        with pytest.raises(FlyApiError) as caught:
            client.extend_volume(APP, v.id, size)
        assert caught.value.status == 400 and "only grow" in caught.value.message
    assert client.get_volume(APP, v.id).size_gb == 2


@pytest.mark.parametrize("kind", ["lost", "drop"])
def test_create_volume_whose_response_is_lost_finds_its_volume_instead_of_posting_again(client, emu, kind):
    emu.set_faults(rate=1.0, kinds=[kind])
    v = client.create_volume(APP, "data_iad_0", "iad", 1, known=[])
    emu.set_faults(rate=0)
    assert v.name == "data_iad_0"
    assert [x.id for x in client.list_volumes(APP)] == [v.id]
    posts = [c for c in emu.calls() if c["method"] == "POST"]
    assert len(posts) == 1


@pytest.mark.parametrize("kind", ["lost", "drop"])
def test_extend_whose_response_is_lost_reads_the_volume_back_instead_of_failing(client, emu, kind):
    v = client.create_volume(APP, "data_iad_0", "iad", 1)
    emu.set_faults(rate=1.0, kinds=[kind])
    grown = client.extend_volume(APP, v.id, 2)
    emu.set_faults(rate=0)
    assert grown.volume.size_gb == 2
    assert len([c for c in emu.calls() if c["path"].endswith("/extend")]) == 1


def test_a_machine_mounts_its_volume_and_holds_it_until_destroyed(client, emu):
    v = client.create_volume(APP, "data_iad_0", "iad", 1)
    m = client.create_machine(APP, "memory-iad-0", "iad", config(mounts=[{"volume": v.id, "path": "/data"}]))
    [mount] = m.config.mounts
    assert (mount.volume, mount.path, mount.name, mount.size_gb) == (v.id, "/data", "data_iad_0", 1)
    assert client.get_volume(APP, v.id).attached_machine_id == m.id

    with pytest.raises(FlyConflict, match="attached to machine"):
        client.delete_volume(APP, v.id)
    with pytest.raises(FlyConflict, match="already attached"):
        client.create_machine(APP, "memory-iad-1", "iad", config(mounts=[{"volume": v.id, "path": "/data"}]))

    client.delete_machine(APP, m.id, force=True)
    client.wait_machine(APP, m.id, "destroyed", deadline_s=5)
    assert client.get_volume(APP, v.id).attached_machine_id is None
    client.delete_volume(APP, v.id)


def test_an_update_without_the_mount_releases_the_volume(client):
    v = client.create_volume(APP, "data_iad_0", "iad", 1)
    m = client.create_machine(APP, "memory-iad-0", "iad", config(mounts=[{"volume": v.id, "path": "/data"}]))
    client.update_machine(APP, m.id, config(), current_version=m.version)
    assert client.get_volume(APP, v.id).attached_machine_id is None


def test_a_mount_in_another_region_or_of_an_unknown_volume_is_refused(client):
    v = client.create_volume(APP, "data_ams_0", "ams", 1)
    with pytest.raises(FlyApiError, match="region ams"):
        client.create_machine(APP, "memory-iad-0", "iad", config(mounts=[{"volume": v.id, "path": "/data"}]))
    with pytest.raises(FlyApiError, match="not found"):
        client.create_machine(APP, "memory-iad-0", "iad", config(mounts=[{"volume": "vol_nope", "path": "/data"}]))


def test_files_take_base64_contents_or_an_existing_app_secret(client):
    good = base64.b64encode(b"{}").decode()
    client.set_secrets(APP, {"CATWALK_FILE_1": base64.b64encode(b"key").decode()})
    m = client.create_machine(
        APP,
        "memory-iad-0",
        "iad",
        config(
            files=[
                {"guest_path": "/home/app/a.json", "raw_value": good},
                {"guest_path": "/home/app/b.key", "secret_name": "CATWALK_FILE_1"},
            ]
        ),
    )
    assert [f.guest_path for f in m.config.files] == ["/home/app/a.json", "/home/app/b.key"]
    for bad, message in (
        ({"guest_path": "rel.txt", "raw_value": good}, "absolute"),
        ({"guest_path": "/x", "raw_value": "not base64!"}, "base64"),
        ({"guest_path": "/x", "secret_name": "MISSING"}, "no secret"),
        ({"guest_path": "/x"}, "exactly one"),
    ):
        with pytest.raises(FlyApiError, match=message):
            client.create_machine(APP, "memory-iad-1", "iad", config(files=[bad]))


def test_deleting_the_app_destroys_its_volumes(client):
    v = client.create_volume(APP, "data_iad_0", "iad", 1)
    client.delete_app(APP)
    with pytest.raises(FlyNotFound):
        client.get_volume(APP, v.id)


def test_the_organization_wide_list_names_each_volumes_app_and_follows_pages(client, emu):
    client.create_app("cw-other", "personal")
    ours = client.create_volume(APP, "data_iad_0", "iad", 1)
    theirs = client.create_volume("cw-other", "data_ams_0", "ams", 1)
    listed = client.list_org_volumes("personal", page_size=1)
    assert [(v.id, v.app_name) for v in listed] == [(ours.id, APP), (theirs.id, "cw-other")]
    assert len([c for c in emu.calls() if c["path"] == "/v1/orgs/personal/volumes"]) == 2
    assert [v.id for v in client.list_org_volumes("personal", region="ams")] == [theirs.id]
    assert client.list_org_volumes("someone-else") == []
