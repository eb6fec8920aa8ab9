"""A server with several machines, deployed by the real program and providers to the Fly emulator behind its proxy.

The server is tests/fixtures/relay_server.py as a custom command (nothing to download), `count: 3`; the
emulator runs each machine's entrypoint, reports its config checks from its process (`checks=True`), and serves
Fly's proxy, through which the stack's `local_url` goes. Here an update rolls through the machines one at a time,
and a client calling a tool throughout sees no failed call; under injected faults it converges with the same
machines; a machine that does not come back stops it with its name. SDK clients of both eras make 30 calls
through the proxy in one region (count 3) and in two (2 x 2).
"""

from __future__ import annotations

import contextlib
import itertools
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import anyio
import httpx
import pytest
import yaml
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from components.providers.machine import FlyMachineProvider
from tests.tools import sdk_clients
from tests.tools.fly_emulator.fixture import running_emulator
from tests.tools.harness import run as harness_run
from tests.tools.harness import run_subprocess

pytestmark = [pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "relay_server.py"
APP = "catwalk-rep-relay"
MODERN = "2026-07-28"
ENVELOPE = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientInfo": {"name": "loop", "version": "0"},
    "io.modelcontextprotocol/clientCapabilities": {},
}


def stack_file(path: Path, *, rollout: str = "1", count: int = 3, regions: list[str] | None = None) -> Path:
    server: dict = {
        "name": "relay",
        "command": f"{sys.executable} {FIXTURE}",
        "count": count,
        "env": {"ROLLOUT": rollout},
    }
    if regions:
        server["regions"] = regions
    config = {
        "catwalk:appPrefix": "catwalk-rep",
        "catwalk:org": "personal",
        "catwalk:image": "registry.fly.io/catwalk-base:v1",
        "catwalk:verify": False,
        "catwalk:servers": [server],
    }
    path.write_text(yaml.safe_dump({"config": config}))
    return path


@pytest.fixture
def stack(tmp_path):
    with deployment(tmp_path) as deployed:
        yield deployed


@contextlib.contextmanager
def deployment(tmp_path: Path, proxy_region: str | None = None):
    """The emulator (machines as processes, checks, its proxy) and a `harness(command, config)` against it."""
    with running_emulator(
        run_machines=True, proxy=True, checks=True, workdir=tmp_path / "emu", proxy_region=proxy_region
    ) as emulator:
        env = {"FLY_API_URL": emulator.base_url, "FLY_API_TOKEN": emulator.token, "CATWALK_FLY_RATE": "off"}

        def harness(command: str, config: Path, **kwargs):
            kwargs.setdefault("project_dir", ROOT)
            kwargs.setdefault("timeout", 600)
            return run_subprocess(command, "rep", config_file=config, state=tmp_path / "state.json", env=env, **kwargs)

        yield emulator, harness, tmp_path


def stateless_call(http: httpx.Client, url: str, token: str, text: str) -> str:
    """One 2026-07-28 tools/call (no session: answered by whichever machine gets it); its text, or raises."""
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": text}, "_meta": ENVELOPE},
    }
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": MODERN,
        "Mcp-Method": "tools/call",
        "Mcp-Name": "echo",
    }
    answer = http.post(url, json=body, headers=headers)
    answer.raise_for_status()
    return answer.json()["result"]["content"][0]["text"]


