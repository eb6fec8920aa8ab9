"""Helpers to run deploy/entrypoint.sh locally exactly as the image does, and talk MCP to it."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.tools.processes import stop

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
ENTRYPOINT = DEPLOY / "entrypoint.sh"
VENV_BIN = Path(sys.executable).parent

# A tiny MCP server for the custom runtime: no download, and it can misbehave on request.
TINY_SERVER = '''
import argparse, os, signal, sys, threading, time
from mcp.server.fastmcp import FastMCP

parser = argparse.ArgumentParser()
parser.add_argument("--pidfile")
parser.add_argument("--envfile")
parser.add_argument("--exit-after", type=float)
parser.add_argument("--stubborn", action="store_true", help="ignore SIGTERM and stdin EOF")
opts = parser.parse_args()
if opts.pidfile:
    open(opts.pidfile, "w").write(str(os.getpid()))
if opts.envfile:
    open(opts.envfile, "w").write("\\n".join(sorted(os.environ)))
if opts.exit_after:
    threading.Timer(opts.exit_after, lambda: os._exit(3)).start()
if opts.stubborn:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

mcp = FastMCP("tiny")

@mcp.tool()
def echo(text: str) -> str:
    """Return the text."""
    return text

mcp.run()
if opts.stubborn:
    time.sleep(120)
'''


# Stands in for uv and npm (via the UV and NPM env vars): records each install's cutoff in $FAKE_LOG (`none`
# without one) and npm_config_nodedir in $FAKE_ENV_LOG, fails with $FAKE_FAILURE if set, else resolves only
# as of $FAKE_SOLVES_AT (uv "No solution found", npm ETARGET otherwise) and installs a `fake-server` script.
FAKE_INSTALLER = f"""#!{sys.executable}
import os, sys
from pathlib import Path

args = sys.argv[1:]
if args[0] == "venv":  # uv venv ... DIR
    Path(args[-1], "bin").mkdir(parents=True)
    sys.exit(0)
python = args[0] == "pip"  # uv pip install ... | npm install ...
flag = "--exclude-newer" if python else "--before"
cutoff = args[args.index(flag) + 1] if flag in args else "none"
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(cutoff + "\\n")
if os.environ.get("FAKE_ENV_LOG"):  # what node-gyp would see
    Path(os.environ["FAKE_ENV_LOG"]).write_text(os.environ.get("npm_config_nodedir", "unset"))
if os.environ.get("FAKE_FAILURE"):
    print(os.environ["FAKE_FAILURE"], file=sys.stderr)
    sys.exit(1)
if cutoff != os.environ["FAKE_SOLVES_AT"]:
    if python:
        print("error: No solution found when resolving dependencies:", file=sys.stderr)
        because = "Because there is no version of certifi==2099.1.1 and fake-mcp==1.0.0 depends on it"
        print("  " + because + ", ...", file=sys.stderr)
    else:
        print("npm error code ETARGET\\nnpm error notarget No matching version found for dep@>=2", file=sys.stderr)
    sys.exit(1)
if python:
    exe = Path(args[args.index("--python") + 1]).parent / "fake-server"
else:
    exe = Path(args[args.index("--prefix") + 1], "node_modules", ".bin", "fake-server")
exe.parent.mkdir(parents=True, exist_ok=True)
exe.write_text("#!/bin/sh\\n")
exe.chmod(0o755)
"""


def free_port() -> int:
    """A port free on both 127.0.0.1 and ::1."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s4:
            s4.bind(("127.0.0.1", 0))
            port = s4.getsockname()[1]
            try:
                with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s6:
                    s6.bind(("::1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no port free on both 127.0.0.1 and ::1")


def base_env(home: Path, **extra: str) -> dict[str, str]:
    """The caller's env (CA bundle etc.), the project venv first on PATH, a private MCP_HOME and port.

    Without an MCP_AUTH_TOKEN in ``extra`` it says MCP_AUTH=off, as a server with `auth: false` is deployed
    (the gateway refuses to start with neither).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_") and k != "PORT"}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["MCP_HOME"] = str(home)
    env["PORT"] = str(free_port())
    if "MCP_AUTH_TOKEN" not in extra:
        env["MCP_AUTH"] = "off"
    env.update(extra)
    return env


def run_entrypoint(env: dict[str, str], *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ENTRYPOINT), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@dataclass
class Served:
    """A running entrypoint: its process, port and combined output (read with :meth:`output`)."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    def url(self, host: str = "127.0.0.1", path: str = "/mcp") -> str:
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}{path}"

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout)


@contextlib.contextmanager
def serving(env: dict[str, str], *args: str) -> Iterator[Served]:
    """Start the entrypoint; on exit stop it (SIGTERM, then SIGKILL) so no test leaks a server."""
    with tempfile.NamedTemporaryFile("wb", suffix=".log", delete=False) as log:
        log_path = Path(log.name)
    with log_path.open("wb") as sink:
        process = subprocess.Popen([str(ENTRYPOINT), *args], env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        yield Served(process, int(env["PORT"]), log_path)
    finally:
        stop(process)
        log_path.unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    return True


def wait_for_file(path: Path, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text():
            return path.read_text()
        time.sleep(0.05)
    raise AssertionError(f"{path} was not written within {timeout} s")


def can_unshare_network() -> bool:
    """True when this process may create a network namespace (only loopback: a real offline box)."""
    if not (shutil.which("unshare") and shutil.which("ip")):
        return False
    probe = subprocess.run(
        ["unshare", "-rn", "ip", "link", "set", "lo", "up"], capture_output=True, timeout=10, check=False
    )
    return probe.returncode == 0
