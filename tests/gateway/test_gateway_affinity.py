"""Sessions on a server with several machines behind Fly's per-request balancing (the emulator's proxy).

Each machine runs deploy/entrypoint.sh with the relay fixture as its server; a session id names the machine
that holds it, and another machine answers 404 with ``fly-replay: instance=<id>`` so the proxy replays there.
"""

from __future__ import annotations

import sys
import time
from collections import Counter

import anyio
import httpx
from mcp import ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from components.fly import FlyClient
from tests.tools.entrypoint_env import ROOT
from tests.tools.fly_emulator.fixture import running_emulator

FIXTURE = ROOT / "tests" / "fixtures" / "relay_server.py"
APP = "cw-replicas"
HOST = f"{APP}.fly.dev"
TOKEN = "replicas-token-8c2f"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def start_replicas(emu, count: int, service: dict | None = None, ready: bool = True) -> list[str]:
    """``count`` machines of one app serving the relay fixture; returns their ids once each one's gateway is ready
    (once each is started, with ``ready=False``: autostop may stop a machine before its gateway is).

    ``service``: the autostop/autostart fields of the machines' one service (none by default).
    """
    client = FlyClient(emu.base_url, emu.token, mutation_rate=0, backoff=0.001)
    client.create_app(APP, "personal")
    env = {"MCP_RUNTIME": "custom", "MCP_COMMAND": f"{sys.executable} {FIXTURE}", "MCP_AUTH_TOKEN": TOKEN}
    config: dict = {"image": "img", "env": env}
    if service is not None:
        config["services"] = [{"protocol": "tcp", "internal_port": 8080, **service}]
    ids = [client.create_machine(APP, f"rep-{i}", "iad", config).id for i in range(count)]
    for mid in ids:
        client.wait_machine(APP, mid, "started", deadline_s=20)
    if ready:
        wait_ready(emu)
    return ids


def wait_ready(emu) -> None:
    """Until every machine's gateway, reached directly, answers /status (its server answered initialize)."""
    deadline = time.monotonic() + 60
    for machine in emu.machines():
        url = machine["process"]["url"] + "/status"
        while True:
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"machine {machine['id']} never served /status"
            time.sleep(0.1)


def initialize_body() -> dict:
    params = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}
    return {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params}


async def thirty_calls(url: str, transport) -> list[str]:
    async with (
        httpx.AsyncClient(headers={"Host": HOST, **AUTH}, timeout=30) as http,
        transport(url, http) as streams,
        ClientSession(streams[0], streams[1]) as session,
    ):
        await session.initialize()
        answers = []
        for i in range(30):
            result = await session.call_tool("echo", {"text": f"call {i}"})
            assert not result.isError, result
            answers.append(result.content[0].text)
        return answers


def streamable(url: str, http: httpx.AsyncClient):
    return streamable_http_client(url + "/mcp", http_client=http)


def test_a_session_on_three_machines_behind_per_request_balancing_gets_every_call_answered(tmp_path):
    with running_emulator(run_machines=True, proxy=True, workdir=tmp_path / "emu") as emu:
        ids = start_replicas(emu, 3)
        answers = anyio.run(thirty_calls, emu.proxy_url, streamable)
        assert answers == [f"call {i}" for i in range(30)]
        requests = emu.proxy_requests()
        first = Counter(r["replayed_from"] or r["machine"] for r in requests)
        assert len(first) >= 2, first  # the balancer sent the session's requests to several machines
        replayed = [r for r in requests if r["replayed_from"]]
        assert replayed, "no request reached a machine that did not hold the session"
        holders = {r["machine"] for r in replayed}
        assert len(holders) == 1 and holders <= set(ids)  # and every one of them ended on the session's machine
        assert all(r["status"] < 400 for r in requests), [r for r in requests if r["status"] >= 400]


def test_a_legacy_sse_session_behind_the_proxy_gets_every_call_answered(tmp_path):
    def legacy(url: str, http: httpx.AsyncClient):
        return sse_client(url + "/sse", headers={"Host": HOST, **AUTH})

    with running_emulator(run_machines=True, proxy=True, workdir=tmp_path / "emu") as emu:
        start_replicas(emu, 3)
        answers = anyio.run(thirty_calls, emu.proxy_url, legacy)
        assert answers == [f"call {i}" for i in range(30)]
        assert any(r["replayed_from"] for r in emu.proxy_requests())


