"""FlyClient against the emulator: every call, and the failures Fly really has."""

from __future__ import annotations

import time

import pytest

from components.fly import (
    FlyApiError,
    FlyClient,
    FlyConflict,
    FlyNotFound,
    FlyRateLimited,
    FlyWaitTimeout,
    Machine,
    MachineConfig,
    TokenBucket,
)
from components.fly.client import _is_subset
from tests.fly.conftest import APP, META, config, make_client


def posts(emu, suffix: str) -> list[dict]:
    return [c for c in emu.calls() if c["method"] == "POST" and c["path"].endswith(suffix)]


# -- apps --------------------------------------------------------------------------------------------


def test_create_app_returns_the_app_and_get_list_delete_see_it(emu):
    c = make_client(emu)
    app = c.create_app("cw-apps", "personal")
    assert app.name == "cw-apps" and app.organization and app.organization.slug == "personal"
    assert c.get_app("cw-apps").id == app.id
    assert [a.name for a in c.list_apps("personal")] == ["cw-apps"]
    c.delete_app("cw-apps")
    with pytest.raises(FlyNotFound):
        c.get_app("cw-apps")
    c.delete_app("cw-apps")  # already gone: no error


def test_create_app_adopts_an_existing_app_of_ours_on_name_taken(emu):
    c = make_client(emu)
    first = c.create_app("cw-again", "personal")
    again = c.create_app("cw-again", "personal")  # a later run: new idempotency key, 422 name_taken, adopted
    assert again.id == first.id
    assert [call["status"] for call in posts(emu, "/v1/apps")] == [201, 422]


def test_create_app_refuses_a_name_taken_by_an_app_we_cannot_see(emu):
    emu.reserve_app_name("cw-foreign")
    with pytest.raises(FlyConflict, match=r"cw-foreign.*taken by an app this token cannot see") as caught:
        make_client(emu).create_app("cw-foreign", "personal")
    assert caught.value.status == 422 and caught.value.code == "name_taken"


def test_create_app_refuses_to_adopt_an_app_of_another_organization(emu):
    make_client(emu).create_app("cw-org", "other-org")
    with pytest.raises(FlyConflict, match="organization 'other-org', not 'personal'"):
        make_client(emu).create_app("cw-org", "personal")


@pytest.mark.parametrize("kind", ["lost", "drop"])
def test_create_app_whose_response_is_lost_creates_one_app_through_its_idempotency_key(emu, kind):
    emu.set_faults(rate=1.0, kinds=[kind])
    c = make_client(emu, max_attempts=3)
    with pytest.raises(FlyApiError):  # every answer is lost, but every retry reused the same key
        c.create_app("cw-idem", "personal")
    emu.set_faults(rate=0)
    assert len(posts(emu, "/v1/apps")) == 3
    assert [a.name for a in c.list_apps("personal")] == ["cw-idem"]
    assert all(call["status"] != 422 for call in posts(emu, "/v1/apps"))


# -- machines ----------------------------------------------------------------------------------------


def test_machine_lifecycle_create_wait_update_stop_start_delete(client, emu):
    m = client.create_machine(APP, "memory-iad-0", "iad", config())
    assert (m.name, m.region, m.state) == ("memory-iad-0", "iad", "created")
    assert m.config and m.config.metadata == META and m.config.guest  # Fly's defaults are kept
    assert client.wait_machine(APP, m.id, "started", instance_id=m.version, deadline_s=5).state == "started"
    got = client.get_machine(APP, m.id)
    assert got.state == "started" and got.current_version == m.version

    updated = client.update_machine(APP, m.id, config(env={"MCP_RUNTIME": "python"}), current_version=m.version)
    assert updated.version != m.version and updated.instance_id == updated.version
    assert updated.config.env == {"MCP_RUNTIME": "python"}
    client.wait_machine(APP, m.id, "started", instance_id=updated.version, deadline_s=5)

    client.stop_machine(APP, m.id)
    client.wait_machine(APP, m.id, "stopped", deadline_s=5)
    client.start_machine(APP, m.id)
    client.wait_machine(APP, m.id, "started", deadline_s=5)
    client.delete_machine(APP, m.id, force=True)
    client.wait_machine(APP, m.id, "destroyed", deadline_s=5)
    assert client.list_machines(APP) == []
    assert [x.id for x in client.list_machines(APP, include_deleted=True)] == [m.id]
    client.delete_machine(APP, m.id)  # already gone: no error


