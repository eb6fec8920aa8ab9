"""The emulator's Fly proxy: per-request balancing, fly-replay, fly-force-instance-id, fly-replay-src."""

from __future__ import annotations

import http.client
import json
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from components.fly import FlyClient
from tests.tools.fly_emulator.fixture import emulator_process, running_emulator
from tests.tools.fly_emulator.proxy import parse_duration, parse_replay
from tests.tools.harness.cli import add_local_urls

APP = "cw-proxy"
HOST = f"{APP}.fly.dev"
# A machine's process: says who it is and what it got; /to/<id> asks Fly to replay there; /stream streams.
MACHINE = """
import json, os, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ME = os.environ["FLY_MACHINE_ID"]

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def do_GET(self):
        self.answer()
    def do_POST(self):
        self.answer()
    def answer(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.startswith("/region/") and not self.headers.get("fly-replay-src"):
            self.send_response(204)
            self.send_header("fly-replay", "region=" + self.path[8:])
            self.end_headers()
            return
        target, _, query = self.path[4:].partition("?")
        if self.path.startswith("/to/") and target != ME and not self.headers.get("fly-replay-failed"):
            self.send_response(204)
            self.send_header("fly-replay", "instance=" + target + (";" + query if query else ""))
            self.end_headers()
            return
        if self.path == "/stream":
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            for i in range(3):
                self.wfile.write(("data: %s %d\\n\\n" % (ME, i)).encode())
                self.wfile.flush()
                time.sleep(0.2)
            self.close_connection = True
            return
        data = json.dumps({"machine": ME, "path": self.path, "body": body.decode(),
                           "replay_src": self.headers.get("fly-replay-src"),
                           "replay_failed": self.headers.get("fly-replay-failed")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"""


@pytest.fixture
def machine_script(tmp_path: Path) -> Path:
    path = tmp_path / "machine.py"
    path.write_text(MACHINE)
    return path


def start_machines(
    emu, script: Path, count: int, region: str = "iad", autostart: bool = False, first: int = 0
) -> list[str]:
    client = FlyClient(emu.base_url, emu.token, mutation_rate=0, backoff=0.001)
    if not first:
        client.create_app(APP, "personal")
    config: dict = {"image": "img", "init": {"exec": [sys.executable, str(script)]}}
    if autostart:
        config["services"] = [{"protocol": "tcp", "internal_port": 8080, "autostart": True, "autostop": "off"}]
    ids = [client.create_machine(APP, f"m-{i}", region, config).id for i in range(first, first + count)]
    for mid in ids:
        client.wait_machine(APP, mid, "started", deadline_s=10)
    end = time.monotonic() + 10  # and each process listens, reached directly (not through the proxy)
    for m in (m for m in emu.machines() if m["id"] in ids):
        while not listening(m["process"]["port"]):
            assert time.monotonic() < end, f"machine {m['id']} does not listen"
            time.sleep(0.05)
    return ids


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def call(
    proxy_url: str,
    path: str = "/",
    *,
    host: str = HOST,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    conn: http.client.HTTPConnection | None = None,
):
    own = conn is None
    conn = conn or http.client.HTTPConnection(proxy_url.removeprefix("http://"), timeout=10)
    conn.request(method, path, body=body, headers={"Host": host, **(headers or {})})
    resp = conn.getresponse()
    data = resp.read()
    if own:
        conn.close()
    return resp.status, data, resp


def answers(proxy_url: str, **kw) -> dict:
    end = time.monotonic() + 10
    while True:
        status, data, _ = call(proxy_url, **kw)
        if status == 200 or time.monotonic() > end:
            assert status == 200, data
            return json.loads(data)
        time.sleep(0.05)


def test_requests_on_one_connection_are_balanced_over_every_started_machine(machine_script, tmp_path):
    with running_emulator(run_machines=True, proxy=True, workdir=tmp_path / "emu") as emu:
        ids = start_machines(emu, machine_script, 3)
        conn = http.client.HTTPConnection(emu.proxy_url.removeprefix("http://"), timeout=10)
        seen = []
        for i in range(9):
            status, data, _ = call(emu.proxy_url, f"/n/{i}", method="POST", body=b'{"n": %d}' % i, conn=conn)
            assert status == 200, data
            got = json.loads(data)
            assert got["body"] == f'{{"n": {i}}}' and got["path"] == f"/n/{i}"
            seen.append(got["machine"])
        conn.close()
        assert set(seen) == set(ids)
        # each machine's direct address stays in the report, beside the proxy
        assert all(m["process"]["url"].startswith("http://127.0.0.1:") for m in emu.machines())


