"""The emulator behaves like the Fly Machines API: status codes, state machine, faults, test endpoints."""

from __future__ import annotations

import socket
import time

import pytest
import requests

from tests.tools.fly_emulator.fixture import emulator_process, running_emulator

AUTH = {"Authorization": "Bearer test-token"}
CONFIG = {"image": "registry.fly.io/catwalk:1", "metadata": {"catwalk_server": "memory"}}


class Api:
    def __init__(self, base: str) -> None:
        self.base = base
        self.http = requests.Session()
        self.http.headers.update(AUTH)

    def __call__(self, method: str, path: str, body=None, **kw) -> requests.Response:
        return self.http.request(method, self.base + path, json=body, timeout=15, **kw)


@pytest.fixture
def api(emu):
    a = Api(emu.base_url)
    assert a("POST", "/v1/apps", {"name": "cw-emu", "org_slug": "personal"}).status_code == 201
    return a


def create(api, name="memory-0", **extra) -> dict:
    resp = api("POST", "/v1/apps/cw-emu/machines", {"name": name, "region": "iad", "config": CONFIG, **extra})
    assert resp.status_code == 200, resp.text
    return resp.json()


def wait(api, mid, state, timeout=5, **params) -> requests.Response:
    return api("GET", f"/v1/apps/cw-emu/machines/{mid}/wait", params={"state": state, "timeout": timeout, **params})


def test_v1_requests_without_a_bearer_token_are_401_and_test_endpoints_need_none(emu):
    for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Basic abc"}):
        resp = requests.get(emu.base_url + "/v1/apps/x", headers=headers, timeout=5)
        assert resp.status_code == 401 and "authenticated" in resp.json()["error"]
    assert requests.get(emu.base_url + "/_emulator/calls", timeout=5).status_code == 200


def test_a_fixed_token_refuses_any_other(emu):
    with running_emulator(token="right") as fixed:
        assert requests.get(fixed.base_url + "/v1/apps/x", headers=AUTH, timeout=5).status_code == 401
        ok = requests.get(fixed.base_url + "/v1/apps/x", headers={"Authorization": "Bearer right"}, timeout=5)
        assert ok.status_code == 404 and ok.headers["fly-request-id"]


def test_app_names_are_unique_and_idempotency_keys_replay_the_first_create(api):
    body = {"name": "cw-key", "org_slug": "personal", "idempotency_key": "k1"}
    first = api("POST", "/v1/apps", body)
    again = api("POST", "/v1/apps", body)
    assert first.status_code == again.status_code == 201 and first.json()["id"] == again.json()["id"]
    taken = api("POST", "/v1/apps", {"name": "cw-key", "org_slug": "personal", "idempotency_key": "k2"})
    assert taken.status_code == 422 and taken.json()["status"] == "name_taken"
    other = api("POST", "/v1/apps", {"name": "cw-other", "org_slug": "personal", "idempotency_key": "k1"})
    assert other.status_code == 422 and "cw-key" in other.json()["error"]
    assert api("POST", "/v1/apps", {"name": "Bad_Name", "org_slug": "personal"}).status_code == 400
    assert api("DELETE", "/v1/apps/cw-key").status_code == 202
    assert api("GET", "/v1/apps/cw-key").status_code == 404


def test_machine_walks_created_starting_started_stopping_stopped_destroyed(api):
    m = create(api)
    assert m["state"] == "created" and m["instance_id"] == m["version"] and len(m["version"]) == 26
    assert wait(api, m["id"], "started").json()["state"] == "started"
    assert api("POST", f"/v1/apps/cw-emu/machines/{m['id']}/stop").status_code == 200
    assert wait(api, m["id"], "stopped").json()["ok"] is True
    assert api("DELETE", f"/v1/apps/cw-emu/machines/{m['id']}").status_code == 200
    assert wait(api, m["id"], "destroyed").status_code == 200
    got = api("GET", f"/v1/apps/cw-emu/machines/{m['id']}").json()
    statuses = [e["status"] for e in reversed(got["events"])]
    assert statuses == ["created", "starting", "started", "stopping", "stopped", "destroying", "destroyed"]
    assert api("POST", f"/v1/apps/cw-emu/machines/{m['id']}/start").status_code == 404


def test_update_changes_version_and_refuses_a_stale_current_version(api):
    m = create(api)
    path = f"/v1/apps/cw-emu/machines/{m['id']}"
    new = {**CONFIG, "env": {"A": "1"}}
    updated = api("POST", path, {"config": new, "current_version": m["version"]})
    assert updated.status_code == 200
    v2 = updated.json()["version"]
    assert v2 != m["version"] and updated.json()["instance_id"] == v2
    stale = api("POST", path, {"config": CONFIG, "current_version": m["version"]})
    assert stale.status_code == 409 and m["version"] in stale.json()["error"]
    assert api("GET", path).json()["config"]["env"] == {"A": "1"}
    # The replaced instance never starts again; waiting for it to stop answers at once.
    assert wait(api, m["id"], "started", version=m["version"]).status_code == 400
    assert wait(api, m["id"], "stopped", version=m["version"]).json()["state"] == "stopped"
    assert api("POST", path, {"config": {"env": {}}}).status_code == 400  # image is required