def test_list_machines_filters_by_every_metadata_pair(client):
    client.create_machine(APP, "a-0", "iad", config(metadata={**META, "catwalk_server": "a"}))
    client.create_machine(APP, "b-0", "iad", config(metadata={**META, "catwalk_server": "b"}))
    client.create_machine(APP, "b-1", "ams", config(metadata={"catwalk_server": "b", "catwalk_stack": "prod"}))
    assert {m.name for m in client.list_machines(APP, {"catwalk_server": "b"})} == {"b-0", "b-1"}
    assert [m.name for m in client.list_machines(APP, {"catwalk_server": "b", "catwalk_stack": "dev"})] == ["b-0"]
    assert [m.name for m in client.list_machines(APP, region="ams")] == ["b-1"]
    assert client.list_machines(APP, {"catwalk_server": "zzz"}) == []
    assert client.find_machine(APP, "b-1").region == "ams"
    assert client.find_machine(APP, "c-0") is None


def test_update_with_a_stale_current_version_is_a_conflict_and_changes_nothing(client):
    m = client.create_machine(APP, "memory-iad-0", "iad", config())
    client.update_machine(APP, m.id, config(env={"A": "1"}), current_version=m.version)
    with pytest.raises(FlyConflict) as caught:
        client.update_machine(APP, m.id, config(env={"B": "2"}), current_version=m.version)
    assert caught.value.status == 409 and m.version in caught.value.message
    assert client.get_machine(APP, m.id).config.env == {"A": "1"}


def test_create_machine_accepts_a_typed_config_and_refuses_a_bad_one_before_sending(client, emu):
    m = client.create_machine(APP, "typed-0", "iad", MachineConfig(image="img:1", metadata=META))
    assert m.config.image == "img:1"
    with pytest.raises(ValueError, match="env"):
        client.create_machine(APP, "typed-1", "iad", {"image": "img", "env": ["not", "a", "map"]})
    assert len(posts(emu, "/machines")) == 1


def test_create_machine_adopts_the_machine_already_holding_its_name_with_our_metadata(client, emu):
    first = client.create_machine(APP, "memory-iad-0", "iad", config())
    again = client.create_machine(APP, "memory-iad-0", "iad", config())  # e.g. a crashed earlier run
    assert again.id == first.id
    assert len(client.list_machines(APP)) == 1


def test_create_machine_refuses_a_name_held_by_a_machine_that_is_not_ours(client):
    client.create_machine(APP, "memory-iad-0", "iad", config(metadata={"catwalk_server": "other"}))
    with pytest.raises(FlyConflict, match="already exists") as caught:
        client.create_machine(APP, "memory-iad-0", "iad", config())
    assert caught.value.code == "name_taken"


def test_delete_of_a_running_machine_without_force_is_refused_with_flys_message(client):
    m = client.create_machine(APP, "memory-iad-0", "iad", config())
    client.wait_machine(APP, m.id, "started", deadline_s=5)
    with pytest.raises(FlyApiError, match="stop it first") as caught:
        client.delete_machine(APP, m.id)
    assert caught.value.status == 412 and caught.value.request_id
    assert f"DELETE /v1/apps/{APP}/machines/{m.id}" in str(caught.value)


