"""``--run-machines``: started machines are local processes with the machine's env and the app's secrets."""

from __future__ import annotations

import os
import time
import urllib.request
from pathlib import Path

import pytest

from components.fly import FlyClient
from tests.tools.fly_emulator.fixture import emulator_process, running_emulator
from tests.tools.fly_emulator.processes import REPO

APP = "cw-run"
# Stands in for deploy/entrypoint.sh: records its env, fails on request, else serves HTTP on $PORT.
ENTRYPOINT = """#!/usr/bin/env bash
set -eu
env > "$MCP_HOME/env-$FLY_MACHINE_ID"
if [ "${MCP_RUNTIME}" = "crash" ]; then echo "Error: Invalid MCP_RUNTIME=crash" >&2; exit 3; fi
echo "serving on $PORT"
exec python -m http.server "$PORT" --bind 127.0.0.1
"""


@pytest.fixture
def entrypoint(tmp_path: Path) -> Path:
    path = tmp_path / "entrypoint.sh"
    path.write_text(ENTRYPOINT)
    return path


def app_client(emu) -> FlyClient:
    """A fast client, with the test app created."""
    client = FlyClient(emu.base_url, emu.token, mutation_rate=0, backoff=0.001)
    client.create_app(APP, "personal")
    return client


def read_env(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def until(predicate, timeout_s: float = 10.0):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def process_of(emu, machine_id: str) -> dict:
    return next(m["process"] for m in emu.machines() if m["id"] == machine_id)


def test_started_machine_runs_the_entrypoint_with_env_secrets_port_and_mcp_home(entrypoint, tmp_path, monkeypatch):
    monkeypatch.setenv("FLY_API_TOKEN", "must-not-leak")
    monkeypatch.setenv("MCP_PACKAGE", "host-value-must-not-leak")
    with running_emulator(run_machines=True, entrypoint=entrypoint, workdir=tmp_path / "emu") as emu:
        client = app_client(emu)
        client.set_secrets(APP, {"MCP_AUTH_TOKEN": "secret-from-fly"})
        env = {"MCP_RUNTIME": "npm", "MCP_PACKAGE": "@modelcontextprotocol/server-memory", "PORT": "8080"}
        m = client.create_machine(APP, "memory-0", "iad", {"image": "img", "env": env})
        client.wait_machine(APP, m.id, "started", deadline_s=10)
        proc = until(lambda: process_of(emu, m.id))
        assert proc["running"] and proc["url"] == f"http://127.0.0.1:{proc['port']}"
        until(lambda: answers(proc["url"]))

        seen = read_env(tmp_path / "emu" / "mcp-home" / f"env-{m.id}")
        assert seen["MCP_AUTH_TOKEN"] == "secret-from-fly"
        assert seen["MCP_PACKAGE"] == "@modelcontextprotocol/server-memory" and seen["MCP_RUNTIME"] == "npm"
        assert seen["PORT"] == str(proc["port"]) != "8080"
        assert seen["MCP_HOME"] == str(tmp_path / "emu" / "mcp-home")
        assert seen["PATH"].split(os.pathsep)[0] == str(REPO / ".venv" / "bin")
        assert seen["FLY_MACHINE_ID"] == m.id and seen["FLY_APP_NAME"] == APP
        assert "FLY_API_TOKEN" not in seen

        client.stop_machine(APP, m.id)
        client.wait_machine(APP, m.id, "stopped", deadline_s=10)
        until(lambda: not alive(proc["pid"]))
        assert not answers(proc["url"]) and process_of(emu, m.id)["running"] is False


def test_update_restarts_the_process_and_destroy_kills_it(entrypoint, tmp_path):
    with running_emulator(run_machines=True, entrypoint=entrypoint, workdir=tmp_path) as emu:
        client = app_client(emu)
        m = client.create_machine(APP, "memory-0", "iad", {"image": "img", "env": {"MCP_RUNTIME": "npm"}})
        client.wait_machine(APP, m.id, "started", deadline_s=10)
        first = until(lambda: process_of(emu, m.id))
        updated = client.update_machine(
            APP, m.id, {"image": "img", "env": {"MCP_RUNTIME": "python"}}, current_version=m.version
        )
        client.wait_machine(APP, m.id, "started", instance_id=updated.version, deadline_s=10)
        second = until(lambda: (p := process_of(emu, m.id)) and p["pid"] != first["pid"] and p)
        assert until(lambda: not alive(first["pid"]))
        until(lambda: answers(second["url"]))
        assert read_env(tmp_path / "mcp-home" / f"env-{m.id}")["MCP_RUNTIME"] == "python"
        client.delete_machine(APP, m.id, force=True)
        assert until(lambda: not alive(second["pid"]))


def test_a_process_that_exits_stops_its_machine_with_the_exit_code_in_its_events(entrypoint, tmp_path):
    with running_emulator(run_machines=True, entrypoint=entrypoint, workdir=tmp_path) as emu:
        client = app_client(emu)
        m = client.create_machine(APP, "bad-0", "iad", {"image": "img", "env": {"MCP_RUNTIME": "crash"}})
        client.wait_machine(APP, m.id, "stopped", deadline_s=10)
        events = [e.describe() for e in client.get_machine(APP, m.id).recent_events()]
        assert events[-1] == "exit/stopped exit_code=3"
        log = Path(process_of(emu, m.id)["log"]).read_text()
        assert "Error: Invalid MCP_RUNTIME=crash" in log


def test_init_exec_runs_a_custom_command_instead_of_the_entrypoint(tmp_path):
    with running_emulator(run_machines=True, entrypoint=tmp_path / "absent.sh", workdir=tmp_path) as emu:
        client = app_client(emu)
        argv = ["python", "-c", "import os,sys; print('port', os.environ['PORT']); sys.exit(0)"]
        m = client.create_machine(APP, "custom-0", "iad", {"image": "img", "init": {"exec": argv}})
        client.wait_machine(APP, m.id, "stopped", deadline_s=10)
        proc = process_of(emu, m.id)
        assert proc["argv"] == argv and proc["exit_code"] == 0
        assert Path(proc["log"]).read_text().strip() == f"port {proc['port']}"


def test_a_missing_entrypoint_fails_the_machine(tmp_path):
    with running_emulator(run_machines=True, entrypoint=tmp_path / "absent", workdir=tmp_path) as emu:
        client = app_client(emu)
        m = client.create_machine(APP, "m-0", "iad", {"image": "img"})
        client.wait_machine(APP, m.id, "failed", deadline_s=10)
        assert client.get_machine(APP, m.id).recent_events()[-1].describe() == "exit/failed exit_code=127"


def test_cli_run_machines_reports_where_each_machine_listens(entrypoint, tmp_path):
    args = ("--run-machines", "--entrypoint", str(entrypoint), "--workdir", str(tmp_path), "--transition-s", "0.01")
    with emulator_process(*args) as emu:
        client = app_client(emu)
        m = client.create_machine(APP, "memory-0", "iad", {"image": "img", "env": {"MCP_RUNTIME": "npm"}})
        client.wait_machine(APP, m.id, "started", deadline_s=10)
        proc = until(lambda: process_of(emu, m.id))
        until(lambda: answers(proc["url"]))
    assert until(lambda: not alive(proc["pid"]))  # stopping the emulator stops its machines
