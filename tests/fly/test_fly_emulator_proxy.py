"""The emulator's Fly proxy: per-request balancing, fly-replay, fly-force-instance-id, fly-replay-src."""

from __future__ import annotations

import http.client
import json
import socket
import sys
import time
from pathlib import Path

import pytest

from components.fly import FlyClient
from tests.tools.fly_emulator.fixture import emulator_process, running_emulator
from tests.tools.fly_emulator.proxy import parse_replay

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
        if self.path.startswith("/to/") and self.path[4:] != ME:
            self.send_response(204)
            self.send_header("fly-replay", "instance=" + self.path[4:])
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
                           "replay_src": self.headers.get("fly-replay-src")}).encode()
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


def start_machines(emu, script: Path, count: int, region: str = "iad") -> list[str]:
    client = FlyClient(emu.base_url, emu.token, mutation_rate=0, backoff=0.001)
    client.create_app(APP, "personal")
    config = {"image": "img", "init": {"exec": [sys.executable, str(script)]}}
    ids = [client.create_machine(APP, f"m-{i}", region, config).id for i in range(count)]
    for mid in ids:
        client.wait_machine(APP, mid, "started", deadline_s=10)
    end = time.monotonic() + 10  # and each process listens, reached directly (not through the proxy)
    for m in emu.machines():
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