def test_min_secrets_version_ahead_of_the_app_is_refused(client):
    version = client.set_secrets(APP, {"TOKEN_A": "x"})
    with pytest.raises(FlyApiError, match="min_secrets_version") as caught:
        client.create_machine(APP, "memory-iad-0", "iad", config(), min_secrets_version=version + 1)
    assert caught.value.status == 400
    assert client.create_machine(APP, "memory-iad-0", "iad", config(), min_secrets_version=version).id


# -- lost responses: never a duplicate ---------------------------------------------------------------


@pytest.mark.parametrize("kind", ["lost", "drop"])
def test_create_machine_whose_response_is_lost_finds_its_machine_instead_of_posting_again(client, emu, kind):
    emu.set_faults(rate=1.0, kinds=[kind])  # every mutation happens, and its answer never arrives
    m = client.create_machine(APP, "memory-iad-0", "iad", config())
    emu.set_faults(rate=0)
    assert m.name == "memory-iad-0" and m.config.metadata == META
    # One create, then a lookup by our metadata that finds it: no second POST.
    path = f"/v1/apps/{APP}/machines"
    assert [(c["method"], c["path"], c["fault"]) for c in emu.calls()] == [("POST", path, kind), ("GET", path, None)]
    assert "metadata.catwalk_server=memory" in emu.calls()[1]["query"]
    assert [x.id for x in client.list_machines(APP)] == [m.id]


def test_twenty_machines_under_thirty_percent_faults_end_as_exactly_twenty(client, emu):
    emu.set_faults(rate=0.3, seed=20)
    names = [f"srv{i}-iad-0" for i in range(20)]
    made = [client.create_machine(APP, n, "iad", config(metadata={**META, "catwalk_server": n})) for n in names]
    emu.set_faults(rate=0)
    machines = client.list_machines(APP)
    assert sorted(m.name for m in machines) == sorted(names)
    assert sorted(m.id for m in machines) == sorted(m.id for m in made)
    calls = [c for c in emu.calls() if c["fault"]]
    assert {c["fault"] for c in calls} >= {"429", "lost", "drop"}, "the faults did not exercise the client"
    creates = posts(emu, f"/v1/apps/{APP}/machines")
    # Every create that took effect was answered, lost or dropped once: none hit "name taken" on a repost.
    assert sum(1 for c in creates if c["fault"] in (None, "lost", "drop")) == 20
    assert all(c["status"] != 409 for c in creates)


def test_update_whose_response_is_lost_returns_the_new_version_without_a_second_update(client, emu):
    m = client.create_machine(APP, "memory-iad-0", "iad", config())
    emu.set_faults(rate=1.0, kinds=["lost"])
    # Fly answers autostop "stop" as true: the read-back must still recognise the config it sent.
    services = [{"protocol": "tcp", "internal_port": 8080, "autostop": "stop", "autostart": True}]
    updated = client.update_machine(APP, m.id, config(env={"A": "1"}, services=services), current_version=m.version)
    emu.set_faults(rate=0)
    assert updated.version != m.version and updated.config.env == {"A": "1"}
    assert updated.config.services[0].autostop is True
    assert len(posts(emu, f"/machines/{m.id}")) == 1


def test_create_machine_that_times_out_finds_its_machine_instead_of_posting_again(client, emu):
    emu.set_faults(rate=1.0, kinds=["slow"], slow_s=0.8)
    client.timeout = (2.0, 0.3)
    m = client.create_machine(APP, "memory-iad-0", "iad", config())
    emu.set_faults(rate=0)
    time.sleep(1.0)  # the emulator logs the slow call once it has answered, after the client gave up
    assert m.name == "memory-iad-0" and [c["fault"] for c in posts(emu, "/machines")] == ["slow"]
    assert [x.id for x in client.list_machines(APP)] == [m.id]