def test_fly_replay_instance_sends_the_same_request_to_that_machine_with_fly_replay_src(machine_script, tmp_path):
    with running_emulator(run_machines=True, proxy=True, workdir=tmp_path / "emu") as emu:
        ids = start_machines(emu, machine_script, 3)
        target = ids[2]
        for _ in range(6):  # whichever machine the balancer picks, the answer comes from the target
            got = answers(emu.proxy_url, path=f"/to/{target}", method="POST", body=b"payload")
            assert got["machine"] == target and got["body"] == "payload"
        replayed = [r for r in emu.proxy_requests() if r["replayed_from"]]
        assert replayed and all(r["machine"] == target for r in replayed)
        source = replayed[0]["replayed_from"]
        got_src = [answers(emu.proxy_url, path=f"/to/{target}")["replay_src"] for _ in range(3)]
        src = next(s for s in got_src if s)
        fields = parse_replay(src)
        assert fields["instance"] in ids and fields["instance"] != target
        assert fields["region"] == "iad" and int(fields["t"]) > 0
        assert source != target


def test_fly_force_instance_id_pins_the_machine_and_503s_for_one_not_started(machine_script, tmp_path):
    with running_emulator(run_machines=True, proxy=True, workdir=tmp_path / "emu") as emu:
        ids = start_machines(emu, machine_script, 3)
        for _ in range(5):
            got = answers(emu.proxy_url, headers={"fly-force-instance-id": ids[1]})
            assert got["machine"] == ids[1] and got["replay_src"] is None
        status, data, _ = call(emu.proxy_url, headers={"fly-force-instance-id": "no-such-machine"})
        assert status == 503 and b"no-such-machine" in data


def test_stopped_machines_get_no_requests_and_an_app_without_started_machines_gets_503(machine_script, tmp_path):
    with running_emulator(run_machines=True, proxy=True, workdir=tmp_path / "emu") as emu:
        ids = start_machines(emu, machine_script, 2)
        client = FlyClient(emu.base_url, emu.token, mutation_rate=0, backoff=0.001)
        client.stop_machine(APP, ids[0])
        client.wait_machine(APP, ids[0], "stopped", deadline_s=10)
        assert {answers(emu.proxy_url)["machine"] for _ in range(4)} == {ids[1]}
        client.stop_machine(APP, ids[1])
        client.wait_machine(APP, ids[1], "stopped", deadline_s=10)
        status, data, _ = call(emu.proxy_url)
        assert status == 503 and APP.encode() in data


def test_unknown_hosts_get_404_and_streams_flow_through_as_they_come(machine_script, tmp_path):
    with running_emulator(run_machines=True, proxy=True, workdir=tmp_path / "emu") as emu:
        start_machines(emu, machine_script, 1)
        answers(emu.proxy_url)
        status, data, _ = call(emu.proxy_url, host="example.com")
        assert status == 404 and b".fly.dev" in data
        conn = http.client.HTTPConnection(emu.proxy_url.removeprefix("http://"), timeout=10)
        conn.request("GET", "/stream", headers={"Host": HOST})
        resp = conn.getresponse()
        assert resp.getheader("Content-Type") == "text/event-stream"
        started = time.monotonic()
        first = resp.readline()
        assert first.startswith(b"data: ") and time.monotonic() - started < 0.3  # before the stream ends
        rest = resp.read()
        assert rest.count(b"data: ") == 2
        conn.close()


def test_cli_proxy_port_serves_the_proxy_and_needs_run_machines(machine_script, tmp_path):
    with emulator_process("--run-machines", "--proxy-port", "0", "--workdir", str(tmp_path / "emu")) as emu:
        assert emu.proxy_url and emu.proxy_url.startswith("http://127.0.0.1:")
        ids = start_machines(emu, machine_script, 2)
        assert answers(emu.proxy_url)["machine"] in ids
    from tests.tools.fly_emulator.__main__ import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--proxy-port", "0"])


