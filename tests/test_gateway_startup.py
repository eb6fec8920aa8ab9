"""The gateway's start-up: what it defers to start faster must behave as before, and it stays stoppable."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.entrypoint_fixtures import DEPLOY, base_env, pid_alive, serving, wait_for_file

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


DEFERRED_UVICORN = f"""
import importlib.util, sys
spec = importlib.util.spec_from_file_location("gateway", {str(DEPLOY / "gateway.py")!r})
gateway = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gateway)
gateway._defer_imports()
import uvicorn, uvicorn.config, uvicorn.server
assert uvicorn.Config is uvicorn.config.Config and uvicorn.Server is uvicorn.server.Server
from uvicorn import Config
assert Config is uvicorn.config.Config
assert "uvicorn.main" not in sys.modules, "uvicorn/__init__ ran before anything needed it"
assert uvicorn.run is sys.modules["uvicorn.main"].run  # the package's other names load on first use
"""


def test_uvicorn_deferred_by_the_gateway_still_provides_every_name() -> None:
    result = subprocess.run([sys.executable, "-c", DEFERRED_UVICORN], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