@pytest.mark.parametrize("kind", ["lost", "drop"])
def test_start_stop_lease_ip_and_delete_survive_lost_responses(client, emu, kind):
    m = client.create_machine(APP, "memory-iad-0", "iad", config(), skip_launch=True)
    emu.set_faults(rate=1.0, kinds=[kind])
    client.start_machine(APP, m.id)
    client.wait_machine(APP, m.id, "started", deadline_s=5)
    client.stop_machine(APP, m.id)
    client.wait_machine(APP, m.id, "stopped", deadline_s=5)
    lease = client.acquire_lease(APP, m.id, ttl=60)
    ip = client.allocate_ip(APP, "v6")
    client.delete_machine(APP, m.id, lease_nonce=lease.nonce)
    emu.set_faults(rate=0)
    assert lease.nonce and lease.description
    assert [i.ip for i in client.list_ips(APP)] == [ip.ip]
    assert client.list_machines(APP) == []
    for suffix in ("/start", "/stop", "/lease", "/ip_assignments"):
        assert len(posts(emu, suffix)) == 1, suffix


# -- retries -----------------------------------------------------------------------------------------


def test_reads_are_retried_on_5xx_up_to_max_attempts_then_raise(client, emu):
    emu.set_faults(rate=1.0, kinds=["503"])
    client.max_attempts = 4
    with pytest.raises(FlyApiError) as caught:
        client.get_app(APP)
    assert caught.value.status == 503 and "nothing was done" in caught.value.message
    assert [c["status"] for c in emu.calls()] == [503] * 4


def test_retry_after_of_a_429_is_honoured(client, emu):
    emu.set_faults(rate=1.0, kinds=["429"], retry_after=7)
    slept: list[float] = []
    client._sleep = slept.append
    client.max_attempts = 3
    with pytest.raises(FlyRateLimited):
        client.create_machine(APP, "memory-iad-0", "iad", config())
    assert slept == [7.0, 7.0]
    assert len(posts(emu, "/machines")) == 3  # a 429 was not executed: reposting is safe


def test_retry_after_beyond_the_cap_is_cut_to_max_retry_after(client, emu):
    emu.set_faults(rate=1.0, kinds=["429"], retry_after=3600)
    slept: list[float] = []
    client._sleep, client.max_attempts, client.max_retry_after = slept.append, 2, 30
    with pytest.raises(FlyRateLimited):
        client.get_app(APP)
    assert slept == [30]


def test_secrets_are_reposted_after_a_lost_answer_since_absolute_values_are_idempotent(client, emu):
    emu.set_faults(rate=1.0, kinds=["lost"])
    client.max_attempts = 3
    with pytest.raises(FlyApiError, match="response was lost"):
        client.set_secrets(APP, {"A": "1"})
    emu.set_faults(rate=0)
    assert len(posts(emu, "/secrets")) == 3
    assert client.set_secrets(APP, {"A": "1"}) == 4 and [s.name for s in client.list_secrets(APP)] == ["A"]


def test_seeded_faults_on_every_kind_of_call_still_complete(client, emu):
    emu.set_faults(rate=0.4, seed=3)
    m = client.create_machine(APP, "memory-iad-0", "iad", config())
    client.wait_machine(APP, m.id, "started", deadline_s=10)
    m2 = client.update_machine(APP, m.id, config(env={"A": "1"}), current_version=m.version)
    client.stop_machine(APP, m.id)
    client.wait_machine(APP, m.id, "stopped", deadline_s=10)
    client.set_secrets(APP, {"S": "1"})
    client.unset_secrets(APP, ["S"])
    client.delete_machine(APP, m.id)
    emu.set_faults(rate=0)
    assert any(c["fault"] for c in emu.calls())
    assert client.list_machines(APP) == [] and m2.version != m.version
    assert client.list_secrets(APP) == []


def test_a_connection_that_is_refused_is_retried_then_raised_without_status():
    c = FlyClient("http://127.0.0.1:9", "tok", mutation_rate=0, backoff=0.001, max_attempts=3)
    with pytest.raises(FlyApiError) as caught:
        c.create_machine(APP, "m-0", "iad", config())
    assert caught.value.status is None and "ConnectionError" in caught.value.message
    assert "no response" in str(caught.value)