def test_a_machine_asked_for_another_machines_session_answers_404_with_fly_replay(tmp_path):
    with running_emulator(run_machines=True, proxy=True, workdir=tmp_path / "emu") as emu:
        ids = start_replicas(emu, 2)
        direct = {m["id"]: m["process"]["url"] for m in emu.machines()}
        opened = httpx.post(direct[ids[0]] + "/mcp", json=initialize_body(), headers={**AUTH, **ACCEPT}, timeout=10)
        sid = opened.headers["mcp-session-id"]
        assert sid.startswith(ids[0] + ".")
        ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
        headers = {**AUTH, **ACCEPT, "mcp-session-id": sid}
        other = httpx.post(direct[ids[1]] + "/mcp", json=ping, headers=headers, timeout=10)
        assert other.status_code == 404
        assert other.headers["fly-replay"] == f"instance={ids[0]};timeout=5s;fallback=force_self"
        # a request already replayed is not sent on again: the session is not there, so it is gone
        replayed = httpx.post(
            direct[ids[1]] + "/mcp", json=ping, headers={**headers, "fly-replay-src": "instance=x"}, timeout=10
        )
        assert replayed.status_code == 404 and "fly-replay" not in replayed.headers
        # nor is one that came back because the named machine could not be reached
        returned = httpx.post(
            direct[ids[1]] + "/mcp", json=ping, headers={**headers, "fly-replay-failed": "instance=x"}, timeout=10
        )
        assert returned.status_code == 404 and "fly-replay" not in returned.headers
        # the holder answers it
        assert httpx.post(direct[ids[0]] + "/mcp", json=ping, headers=headers, timeout=10).status_code == 200


def test_after_the_sessions_machine_restarts_the_next_request_gets_404_and_a_new_session_works(tmp_path):
    with running_emulator(run_machines=True, proxy=True, workdir=tmp_path / "emu") as emu:
        ids = start_replicas(emu, 3)
        proxy = {**AUTH, **ACCEPT, "Host": HOST}
        opened = httpx.post(emu.proxy_url + "/mcp", json=initialize_body(), headers=proxy, timeout=10)
        sid = opened.headers["mcp-session-id"]
        owner = sid.split(".")[0]
        assert owner in ids
        client = FlyClient(emu.base_url, emu.token, mutation_rate=0, backoff=0.001)
        client.stop_machine(APP, owner)  # as autostop would, then started again by a later request
        client.wait_machine(APP, owner, "stopped", deadline_s=20)
        client.start_machine(APP, owner)
        client.wait_machine(APP, owner, "started", deadline_s=20)
        wait_ready(emu)
        ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
        for _ in range(3):  # wherever the balancer sends it, the session is gone
            gone = httpx.post(emu.proxy_url + "/mcp", json=ping, headers={**proxy, "mcp-session-id": sid}, timeout=30)
            assert gone.status_code == 404, gone.text
        answers = anyio.run(thirty_calls, emu.proxy_url, streamable)
        assert answers == [f"call {i}" for i in range(30)]


def open_session(emu) -> tuple[str, dict[str, str]]:
    """An initialize through the proxy: the session id and the headers that carry it."""
    proxy = {**AUTH, **ACCEPT, "Host": HOST}
    opened = httpx.post(emu.proxy_url + "/mcp", json=initialize_body(), headers=proxy, timeout=10)
    assert opened.status_code == 200, opened.text
    sid = opened.headers["mcp-session-id"]
    return sid, {**proxy, "mcp-session-id": sid}


PING = {"jsonrpc": "2.0", "id": 2, "method": "ping"}