def test_a_replay_to_a_destroyed_machine_falls_back_to_its_source_when_asked_and_503s_otherwise(
    machine_script, tmp_path
):
    with running_emulator(run_machines=True, proxy=True, workdir=tmp_path / "emu") as emu:
        ids = start_machines(emu, machine_script, 2)
        client = FlyClient(emu.base_url, emu.token, mutation_rate=0, backoff=0.001)
        client.delete_machine(APP, ids[1], force=True)
        client.wait_machine(APP, ids[1], "destroyed", deadline_s=10)
        got = answers(emu.proxy_url, path=f"/to/{ids[1]}?timeout=300ms;fallback=force_self")
        assert got["machine"] == ids[0] and got["replay_src"] is None
        failed = parse_replay(got["replay_failed"])
        assert failed["instance"] == ids[1] and "destroyed" in failed["reason"]
        assert emu.proxy_requests()[-1] == {
            "app": APP, "machine": ids[0], "status": 200, "replayed_from": None, "fallback": True
        }  # fmt: skip
        started = time.monotonic()
        status, data, _ = call(emu.proxy_url, f"/to/{ids[1]}?timeout=300ms")
        assert status == 503 and ids[1].encode() in data
        assert time.monotonic() - started < 3  # the replay's own timeout, not the default


def test_a_replay_to_a_stopped_machine_with_autostart_starts_it(machine_script, tmp_path):
    with running_emulator(run_machines=True, proxy=True, workdir=tmp_path / "emu") as emu:
        ids = start_machines(emu, machine_script, 2, autostart=True)
        client = FlyClient(emu.base_url, emu.token, mutation_rate=0, backoff=0.001)
        client.stop_machine(APP, ids[1])
        client.wait_machine(APP, ids[1], "stopped", deadline_s=10)
        got = answers(emu.proxy_url, path=f"/to/{ids[1]}?timeout=10s;fallback=force_self")
        assert got["machine"] == ids[1] and got["replay_src"] and not got["replay_failed"]
        assert [(a["machine"], a["action"]) for a in emu.proxy_actions()] == [(ids[1], "autostart")]


def test_an_app_with_every_machine_stopped_gets_one_started_by_a_request_when_autostart_is_on(machine_script, tmp_path):
    with running_emulator(run_machines=True, proxy=True, workdir=tmp_path / "emu") as emu:
        ids = start_machines(emu, machine_script, 2, autostart=True)
        client = FlyClient(emu.base_url, emu.token, mutation_rate=0, backoff=0.001)
        for mid in ids:
            client.stop_machine(APP, mid)
            client.wait_machine(APP, mid, "stopped", deadline_s=10)
        assert answers(emu.proxy_url)["machine"] in ids
        assert [a["action"] for a in emu.proxy_actions()] == ["autostart"]
        assert sum(m["state"] == "started" for m in emu.machines()) == 1


def test_the_nearest_regions_machines_take_the_requests_while_one_is_started(machine_script, tmp_path):
    with running_emulator(run_machines=True, proxy=True, workdir=tmp_path / "emu", proxy_region="ams") as emu:
        far = start_machines(emu, machine_script, 2, region="iad")
        near = start_machines(emu, machine_script, 2, region="ams", first=2)
        assert {answers(emu.proxy_url)["machine"] for _ in range(6)} == set(near)
        # a replay crosses regions, to a machine or to a region
        assert answers(emu.proxy_url, path=f"/to/{far[0]}")["machine"] == far[0]
        # fly-replay: region= sends it to a machine of that region, whichever the balancer picked first
        assert {answers(emu.proxy_url, path="/region/iad")["machine"] for _ in range(4)} <= set(far)
        replayed = [r for r in emu.proxy_requests() if r["replayed_from"]]
        assert replayed and all(r["replayed_from"] in near and r["machine"] in far for r in replayed)
        client = FlyClient(emu.base_url, emu.token, mutation_rate=0, backoff=0.001)
        for mid in near:
            client.stop_machine(APP, mid)
            client.wait_machine(APP, mid, "stopped", deadline_s=10)
        assert {answers(emu.proxy_url)["machine"] for _ in range(4)} == set(far)


def test_fly_durations_read_as_seconds():
    assert parse_duration("800ms", 5) == 0.8 and parse_duration("10s", 5) == 10 and parse_duration("1m", 5) == 60
    assert parse_duration(None, 5) == 5 and parse_duration("soon", 5) == 5 and parse_duration("xs", 5) == 5


def test_cli_autostop_after_must_be_positive():
    from tests.tools.fly_emulator.__main__ import parse_args

    assert parse_args(["--run-machines", "--proxy-port", "0", "--autostop-after", "2"]).autostop_after == 2
    with pytest.raises(SystemExit):
        parse_args(["--run-machines", "--proxy-port", "0", "--autostop-after", "0"])