def test_service_autostop_off_and_stop_come_back_as_booleans_like_fly(api):
    services = [{"internal_port": 8080, "autostop": a} for a in ("off", "stop", "suspend")]
    m = create(api, config={**CONFIG, "services": services})
    assert [s["autostop"] for s in m["config"]["services"]] == [False, True, "suspend"]
    assert m["config"]["guest"] and m["config"]["restart"]["policy"] == "on-failure"  # Fly's defaults


def test_machine_names_are_unique_among_live_machines(api):
    m = create(api)
    dup = api("POST", "/v1/apps/cw-emu/machines", {"name": "memory-0", "config": CONFIG})
    assert dup.status_code == 409 and dup.json()["status"] == "name_taken"
    api("DELETE", f"/v1/apps/cw-emu/machines/{m['id']}", params={"force": "true"})
    assert create(api)["id"] != m["id"]


def test_running_machine_needs_force_to_be_destroyed(api):
    m = create(api)
    wait(api, m["id"], "started")
    refused = api("DELETE", f"/v1/apps/cw-emu/machines/{m['id']}")
    assert refused.status_code == 412
    assert api("DELETE", f"/v1/apps/cw-emu/machines/{m['id']}", params={"force": "true"}).status_code == 200


def test_list_filters_by_metadata_region_state_and_deleted(api):
    a = create(api, "a-0")
    create(api, "b-0", config={**CONFIG, "metadata": {"catwalk_server": "b"}}, skip_launch=True)
    api("DELETE", f"/v1/apps/cw-emu/machines/{a['id']}", params={"force": "true"})
    time.sleep(0.1)

    def names(**params):
        return sorted(m["name"] for m in api("GET", "/v1/apps/cw-emu/machines", params=params).json())

    assert names() == ["b-0"]
    assert names(include_deleted="true") == ["a-0", "b-0"]
    assert names(**{"metadata.catwalk_server": "memory", "include_deleted": "true"}) == ["a-0"]
    assert names(**{"metadata.catwalk_server": "b"}) == ["b-0"]
    assert names(state="created") == ["b-0"] and names(region="ams") == []


def test_wait_times_out_with_408_and_rejects_bad_parameters(api):
    m = create(api, skip_launch=True)
    started = time.monotonic()
    assert wait(api, m["id"], "started", timeout=1).status_code == 408
    assert 0.9 < time.monotonic() - started < 10
    assert wait(api, m["id"], "sleeping").status_code == 400
    assert wait(api, m["id"], "started", timeout=61).status_code == 400
    assert wait(api, m["id"], "started", version="0" * 26).status_code == 400


def test_leases_block_other_writers_until_released(api):
    m = create(api)
    base = f"/v1/apps/cw-emu/machines/{m['id']}"
    lease = api("POST", base + "/lease", {"ttl": 60, "description": "mine"})
    assert lease.status_code == 201
    nonce = lease.json()["nonce"]
    assert api("GET", base + "/lease").json()["description"] == "mine"
    assert api("POST", base + "/lease", {"ttl": 60}).status_code == 409
    assert api("POST", base + "/stop").status_code == 409
    assert api("POST", base + "/stop", headers={"fly-machine-lease-nonce": nonce}).status_code == 200
    assert api("DELETE", base + "/lease", headers={"fly-machine-lease-nonce": "wrong"}).status_code == 409
    assert api("DELETE", base + "/lease", headers={"fly-machine-lease-nonce": nonce}).status_code == 200
    assert api("GET", base + "/lease").status_code == 404


def test_secrets_versions_count_every_update_and_gate_min_secrets_version(api):
    first = api("POST", "/v1/apps/cw-emu/secrets", {"values": {"A": "1", "B": "2"}}).json()
    second = api("POST", "/v1/apps/cw-emu/secrets", {"values": {"B": None}}).json()
    assert (first["version"], second["version"]) == (1, 2) and [s["name"] for s in second["secrets"]] == ["A"]
    listed = api("GET", "/v1/apps/cw-emu/secrets").json()["secrets"]
    assert "value" not in listed[0]
    assert api("GET", "/v1/apps/cw-emu/secrets", params={"show_secrets": "true"}).json()["secrets"][0]["value"] == "1"
    assert api("POST", "/v1/apps/cw-emu/secrets", {"values": {"bad-name": "x"}}).status_code == 400
    ahead = api("POST", "/v1/apps/cw-emu/machines", {"config": CONFIG, "min_secrets_version": 3})
    assert ahead.status_code == 400


