"""The gateway fails closed and holds under abuse: served as in the image, probed on loopback with raw sockets.

Bounded: at most a few hundred connections and a few seconds per test, all on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from catwalk_runtime.mcp_http import MAX_UNAUTHENTICATED
from tests.tools.entrypoint_env import DEPLOY, ENTRYPOINT, base_env, serving
from tests.tools.processes import stop

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
RELAY_SERVER = FIXTURES / "relay_server.py"
TOKEN = "abuse-token-" + "7" * 31
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
CLIENT = {"name": "t", "version": "0"}
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": CLIENT}}  # fmt: skip
HEAD_4MB = (
    b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b"Accept: application/json, text/event-stream\r\nContent-Length: 4000000\r\n\r\n"
)


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    return base_env(
        tmp_path / "home", MCP_RUNTIME="custom", MCP_COMMAND=f"{sys.executable} {RELAY_SERVER}",
        MCP_HOST="127.0.0.1", **extra,
    )  # fmt: skip


def wait_until_serving(served, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(served.url(path="/status"), timeout=2).status_code == 200:
                return
        assert time.monotonic() < deadline and served.process.poll() is None, served.output()
        time.sleep(0.05)


@contextlib.contextmanager
def guarded(tmp_path: Path, **extra: str):
    with serving(env_for(tmp_path, MCP_AUTH_TOKEN=TOKEN, **extra)) as served:
        wait_until_serving(served)
        yield served


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def read_response(sock: socket.socket, timeout: float = 5) -> tuple[bytes, bool]:
    """(what the gateway sent, whether it then closed the connection)."""
    sock.settimeout(timeout)
    data = b""
    with contextlib.suppress(TimeoutError, ConnectionResetError):
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return data, True
            data += chunk
    return data, False


def test_without_a_token_or_the_opt_out_the_gateway_exits_at_once_naming_the_secret(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    env.pop("MCP_AUTH", None)
    env.pop("MCP_AUTH_TOKEN", None)
    started = time.monotonic()
    with serving(env) as served:
        code = served.wait(10)
        elapsed = time.monotonic() - started
        output = served.output()
        with socket.socket() as probe:
            listening = probe.connect_ex(("127.0.0.1", served.port)) == 0
    assert code != 0 and elapsed < 2.0, (code, elapsed, output)
    assert "MCP_AUTH_TOKEN" in output and "MCP_AUTH=off" in output, output
    assert not listening


def test_the_explicit_opt_out_serves_without_a_token(tmp_path: Path) -> None:
    with serving(env_for(tmp_path, MCP_AUTH="off")) as served:
        wait_until_serving(served)
        answer = httpx.post(served.url(), json=INIT, headers=ACCEPT, timeout=10)
        assert answer.status_code == 200, answer.text
        assert "auth OFF" in served.output()


def test_an_unauthenticated_request_is_refused_on_its_head_before_its_body(tmp_path: Path) -> None:
    with guarded(tmp_path) as served, socket.create_connection(("127.0.0.1", served.port)) as sock:
        started = time.monotonic()
        sock.sendall(HEAD_4MB + b'{"jsonrpc"')  # 10 of the 4 MB declared
        data, closed = read_response(sock)
        elapsed = time.monotonic() - started
    head = data.split(b"\r\n\r\n", 1)[0].lower()
    assert head.startswith(b"http/1.1 401"), data[:200]
    assert b"connection: close" in head and b"www-authenticate: bearer" in head
    assert closed and elapsed < 0.1, f"401 after {elapsed * 1000:.0f} ms, closed: {closed}"


def test_a_request_with_both_content_length_and_transfer_encoding_gets_400_and_the_connection_closes(
    tmp_path: Path,
) -> None:
    smuggle = (
        b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
        b"Content-Type: application/json\r\nAccept: application/json\r\n"
        b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /status HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    with guarded(tmp_path) as served, socket.create_connection(("127.0.0.1", served.port)) as sock:
        sock.sendall(smuggle)
        data, closed = read_response(sock)
    assert data.startswith(b"HTTP/1.1 400"), data[:200]
    assert data.count(b"HTTP/1.1") == 1, "the request after the ambiguous one must not be answered"
    assert closed


def test_four_hundred_unauthenticated_connections_cost_little_and_the_others_are_served(tmp_path: Path) -> None:
    with guarded(tmp_path) as served:
        pid = served.process.pid
        idle = rss_kb(pid)
        fast: list[float] = []
        socks: list[socket.socket] = []
        try:
            # Declared 4 MB, 10 bytes sent: each is refused on its head. In waves below the unauthenticated
            # cap, so that none of them is the oldest one the cap drops (its own test covers that).
            wave = 100
            assert wave < MAX_UNAUTHENTICATED
            for _ in range(400 // wave):
                for _ in range(wave):
                    sock = socket.create_connection(("127.0.0.1", served.port))
                    sock.sendall(HEAD_4MB + b'{"jsonrpc"')
                    socks.append(sock)
                for sock in socks:
                    started = time.monotonic()
                    data, _ = read_response(sock, timeout=5)
                    fast.append(time.monotonic() - started)
                    assert data.startswith(b"HTTP/1.1 401"), data[:100]
                    sock.close()
                socks.clear()
            assert len(fast) == 400
            # And 400 that never finish their head (slowloris): held by no more than the cap allows.
            for _ in range(400):
                sock = socket.socket()
                sock.settimeout(5)
                with contextlib.suppress(OSError):
                    sock.connect(("127.0.0.1", served.port))
                    sock.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4000000\r\n")
                socks.append(sock)
            time.sleep(0.5)
            busy = rss_kb(pid)
            status = httpx.get(served.url(path="/status"), timeout=5)
            answer = httpx.post(served.url(), json=INIT, headers={**AUTH, **ACCEPT}, timeout=5)
        finally:
            for sock in socks:
                sock.close()
    assert status.status_code == 200 and answer.status_code == 200, (status.text, answer.text)
    assert (busy - idle) < 20 * 1024, f"RSS idle {idle} kB, under abuse {busy} kB"
    print(f"\nRSS idle {idle / 1024:.1f} MB, with 400 slow heads {busy / 1024:.1f} MB; 401 slowest {max(fast):.3f} s")


def image_entrypoint() -> list[str]:
    """The Dockerfile's ENTRYPOINT, with the image's paths mapped onto this checkout and the local machine."""
    line = next(li for li in (DEPLOY / "Dockerfile").read_text().splitlines() if li.startswith("ENTRYPOINT"))
    argv = json.loads(line.removeprefix("ENTRYPOINT"))
    mapped = []
    for word in argv:
        if word.startswith("/app/"):
            mapped.append(str(DEPLOY / word.removeprefix("/app/")))
        elif word.startswith("/"):
            found = shutil.which(Path(word).name)
            if found is None:
                pytest.skip(f"{word} is not installed here")
            mapped.append(found)
        else:
            mapped.append(word)
    assert mapped[-1] == str(ENTRYPOINT) or str(ENTRYPOINT) in mapped
    return mapped


AS_ANOTHER_USER = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root to run as another user"
)
# Stands in for uv at a boot install: hunts for the token as a dependency's install script could, then fails.
HUNTING_UV = """#!{python}
import json, os, sys
sys.path.insert(0, {fixtures!r})
from token_hunter import hunt