def test_an_apps_own_proxy_port_balances_its_machines_whatever_the_host(machine_script, tmp_path):
    with running_emulator(run_machines=True, proxy=True, workdir=tmp_path / "emu") as emu:
        ids = start_machines(emu, machine_script, 3)
        url = emu.app_url(APP)
        assert url == emu.app_url(APP) and url != emu.proxy_url  # one port per app, opened once
        assert url not in {m["process"]["url"] for m in emu.machines()}
        seen = {answers(url, host=url.removeprefix("http://"))["machine"] for _ in range(9)}
        assert seen == set(ids)
        assert answers(url, path=f"/to/{ids[0]}", host="127.0.0.1")["machine"] == ids[0]
    with running_emulator(run_machines=True, workdir=tmp_path / "emu2") as emu:  # no proxy: says so
        with pytest.raises(urllib.error.HTTPError) as raised:
            emu.app_url(APP)
        assert raised.value.code == 404 and b"proxy" in raised.value.read()


def test_with_checks_a_machines_config_checks_run_against_its_process(machine_script, tmp_path):
    checks = {
        "web": {"type": "http", "port": 8080, "method": "GET", "path": "/status"},
        "port": {"type": "tcp", "port": 8080},
    }
    with running_emulator(run_machines=True, checks=True, workdir=tmp_path / "emu") as emu:
        client = FlyClient(emu.base_url, emu.token, mutation_rate=0, backoff=0.001)
        client.create_app(APP, "personal")
        config = {"image": "img", "init": {"exec": [sys.executable, str(machine_script)]}, "checks": checks}
        mid = client.create_machine(APP, "m-0", "iad", config).id
        client.wait_machine(APP, mid, "started", deadline_s=10)
        end = time.monotonic() + 10
        while True:
            got = {c["name"]: c["status"] for c in api_machine(emu, mid)["checks"]}
            if got == {"port": "passing", "web": "passing"} or time.monotonic() > end:
                break
            time.sleep(0.1)
        assert got == {"port": "passing", "web": "passing"}
        assert {c["name"] for c in client.get_machine(APP, mid).model_dump().get("checks") or []} == {"port", "web"}
        client.stop_machine(APP, mid)
        client.wait_machine(APP, mid, "stopped", deadline_s=10)
        [web] = [c for c in api_machine(emu, mid)["checks"] if c["name"] == "web"]
        assert web["status"] == "critical" and "stopped" in web["output"]
    with running_emulator(run_machines=True, workdir=tmp_path / "emu2") as emu:  # without: none reported
        client = FlyClient(emu.base_url, emu.token, mutation_rate=0, backoff=0.001)
        client.create_app(APP, "personal")
        config = {"image": "img", "init": {"exec": [sys.executable, str(machine_script)]}, "checks": checks}
        mid = client.create_machine(APP, "m-0", "iad", config).id
        assert api_machine(emu, mid)["checks"] == []


def api_machine(emu, machine_id: str) -> dict:
    """The machine as the emulator's API answers a GET of it."""
    req = urllib.request.Request(
        f"{emu.base_url}/v1/apps/{APP}/machines/{machine_id}", headers={"Authorization": f"Bearer {emu.token}"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)


def test_the_harness_gives_local_url_through_the_proxy_and_a_machines_own_address_without_one(
    machine_script, tmp_path, monkeypatch
):
    outputs = {"relay": {"app": APP, "url": f"https://{HOST}/mcp"}, "note": "not a server"}
    with running_emulator(run_machines=True, proxy=True, workdir=tmp_path / "emu") as emu:
        start_machines(emu, machine_script, 2)
        monkeypatch.setenv("FLY_API_URL", emu.base_url)
        local = add_local_urls(outputs)
        assert local["relay"]["local_url"] == emu.app_url(APP) + "/mcp" and local["note"] == "not a server"
    with running_emulator(run_machines=True, workdir=tmp_path / "emu2") as emu:
        [mid] = start_machines(emu, machine_script, 1)
        monkeypatch.setenv("FLY_API_URL", emu.base_url)
        [machine] = [m for m in emu.machines() if m["id"] == mid]
        assert add_local_urls(outputs)["relay"]["local_url"] == machine["process"]["url"] + "/mcp"
