"""The image tier's own tools on plain data: the CA given to the engine's containers, and cache pruning."""

from __future__ import annotations

import pytest

from tests.tools.docker_engine import prune
from tests.tools.docker_engine.certificates import pem_certificates
from tests.tools.docker_engine.runc_local_ca import CA_ENV, MOUNT_POINT, bundle_of, with_local_ca

SPEC = {
    "process": {"env": ["PATH=/usr/bin", "SSL_CERT_FILE=/etc/own.pem"]},
    "mounts": [{"destination": "/proc", "type": "proc"}, {"destination": "/dev", "type": "tmpfs"}],
}


def test_only_runc_create_and_run_name_a_bundle_to_change():
    assert bundle_of(["--root", "/r", "--log", "l.json", "create", "--bundle", "/b/x", "id"]) == "/b/x"
    assert bundle_of(["run", "--bundle=/b/y", "id"]) == "/b/y"
    assert bundle_of(["--root", "/r", "start", "id"]) is None
    assert bundle_of(["--root", "/r", "delete", "--force", "id"]) is None


def test_a_container_gets_the_ca_in_its_dev_tmpfs_and_keeps_its_own_variables():
    spec = with_local_ca(SPEC, "/host/ca.pem")
    [mount] = [m for m in spec["mounts"] if m["destination"] == MOUNT_POINT]
    assert mount["source"] == "/host/ca.pem" and "ro" in mount["options"]
    assert MOUNT_POINT.startswith("/dev/")  # a tmpfs: the mount point never reaches a layer
    assert spec["mounts"].index(mount) > [m["destination"] for m in spec["mounts"]].index("/dev")
    env = spec["process"]["env"]
    assert "SSL_CERT_FILE=/etc/own.pem" in env and f"SSL_CERT_FILE={MOUNT_POINT}" not in env
    assert {f"{name}={MOUNT_POINT}" for name in CA_ENV if name != "SSL_CERT_FILE"} <= set(env)
    assert with_local_ca(spec, "/host/ca.pem") == spec  # applied twice, the same
    assert SPEC["mounts"][-1]["destination"] == "/dev"  # the input is not changed


def test_a_container_without_a_dev_tmpfs_is_left_as_it_is():
    spec = {"process": {"env": []}, "mounts": [{"destination": "/proc", "type": "proc"}]}
    assert with_local_ca(spec, "/host/ca.pem") == spec


def test_certificates_are_named_by_their_pem_body_wherever_they_are_wrapped():
    body = "MIIB" + "A" * 70 + "=="
    wrapped = f"-----BEGIN CERTIFICATE-----\n{body[:64]}\n{body[64:]}\n-----END CERTIFICATE-----\n"
    assert pem_certificates(f"x\n{wrapped}y".encode()) == {body}
    assert pem_certificates(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----") == set()


def test_tags_of_an_earlier_runs_registry_are_pruned_and_the_current_ones_kept():
    refs = [
        "127.0.0.1:40001/catwalk-test-npm:bake-1",
        "127.0.0.1:40002/catwalk-test-npm:bake-1",
        "localhost:5000/x:y",
        "python:3.12-slim-bookworm",
        "<none>:<none>",
    ]
    assert prune.foreign_registry_tags(refs, "127.0.0.1:40002") == [
        "127.0.0.1:40001/catwalk-test-npm:bake-1",
        "localhost:5000/x:y",
    ]


def test_the_data_root_of_another_storage_driver_is_stale(tmp_path):
    for name in ("engine", "engine-overlay2", "other"):
        (tmp_path / name).mkdir()
    assert prune.stale_data_roots(tmp_path, tmp_path / "engine-overlay2") == [tmp_path / "engine"]
    freed = prune.remove_stale_data_roots(tmp_path, tmp_path / "engine-overlay2")
    assert len(freed) == 1 and not (tmp_path / "engine").exists() and (tmp_path / "other").exists()


@pytest.mark.parametrize("value", ["8GB", "500MB", "1.5GB"])
def test_the_build_cache_bound_is_a_size(monkeypatch, value):
    monkeypatch.setenv("CATWALK_IMAGE_CACHE_KEEP", value)
    assert prune.keep_storage() == value


def test_a_build_cache_bound_docker_cannot_read_is_refused_naming_the_variable(monkeypatch):
    monkeypatch.setenv("CATWALK_IMAGE_CACHE_KEEP", "lots")
    with pytest.raises(ValueError, match=r"CATWALK_IMAGE_CACHE_KEEP must be a size .* got 'lots'"):
        prune.keep_storage()