# -- rate limit --------------------------------------------------------------------------------------


def test_mutations_pass_a_token_bucket_of_burst_three(client, emu):
    slept: list[float] = []
    c = make_client(emu, mutation_rate=1.0, mutation_burst=3)
    c._sleep = slept.append  # the bucket's clock runs on, our sleeps do not
    for i in range(5):
        c.set_secrets(APP, {"A": str(i)})
    for _ in range(3):
        c.list_secrets(APP)  # reads are not limited
    # The 4th and 5th writes wait for tokens (about 1 s and 2 s, less the time the requests took).
    assert len(slept) == 2 and 0 < slept[0] <= 1.0 and slept[0] < slept[1] <= 2.0


def test_token_bucket_allows_a_burst_then_the_rate():
    now = [100.0]
    bucket = TokenBucket(rate=1.0, burst=3, clock=lambda: now[0])
    assert [bucket.delay() for _ in range(3)] == [0, 0, 0]
    assert bucket.delay() == pytest.approx(1.0)
    now[0] += 5  # idle time refills, but never above the burst
    assert [bucket.delay() for _ in range(3)] == [0, 0, 0]
    assert bucket.delay() == pytest.approx(1.0)


def test_rate_limit_comes_from_catwalk_fly_rate(monkeypatch):
    monkeypatch.setenv("CATWALK_FLY_RATE", "off")
    assert FlyClient("http://x", "t")._bucket is None
    monkeypatch.setenv("CATWALK_FLY_RATE", "2.5")
    assert FlyClient("http://x", "t")._bucket.rate == 2.5
    monkeypatch.delenv("CATWALK_FLY_RATE")
    assert FlyClient("http://x", "t")._bucket.rate == 1.0
    monkeypatch.setenv("CATWALK_FLY_RATE", "fast")
    with pytest.raises(ValueError, match="CATWALK_FLY_RATE"):
        FlyClient("http://x", "t")


# -- wait --------------------------------------------------------------------------------------------


def test_wait_loops_on_408_and_times_out_naming_machine_state_and_events(client, emu):
    m = client.create_machine(APP, "memory-iad-0", "iad", config(), skip_launch=True)
    started = time.monotonic()
    with pytest.raises(FlyWaitTimeout) as caught:
        client.wait_machine(APP, m.id, "started", deadline_s=2.0)
    elapsed = time.monotonic() - started
    text = str(caught.value)
    assert m.id in text and APP in text and "'started'" in text and "'created'" in text
    assert "launch/created" in text
    waits = [c for c in emu.calls() if c["path"].endswith("/wait")]
    assert len(waits) >= 2 and all(c["status"] == 408 for c in waits)
    assert 1.9 < elapsed < 15, "waits out the deadline (upper bound loose: shared CI cores)"


def test_wait_returns_as_soon_as_the_state_is_reached(client):
    m = client.create_machine(APP, "memory-iad-0", "iad", config())
    started = time.monotonic()
    result = client.wait_machine(APP, m.id, "started", instance_id=m.version, deadline_s=30)
    assert result.ok and result.state == "started" and time.monotonic() - started < 10


def test_wait_on_a_missing_machine_is_not_found_at_once(client):
    with pytest.raises(FlyNotFound):
        client.wait_machine(APP, "00000000000000", "started", deadline_s=30)


# -- leases, secrets, IPs ----------------------------------------------------------------------------


def test_a_leased_machine_refuses_other_writers_until_released(client):
    m = client.create_machine(APP, "memory-iad-0", "iad", config())
    lease = client.acquire_lease(APP, m.id, ttl=60, description="deploy 1")
    assert lease.nonce and lease.description == "deploy 1"
    assert client.get_lease(APP, m.id).nonce == lease.nonce
    with pytest.raises(FlyConflict, match="lease"):
        client.acquire_lease(APP, m.id)
    with pytest.raises(FlyConflict, match="lease"):
        client.update_machine(APP, m.id, config(env={"A": "1"}), current_version=m.version)
    updated = client.update_machine(
        APP, m.id, config(env={"A": "1"}), current_version=m.version, lease_nonce=lease.nonce
    )
    assert updated.config.env == {"A": "1"}
    assert client.acquire_lease(APP, m.id, ttl=120, nonce=lease.nonce).nonce == lease.nonce  # refresh
    client.release_lease(APP, m.id, lease.nonce)
    assert client.get_lease(APP, m.id) is None
    client.release_lease(APP, m.id, lease.nonce)  # already released: no error