def test_a_session_whose_machine_was_stopped_gets_404_and_a_new_session_works(tmp_path):
    with running_emulator(run_machines=True, proxy=True, workdir=tmp_path / "emu") as emu:
        ids = start_replicas(emu, 3)
        sid, headers = open_session(emu)
        owner = sid.split(".")[0]
        assert httpx.post(emu.proxy_url + "/mcp", json=PING, headers=headers, timeout=10).status_code == 200
        client = FlyClient(emu.base_url, emu.token, mutation_rate=0, backoff=0.001)
        client.stop_machine(APP, owner)  # mid-session, and left stopped
        client.wait_machine(APP, owner, "stopped", deadline_s=20)
        for _ in range(3):  # wherever the balancer sends it
            gone = httpx.post(emu.proxy_url + "/mcp", json=PING, headers=headers, timeout=30)
            assert gone.status_code == 404, gone.text
        answers = anyio.run(thirty_calls, emu.proxy_url, streamable)
        assert answers == [f"call {i}" for i in range(30)]
        assert {r["machine"] for r in emu.proxy_requests() if r["status"] == 200} <= set(ids)


def test_a_session_whose_machine_was_destroyed_gets_404_from_the_machine_the_replay_falls_back_to(tmp_path):
    with running_emulator(run_machines=True, proxy=True, workdir=tmp_path / "emu") as emu:
        ids = start_replicas(emu, 2)
        sid, headers = open_session(emu)
        owner = sid.split(".")[0]
        client = FlyClient(emu.base_url, emu.token, mutation_rate=0, backoff=0.001)
        client.delete_machine(APP, owner, force=True)
        client.wait_machine(APP, owner, "destroyed", deadline_s=20)
        emu.emulator.proxy.clear()
        gone = httpx.post(emu.proxy_url + "/mcp", json=PING, headers=headers, timeout=30)
        assert gone.status_code == 404 and "fly-replay" not in gone.headers, gone.text
        [survivor] = set(ids) - {owner}
        assert emu.proxy_requests() == [
            {"app": APP, "machine": survivor, "status": 404, "replayed_from": None, "fallback": True}
        ]
        answers = anyio.run(thirty_calls, emu.proxy_url, streamable)
        assert answers == [f"call {i}" for i in range(30)]


def test_autostop_stops_idle_machines_down_to_none_and_a_request_starts_one_again(tmp_path):
    with running_emulator(run_machines=True, proxy=True, workdir=tmp_path / "emu", autostop_after=1.0) as emu:
        service = {"autostop": "stop", "autostart": True, "min_machines_running": 0}
        ids = start_replicas(emu, 2, service=service, ready=False)
        _, headers = open_session(emu)
        deadline = time.monotonic() + 30
        while {m["state"] for m in emu.machines()} != {"stopped"}:
            assert time.monotonic() < deadline, emu.machines()
            time.sleep(0.2)
        assert {a["machine"] for a in emu.proxy_actions() if a["action"] == "autostop"} == set(ids)
        # the session went with its machine; the request starts a machine, which no longer holds it
        gone = httpx.post(emu.proxy_url + "/mcp", json=PING, headers=headers, timeout=60)
        assert gone.status_code == 404, gone.text
        assert any(a["action"] == "autostart" for a in emu.proxy_actions())
        answers = anyio.run(thirty_calls, emu.proxy_url, streamable)
        assert answers == [f"call {i}" for i in range(30)]


def test_autostop_keeps_min_machines_running_and_leaves_machines_without_autostop(tmp_path):
    with running_emulator(run_machines=True, proxy=True, workdir=tmp_path / "emu", autostop_after=0.5) as emu:
        start_replicas(emu, 3, service={"autostop": "stop", "autostart": True, "min_machines_running": 1}, ready=False)
        deadline = time.monotonic() + 30
        while sum(m["state"] == "started" for m in emu.machines()) > 1:
            assert time.monotonic() < deadline, emu.machines()
            time.sleep(0.2)
        time.sleep(2)  # well past the idle period: the last one stays
        assert sum(m["state"] == "started" for m in emu.machines()) == 1
        emu.reset()
        start_replicas(emu, 2, service={"autostop": "off", "autostart": True, "min_machines_running": 0}, ready=False)
        time.sleep(2)
        assert {m["state"] for m in emu.machines()} == {"started"}
        assert not emu.proxy_actions()