if sys.argv[1] == "venv":
    os.makedirs(os.path.join(sys.argv[-1], "bin"))
    sys.exit(0)
marker = open({marker!r}, "rb").read().strip()
with open({report!r} + ".part", "w") as out:
    json.dump({{"found": hunt(marker, {{{marker!r}}}), "uid": os.getuid()}}, out)
os.replace({report!r} + ".part", {report!r})
sys.exit(1)
"""


@contextlib.contextmanager
def hunting_ground():
    """A world-writable directory with a token whose marker (a prefix) sits in a file, for a hunter to search."""
    top = Path(tempfile.mkdtemp(prefix="catwalk-hunt-"))
    try:
        top.chmod(0o777)
        marker = secrets.token_hex(12)
        (top / "marker").write_text(marker)
        (top / "marker").chmod(0o644)
        (top / "home").mkdir()
        (top / "home").chmod(0o777)
        yield top, marker + secrets.token_hex(12)
    finally:
        shutil.rmtree(top, ignore_errors=True)


def start_unprivileged(top: Path, **extra: str) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    """The image's ENTRYPOINT as user 65534, with the token in the environment it starts with."""
    home = top / "home"
    env = base_env(home, MCP_HOST="127.0.0.1", **extra)
    env.pop("MCP_AUTH", None)
    env["HOME"] = str(home)
    python = shutil.which("python3", path="/usr/bin:/bin") or sys.executable  # one the other user may run
    if python != sys.executable:  # the project venv's interpreter may sit where the other user cannot go
        import h11

        paths = os.pathsep.join([str(Path(h11.__file__).parents[1]), str(DEPLOY)])  # as the image's .pth does
        env.update(MCP_GATEWAY_PYTHON=python, PYTHONPATH=paths, MCP_INSTALL_ENV="PYTHONPATH")
    unprivileged = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"]
    process = subprocess.Popen(
        [*unprivileged, *image_entrypoint()], env=env, cwd=home, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    return process, env


def wait_for_report(process: subprocess.Popen[bytes], report: Path, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while not report.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            output = process.stdout.read().decode() if process.stdout else ""
            pytest.fail(f"no hunt report (exit {process.poll()}):\n{output}")
        time.sleep(0.1)
    return json.loads(report.read_text())


@AS_ANOTHER_USER
def test_a_server_under_the_gateway_cannot_find_the_token_anywhere() -> None:
    with hunting_ground() as (top, token):
        python = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
        command = f"{python} {FIXTURES / 'token_hunter.py'} {top / 'marker'} {top / 'report.json'}"
        process, env = start_unprivileged(top, MCP_RUNTIME="custom", MCP_COMMAND=command, MCP_AUTH_TOKEN=token)
        try:
            result = wait_for_report(process, top / "report.json")
            port = int(env["PORT"])
            deadline = time.monotonic() + 30
            while True:  # and the gateway serves with that token
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"http://127.0.0.1:{port}/status", timeout=2).status_code == 200:
                        break
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.05)
            headers = {"Authorization": f"Bearer {token}", **ACCEPT}
            assert httpx.post(f"http://127.0.0.1:{port}/mcp", json=INIT, headers=headers, timeout=10).status_code == 200
        finally:
            stop(process)
    assert result["uid"] == 65534
    assert result["found"] == [], f"the server found the token in {result['found']}"


@AS_ANOTHER_USER
def test_an_install_at_boot_cannot_find_the_token_anywhere() -> None:
    # An image that does not bake its server installs at boot: a dependency's install script runs then.
    with hunting_ground() as (top, token):
        python = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
        uv = top / "uv"
        uv.write_text(
            HUNTING_UV.format(python=python, fixtures=str(FIXTURES), marker=str(top / "marker"),
                              report=str(top / "report.json"))
        )  # fmt: skip
        uv.chmod(0o755)
        process, _ = start_unprivileged(
            top, MCP_RUNTIME="python", MCP_PACKAGE="mcp-server-time==1.0.0", UV=str(uv), MCP_AUTH_TOKEN=token
        )
        try:
            result = wait_for_report(process, top / "report.json")
            assert process.wait(30) != 0  # the install failed, so the server does not start
        finally:
            stop(process)
    assert result["uid"] == 65534
    assert result["found"] == [], f"an install script found the token in {result['found']}"