def test_secrets_versions_grow_and_values_never_come_back(client):
    v1 = client.set_secrets(APP, {"MCP_AUTH_TOKEN": "value-one", "OTHER": "x"})
    v2 = client.unset_secrets(APP, ["OTHER"])
    assert v2 > v1
    secrets = client.list_secrets(APP)
    assert [s.name for s in secrets] == ["MCP_AUTH_TOKEN"] and secrets[0].digest
    assert secrets[0].value is None and "value-one" not in repr(secrets)
    with pytest.raises(TypeError, match="NUM"):
        client.set_secrets(APP, {"NUM": 5})


def test_ips_are_allocated_listed_and_released(client):
    v6 = client.allocate_ip(APP, "v6")
    shared = client.allocate_ip(APP, "shared_v4")
    flycast = client.allocate_ip(APP, "private_v6")
    assert ":" in v6.ip and shared.shared and flycast.network is not None
    assert {i.ip for i in client.list_ips(APP)} == {v6.ip, shared.ip, flycast.ip}
    client.release_ip(APP, v6.ip)
    client.release_ip(APP, v6.ip)  # already gone: no error
    assert {i.ip for i in client.list_ips(APP)} == {shared.ip, flycast.ip}
    with pytest.raises(FlyApiError, match="unsupported IP type") as caught:
        client.allocate_ip(APP, "v5")
    assert caught.value.status == 400


@pytest.mark.parametrize(
    ("sent", "live", "same"),
    [
        ({"env": {"A": "1"}}, {"env": {"A": "1"}, "guest": {"cpus": 1}}, True),  # Fly's defaults around ours
        ({"guest": {"cpus": 1}}, {"guest": {"cpus": 1, "cpu_kind": "shared"}}, True),
        ({"env": {}}, {"env": {"X": "1"}}, False),  # a variable we removed is still there
        ({"metadata": {"a": "1"}}, {"metadata": {"a": "1", "b": "2"}}, False),
        ({"services": [{"autostop": "stop"}]}, {"services": [{"autostop": True, "protocol": "tcp"}]}, True),
        ({"services": [{"autostop": "off"}]}, {"services": [{"autostop": True}]}, False),
        ({"image": "a:1"}, {"image": "a:2"}, False),
    ],
)
def test_an_update_is_recognised_as_applied_only_when_the_live_config_carries_it(sent, live, same):
    assert _is_subset(sent, live) is same


def test_recent_events_are_oldest_first_even_when_timestamps_tie():
    events = [  # as Fly lists them: newest first
        {"type": "exit", "status": "stopped", "timestamp": 5, "request": {"exit_event": {"exit_code": 3}}},
        {"type": "start", "status": "started", "timestamp": 5},
        {"type": "launch", "status": "created", "timestamp": 4},
    ]
    described = [e.describe() for e in Machine(id="m", events=events).recent_events()]
    assert described == ["launch/created", "start/started", "exit/stopped exit_code=3"]


def test_errors_keep_their_fields_through_pickling():
    import pickle

    err = FlyConflict(
        "stale", method="POST", path="/v1/apps/a/machines/m", status=409, request_id="r1", code="name_taken"
    )
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is FlyConflict and str(back) == str(err)
    assert (back.method, back.path, back.status, back.request_id, back.code) == (
        "POST",
        "/v1/apps/a/machines/m",
        409,
        "r1",
        "name_taken",
    )
