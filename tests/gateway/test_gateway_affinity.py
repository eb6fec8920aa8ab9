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


def start_replicas(emu, count: int) -> list[str]:
    """``count`` machines of one app serving the relay fixture; returns their ids once each one's gateway is ready."""
    client = FlyClient(emu.base_url, emu.token, mutation_rate=0, backoff=0.001)
    client.create_app(APP, "personal")
    env = {"MCP_RUNTIME": "custom", "MCP_COMMAND": f"{sys.executable} {FIXTURE}", "MCP_AUTH_TOKEN": TOKEN}
    ids = [client.create_machine(APP, f"rep-{i}", "iad", {"image": "img", "env": env}).id for i in range(count)]
    for mid in ids:
        client.wait_machine(APP, mid, "started", deadline_s=20)
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
        assert other.status_code == 404 and other.headers["fly-replay"] == f"instance={ids[0]}"
        # a request already replayed is not sent on again: the session is not there, so it is gone
        replayed = httpx.post(
            direct[ids[1]] + "/mcp", json=ping, headers={**headers, "fly-replay-src": "instance=x"}, timeout=10
        )
        assert replayed.status_code == 404 and "fly-replay" not in replayed.headers
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