class CallLoop:
    """Calls a tool in a loop on a thread until stopped: how many calls were made, and which failed how."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token
        self.made = 0
        self.failed: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=30) as http:
            while not self._stop.is_set():
                self.made += 1
                text = f"call {self.made}"
                try:
                    got = stateless_call(http, self.url, self.token, text)
                    if got != text:
                        self.failed.append(f"{text}: answered {got!r}")
                except (httpx.HTTPError, KeyError, ValueError) as exc:
                    self.failed.append(f"{text}: {type(exc).__name__}: {exc}")

    def __enter__(self) -> CallLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)


def replacements(emulator) -> list[tuple[str, int, int]]:
    """(machine id, when its last update began, when it was started again), ms, in the order they began."""
    rows = []
    for m in emulator.emulator.state.machines.values():
        if m.app != APP or m.state == "destroyed":
            continue
        events = sorted(m.events, key=lambda e: e["timestamp"])
        updates = [e["timestamp"] for e in events if e["type"] == "update"]
        if not updates:
            continue
        began = updates[-1]
        started = [e["timestamp"] for e in events if e["status"] == "started" and e["timestamp"] > began]
        rows.append((m.id, began, started[0] if started else 0))
    return sorted(rows, key=lambda r: r[1])


def test_an_env_change_rolls_through_three_machines_while_a_client_calling_a_tool_sees_no_failed_call(stack):
    emulator, harness, tmp = stack
    up = harness("up", stack_file(tmp / "s.yaml"), show_secrets=True)
    assert up.ok, up.error
    outputs = up.outputs["relay"]
    url, token = outputs["local_url"], outputs["token"]
    assert url == emulator.app_url(APP) + "/mcp"  # through the proxy, not one machine's own address
    machines = [m for m in emulator.machines() if m["app"] == APP]
    assert len(machines) == 3 and all(m["state"] == "started" for m in machines)
    with httpx.Client(timeout=30) as http:
        assert stateless_call(http, url, token, "ready") == "ready"

    emulator.emulator.proxy.clear()
    with CallLoop(url, token) as loop:
        time.sleep(1)
        rolled = harness("up", stack_file(tmp / "s.yaml", rollout="2"), show_secrets=True)
        time.sleep(1)
    assert rolled.ok, rolled.error
    assert sorted(o["name"] for o in rolled.ops("update")) == ["relay-iad-0", "relay-iad-1", "relay-iad-2"]
    answered = Counter(r["machine"] for r in emulator.proxy_requests() if r["status"] == 200)
    print(f"rolling update of 3 machines: {loop.made} calls made, {len(loop.failed)} failed; per machine {answered}")
    assert loop.failed == [], loop.failed[:5]
    assert loop.made > 50
    assert len(answered) == 3  # every machine served calls, before or after its update

    # one at a time: each machine's update began after the one before it was started again
    rows = replacements(emulator)
    assert len(rows) == 3, rows
    for (_, _, started), (mid, began, again) in itertools.pairwise(rows):
        assert started and began >= started, f"{mid} was updated before the machine before it came back: {rows}"
        assert again > began
    assert {m["id"] for m in emulator.machines() if m["app"] == APP} == {m["id"] for m in machines}
    env = {m.config["env"]["ROLLOUT"] for m in emulator.emulator.state.machines.values() if m.app == APP}
    assert env == {"2"}


def test_under_fault_injection_a_rolling_update_converges_or_fails_naming_the_machine_without_duplicates(stack):
    emulator, harness, tmp = stack
    up = harness("up", stack_file(tmp / "s.yaml"))
    assert up.ok, up.error
    before = {m["id"]: m["name"] for m in emulator.machines() if m["app"] == APP}
    assert len(before) == 3
    emulator.set_faults(rate=0.5, seed=11, retry_after=0)
    errors = []
    for _ in range(8):  # as a user re-runs `up` after a failure
        rolled = harness("up", stack_file(tmp / "s.yaml", rollout="2"))
        if rolled.ok:
            break
        errors.append(rolled.error or "")
    emulator.set_faults(rate=0)
    faults = [c for c in emulator.calls() if c["fault"]]
    print(f"rolling update under 50% faults: {len(faults)} faults injected, {len(errors)} failed runs before it did")
    assert rolled.ok, errors
    assert len(faults) >= 5  # the faults really happened
    for error in errors:  # a failed run says which resource, and a machine's failure which machine
        assert "relay" in error, error
        if "Fly machine" in error:
            assert any(name in error for name in ("relay-iad-0", "relay-iad-1", "relay-iad-2")), error
    live = [m for m in emulator.machines() if m["app"] == APP and m["state"] not in ("destroyed", "destroying")]
    assert {m["id"]: m["name"] for m in live} == before  # no duplicate, no orphan, the same three machines
    assert {m["state"] for m in live} == {"started"}
    env = {m.config["env"]["ROLLOUT"] for m in emulator.emulator.state.machines.values() if m.app == APP}
    assert env == {"2"}
    again = harness("up", stack_file(tmp / "s.yaml", rollout="2"))
    assert again.ok and not [o for o in again.operations if o["op"] != "same"], again.operations


# -- acceptance: sessions and stateless calls through the proxy, one region and two -------------------------

TOPOLOGIES = {
    "count 3, one region": {"count": 3, "regions": None, "near": None},
    "two regions x 2": {"count": 2, "regions": ["iad", "ams"], "near": "ams"},
}


@pytest.fixture(params=list(TOPOLOGIES))
def replicas(request, tmp_path):
    """A deployed relay server in the topology, the client near its `near` region: (emulator, outputs, topology)."""
    topology = TOPOLOGIES[request.param]
    with deployment(tmp_path, proxy_region=topology["near"]) as (emulator, harness, tmp):
        config = stack_file(tmp / "s.yaml", count=topology["count"], regions=topology["regions"])
        up = harness("up", config, show_secrets=True)
        assert up.ok, up.error
        machines = [m for m in emulator.machines() if m["app"] == APP]
        assert len(machines) == 4 if topology["regions"] else len(machines) == 3
        emulator.emulator.proxy.clear()
        yield emulator, up.outputs["relay"], topology


async def session_calls(url: str, token: str, count: int, moved=None) -> list[str]:
    """An SDK 1.x client (handshake era): initialize, then ``count`` calls in one session; ``moved()`` runs
    half-way (the client moves nearer another region)."""
    async with (
        httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http,
        streamable_http_client(url, http_client=http) as streams,
        ClientSession(streams[0], streams[1]) as session,
    ):
        await session.initialize()
        answers = []
        for i in range(count):
            if i == count // 2 and moved is not None:
                moved()
            result = await session.call_tool("echo", {"text": f"call {i}"})
            assert not result.isError, result
            answers.append(result.content[0].text)
        return answers


def regions_of(emulator) -> dict[str, str]:
    return {m["id"]: m["region"] for m in emulator.machines() if m["app"] == APP}


def test_an_sdk1_session_makes_initialize_and_30_calls_through_the_proxy_over_several_machines(replicas):
    emulator, outputs, topology = replicas
    region = regions_of(emulator)

    def move() -> None:  # the client is now nearest to the other region: Fly routes it there
        emulator.emulator.proxy.region = "iad"

    moved = move if topology["regions"] else None
    answers = anyio.run(session_calls, outputs["local_url"], outputs["token"], 30, moved)
    assert answers == [f"call {i}" for i in range(30)]
    requests = emulator.proxy_requests()
    assert all(r["status"] < 400 for r in requests), [r for r in requests if r["status"] >= 400]
    landed = Counter(r["replayed_from"] or r["machine"] for r in requests)
    holders = {r["machine"] for r in requests if r["replayed_from"]}
    print(f"{topology}: {len(requests)} requests, first landed on {dict(landed)}, replayed to {holders}")
    assert len(landed) >= 2, landed  # the balancer spread the session's requests over several machines
    assert len(holders) == 1, holders  # and every replay ended on the one machine holding the session
    if topology["regions"]:
        [holder] = holders
        assert region[holder] == "ams"  # opened near ams
        crossed = [r for r in requests if r["replayed_from"] and region[r["replayed_from"]] == "iad"]
        assert crossed, "no request was replayed from iad to the session's machine in ams"


@pytest.mark.network
@pytest.mark.timeout(600)
def test_an_sdk2_client_in_the_stateless_revision_gets_30_calls_answered_by_several_machines(replicas):
    emulator, outputs, topology = replicas
    report = sdk_clients.py_client(sdk_clients.PY_SDK2, outputs["local_url"], outputs["token"], MODERN, calls=30)
    assert "error" not in report, report
    assert report["protocol_version"] == MODERN
    assert report["answers"] == [f"call {i}" for i in range(30)]
    requests = emulator.proxy_requests()
    answered = Counter(r["machine"] for r in requests if r["status"] == 200)
    print(f"{topology}: {len(requests)} requests answered by {dict(answered)}")
    assert all(r["status"] < 400 for r in requests), [r for r in requests if r["status"] >= 400]
    assert not [r for r in requests if r["replayed_from"]]  # no session, no replay
    assert len(answered) >= 2, answered
    if topology["near"]:
        assert {regions_of(emulator)[m] for m in answered} == {topology["near"]}  # the nearest region's machines


def test_a_machine_that_does_not_come_back_stops_the_rollout_naming_it_and_the_rest_keep_serving(tmp_path, monkeypatch):
    """The second machine's new version cannot start: the error names it with its events, the first machine
    runs the new version, the third was not touched and serves the old one, and the next `up` finishes."""
    monkeypatch.setattr(FlyMachineProvider, "start_deadline_s", 3.0)
    monkeypatch.setattr(FlyMachineProvider, "health_deadline_s", 3.0)
    with deployment(tmp_path) as (emulator, _, tmp):
        monkeypatch.setenv("FLY_API_URL", emulator.base_url)
        monkeypatch.setenv("FLY_API_TOKEN", emulator.token)
        monkeypatch.setenv("CATWALK_FLY_RATE", "off")

        def up(rollout: str):
            config = stack_file(tmp / "s.yaml", rollout=rollout)
            return harness_run("up", "rep", project_dir=ROOT, config_file=config, state=tmp / "state.json")

        assert up("1").ok
        by_name = {m["name"]: m["id"] for m in emulator.machines() if m["app"] == APP}
        broken = by_name["relay-iad-1"]
        runner = emulator.emulator.runner
        start = runner.start

        def start_unless_broken(machine, env):
            if machine.id == broken:
                raise RuntimeError("exec format error")
            start(machine, env)

        monkeypatch.setattr(runner, "start", start_unless_broken)
        failed = up("2")
        assert not failed.ok
        assert "relay-iad-1" in failed.error and broken in failed.error, failed.error
        assert "did not restart after the update" in failed.error and "events:" in failed.error, failed.error
        machines = {name: emulator.emulator.state.machines[mid] for name, mid in by_name.items()}
        rollout = {name: m.config["env"]["ROLLOUT"] for name, m in machines.items()}
        assert rollout == {"relay-iad-0": "2", "relay-iad-1": "2", "relay-iad-2": "1"}
        states = {name: m.state for name, m in machines.items()}
        assert states == {"relay-iad-0": "started", "relay-iad-1": "failed", "relay-iad-2": "started"}
        with httpx.Client(timeout=30) as http:  # the other two still answer
            outputs = harness_run("output", "rep", project_dir=ROOT, state=tmp / "state.json", show_secrets=True)
            token = outputs.outputs["relay"]["token"]
            url = emulator.app_url(APP) + "/mcp"
            answers = [stateless_call(http, url, token, f"still {i}") for i in range(6)]
            assert answers == [f"still {i}" for i in range(6)]

        monkeypatch.setattr(runner, "start", start)
        again = up("2")
        assert again.ok, again.error
        assert sorted(o["name"] for o in again.ops("update")) == ["relay-iad-1", "relay-iad-2"]
        live = {m["name"]: m["id"] for m in emulator.machines() if m["app"] == APP and m["state"] == "started"}
        assert live == by_name  # the same three machines, none duplicated