def test_ip_assignments_are_listed_and_deleted(api):
    v4 = api("POST", "/v1/apps/cw-emu/ip_assignments", {"type": "v4"}).json()
    shared = api("POST", "/v1/apps/cw-emu/ip_assignments", {"type": "shared_v4"}).json()
    assert api("POST", "/v1/apps/cw-emu/ip_assignments", {"type": "shared_v4"}).json()["ip"] == shared["ip"]
    assert {i["ip"] for i in api("GET", "/v1/apps/cw-emu/ip_assignments").json()["ips"]} == {v4["ip"], shared["ip"]}
    assert api("DELETE", f"/v1/apps/cw-emu/ip_assignments/{v4['ip']}").status_code == 204
    assert api("DELETE", f"/v1/apps/cw-emu/ip_assignments/{v4['ip']}").status_code == 404


def test_unknown_apps_machines_and_paths_are_404(api):
    assert api("GET", "/v1/apps/nope/machines").status_code == 404
    assert api("GET", "/v1/apps/cw-emu/machines/nope").json()["error"] == "machine not found"
    assert api("GET", "/v1/nothing-here").status_code == 404
    assert api("PATCH", "/v1/apps/cw-emu").status_code == 405


# -- faults and the test-only endpoints --------------------------------------------------------------


def fault_sequence(seed: int) -> list[str | None]:
    with running_emulator(fault_rate=0.5, seed=seed, retry_after=3) as emu:
        api = Api(emu.base_url)
        for _ in range(12):
            resp = api("GET", "/v1/apps/none")
            if resp.status_code == 429:
                assert resp.headers["Retry-After"] == "3"
        return [c["fault"] for c in emu.calls()]


def test_faults_are_reproducible_from_the_seed_and_reads_never_get_lost():
    first = fault_sequence(11)
    assert first == fault_sequence(11) and first != fault_sequence(12)
    assert {f for f in first if f} <= {"429", "500", "502", "503"} and any(first) and not all(first)


def test_lost_and_dropped_answers_still_carry_out_the_request(emu, api):
    emu.set_faults(rate=1.0, kinds=["lost"])
    lost = api("POST", "/v1/apps/cw-emu/machines", {"name": "lost-0", "config": CONFIG})
    assert lost.status_code == 504
    emu.set_faults(rate=1.0, kinds=["drop"])
    with pytest.raises(requests.ConnectionError):
        api("POST", "/v1/apps/cw-emu/machines", {"name": "drop-0", "config": CONFIG})
    emu.set_faults(rate=0)
    names = sorted(m["name"] for m in api("GET", "/v1/apps/cw-emu/machines").json())
    assert names == ["drop-0", "lost-0"]
    faults = [(c["fault"], c["status"]) for c in emu.mutating_calls("/machines")]
    assert faults == [("lost", 504), ("drop", None)]


def test_the_call_log_counts_mutations_and_reset_forgets_everything(emu, api):
    create(api)
    api("GET", "/v1/apps/cw-emu/machines")
    assert [(c["method"], c["path"]) for c in emu.mutating_calls()] == [
        ("POST", "/v1/apps"),
        ("POST", "/v1/apps/cw-emu/machines"),
    ]
    assert [m["name"] for m in emu.machines()] == ["memory-0"] and emu.machines()[0]["process"] is None
    emu.reset()
    assert emu.calls() == [] and emu.machines() == []
    assert api("GET", "/v1/apps/cw-emu").status_code == 404


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_python_m_tests_fly_emulator_serves_the_api_on_the_given_port():
    port = free_port()
    with emulator_process("--port", str(port), "--transition-s", "0.01") as proc:
        assert proc.base_url == f"http://127.0.0.1:{port}"
        api = Api(proc.base_url)
        api.http.headers["Authorization"] = f"Bearer {proc.token}"
        assert api("POST", "/v1/apps", {"name": "cw-cli", "org_slug": "personal"}).status_code == 201
        assert [a["name"] for a in api("GET", "/v1/apps", params={"org_slug": "personal"}).json()["apps"]] == ["cw-cli"]
        assert [c["status"] for c in proc.calls()] == [201, 200]


def test_cli_refuses_a_non_loopback_host_and_a_bad_fault_rate():
    from tests.tools.fly_emulator.__main__ import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--host", "0.0.0.0"])
    with pytest.raises(SystemExit):
        parse_args(["--fault-rate", "1.5"])
    with pytest.raises(SystemExit):
        parse_args(["--faults", "429,teapot"])
    assert parse_args(["--fault-rate", "0.3", "--seed", "7"]).seed == 7
