"""The gateway's start-up: what it defers to start faster must behave as before, and it stays stoppable."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from pathlib import Path

from tests.tools.entrypoint_env import ROOT, base_env, pid_alive, serving, wait_for_file

# A "server" that is up at once (it writes its pid first) and never answers initialize: the gateway is
# still starting (importing, then waiting for initialize) for as long as the test needs.
SLOW_SERVER = "import os, sys, time\nopen(sys.argv[1], 'w').write(str(os.getpid()))\ntime.sleep(60)\n"


def test_sigterm_while_the_gateway_is_starting_stops_the_server_too(tmp_path: Path) -> None:
    script, pidfile = tmp_path / "slow_server.py", tmp_path / "pid"
    script.write_text(SLOW_SERVER)
    env = base_env(tmp_path / "home", MCP_RUNTIME="custom", MCP_COMMAND=f"{sys.executable} {script} {pidfile}")
    child = None
    try:
        with serving(env) as served:
            child = int(wait_for_file(pidfile, 10))  # the server runs; the gateway is still importing
            started = time.monotonic()
            served.process.terminate()
            code = served.wait(5)
            elapsed = time.monotonic() - started
            output = served.output()
        assert code == 0 and elapsed < 2.0, f"exit {code} after {elapsed:.2f} s\n{output}"
        deadline = time.monotonic() + 1
        while pid_alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not pid_alive(child), "the MCP server outlived a gateway stopped while starting"
    finally:
        if child is not None and pid_alive(child):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)


# Modules of the stack the gateway replaced: none may load on the serve path (each costs start-up time, and
# mcp/pydantic would re-serialize messages). This venv has them all installed, so an import would succeed.
REPLACED = ("mcp", "mcp_proxy", "pydantic", "pydantic_core", "starlette", "sse_starlette", "uvicorn", "anyio", "httpx")


def test_serving_imports_nothing_of_the_replaced_stack(tmp_path: Path) -> None:
    fixture = ROOT / "tests" / "fixtures" / "relay_server.py"
    env = base_env(tmp_path / "home", MCP_RUNTIME="custom", MCP_COMMAND=f"{sys.executable} {fixture}")
    env["PYTHONPROFILEIMPORTTIME"] = "1"  # the gateway's Python reports every import on stderr
    with serving(env) as served:
        deadline = time.monotonic() + 30
        while "Serving relay-fixture" not in served.output():
            assert time.monotonic() < deadline and served.process.poll() is None, served.output()
            time.sleep(0.05)
        output = served.output()
    imported = {line.rsplit("|", 1)[1].strip() for line in output.splitlines() if line.startswith("import time:")}
    assert {"asyncio", "h11", "json"} <= imported  # the report is complete enough to judge
    loaded = sorted(name for name in imported if name.split(".")[0] in REPLACED)
    assert loaded == [], f"the serve path imported {loaded}"
