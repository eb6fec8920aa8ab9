"""Round trip and throughput in front of one stdio server: catwalk's gateway against its peers, one run.

Modes, each serving the same pinned server-everything to the same client on loopback:

* ``native``: the server's own streamable HTTP mode (``mcp-server-everything streamableHttp``), the reference;
* ``catwalk``: deploy/entrypoint.sh (custom runtime) running the server over stdio behind the gateway;
* ``supergateway``: supergateway 4.0 (``--outputTransport streamableHttp``) over the same stdio server;
* ``mcp-proxy``: mcp-proxy 0.13 (PyPI) over the same stdio server.

Per mode and concurrency (1, 10, 50 clients): each client opens its own MCP session on one kept-alive HTTP/1.1
connection (initialize + initialized), then calls ``echo`` ``--calls`` times in a row; every round trip is
timed (POST written to the response's end). Reported: p50/p99 round trip, calls/s over the whole wave, and the
front process's resident memory after the waves (the gateway's own; for ``native`` the server's). Bounded: a
wave stops at ``--wave-timeout`` s. Every process listens on 127.0.0.1 only.

Run by hand: ``.venv/bin/python -m bench.latency [--modes catwalk,native] [--calls 200]``. Installs its pinned
tools once (tests/tools/sdk_clients.py's cache) and writes bench/results/latency.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import anyio
import httpx

from bench.image_runtime import image_node_bin
from bench.served import stop
from tests.tools import sdk_clients

ROOT = Path(__file__).resolve().parents[1]
ENTRYPOINT = ROOT / "deploy" / "entrypoint.sh"
RESULTS = ROOT / "bench" / "results"
SUPERGATEWAY = "supergateway@4.0.0"
MCP_PROXY = "mcp-proxy==0.13.0"
MODES = ("native", "catwalk", "supergateway", "mcp-proxy")
CONCURRENCY = (1, 10, 50)
TOKEN = "bench-token-0"
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(mode: str, port: int, workdir: Path) -> tuple[subprocess.Popen, str, dict[str, str]]:
    """The mode's process (its own process group), its MCP URL and the headers a client sends."""
    server = str(sdk_clients.everything_bin())
    env = {**os.environ, "PATH": f"{image_node_bin()}{os.pathsep}{os.environ['PATH']}"}
    log = (workdir / f"{mode}.log").open("wb")
    headers: dict[str, str] = {}
    if mode == "native":
        argv, url = [server, "streamableHttp"], f"http://127.0.0.1:{port}/mcp"
        env["PORT"] = str(port)
    elif mode == "catwalk":
        argv, url = [str(ENTRYPOINT)], f"http://127.0.0.1:{port}/mcp"
        env = {k: v for k, v in env.items() if not k.startswith("MCP_")}
        env.update(PORT=str(port), MCP_HOME=str(workdir / "home"), MCP_HOST="loopback", MCP_RUNTIME="custom",
                   MCP_COMMAND=f"{server} stdio", MCP_AUTH_TOKEN=TOKEN)  # fmt: skip
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
        headers["Authorization"] = f"Bearer {TOKEN}"
    elif mode == "supergateway":
        bin_ = sdk_clients.npm_prefix(SUPERGATEWAY) / "node_modules" / ".bin" / "supergateway"
        argv = [str(bin_), "--stdio", f"{server} stdio", "--outputTransport", "streamableHttp", "--port", str(port),
                "--stateful", "--logLevel", "none"]  # fmt: skip
        url = f"http://127.0.0.1:{port}/mcp"
    elif mode == "mcp-proxy":
        python = sdk_clients.python_env(MCP_PROXY)
        argv = [str(python.parent / "mcp-proxy"), "--host", "127.0.0.1", "--port", str(port), server, "stdio"]
        url = f"http://127.0.0.1:{port}/mcp"
    else:
        raise SystemExit(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
    process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return process, url, headers


def rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def front_pid(process: subprocess.Popen, mode: str) -> int:
    """The process that serves HTTP: the entrypoint execs the gateway, the others are started directly."""
    return process.pid


def _rpc(method: str, rid: int | None, params: dict | None = None) -> dict:
    body: dict = {"jsonrpc": "2.0", "method": method}
    if rid is not None:
        body["id"] = rid
    if params is not None:
        body["params"] = params
    return body


def _answer(response: httpx.Response) -> dict:
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        for line in response.text.splitlines():
            if line.startswith("data:") and '"id"' in line:
                return json.loads(line[5:])
        raise RuntimeError(f"no answer in the event stream: {response.text[:200]}")
    return response.json()


def client_for(auth: dict[str, str]) -> httpx.AsyncClient:
    """One kept-alive connection with Nagle off on the client's side, so only the server's side is measured."""
    nodelay = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
    transport = httpx.AsyncHTTPTransport(socket_options=nodelay, limits=httpx.Limits(max_connections=1))
    return httpx.AsyncClient(headers=auth, timeout=30, transport=transport)


async def session(client: httpx.AsyncClient, url: str) -> dict[str, str]:
    init = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}
    response = await client.post(url, json=_rpc("initialize", 0, init), headers=ACCEPT)
    response.raise_for_status()
    headers = dict(ACCEPT, **{"mcp-protocol-version": "2025-06-18"})
    if response.headers.get("mcp-session-id"):
        headers["mcp-session-id"] = response.headers["mcp-session-id"]
    await client.post(url, json=_rpc("notifications/initialized", None), headers=headers)
    return headers


async def wave(url: str, auth: dict[str, str], clients: int, calls: int, timeout: float) -> dict:
    """``clients`` sessions calling echo ``calls`` times each, at once; round trips in ms."""
    times: list[float] = []
    errors = 0

    async def one(index: int) -> None:
        nonlocal errors
        async with client_for(auth) as client:
            headers = await session(client, url)
            for n in range(calls):
                body = _rpc("tools/call", n + 1, {"name": "echo", "arguments": {"message": f"c{index} n{n}"}})
                started = time.perf_counter()
                response = await client.post(url, json=body, headers=headers)
                answer = _answer(response)
                times.append((time.perf_counter() - started) * 1000)
                if "result" not in answer:
                    errors += 1

    started = time.perf_counter()
    with anyio.move_on_after(timeout) as scope:
        async with anyio.create_task_group() as group:
            for index in range(clients):
                group.start_soon(one, index)
    wall = time.perf_counter() - started
    ordered = sorted(times)
    return {
        "clients": clients,
        "calls": len(times),
        "errors": errors,
        "timed_out": scope.cancelled_caught,
        "p50_ms": round(statistics.median(ordered), 3) if ordered else None,
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 3) if ordered else None,
        "calls_per_s": round(len(times) / wall, 1) if wall else None,
    }


async def ready(url: str, auth: dict[str, str], process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(headers=auth, timeout=5) as client:
        while True:
            try:
                await session(client, url)
                return
            except (httpx.HTTPError, RuntimeError, ValueError):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"{url} did not answer (exit {process.poll()})") from None
                await anyio.sleep(0.2)


def measure(mode: str, calls: int, wave_timeout: float, workdir: Path) -> dict:
    port = free_port()
    process, url, auth = start(mode, port, workdir)
    try:
        anyio.run(ready, url, auth, process)
        waves = []
        for clients in CONCURRENCY:
            per_client = calls if clients == 1 else max(20, calls // clients * 5)
            waves.append(anyio.run(wave, url, auth, clients, per_client, wave_timeout))
        return {"mode": mode, "waves": waves, "rss_kb": rss_kb(front_pid(process, mode))}
    finally:
        stop(process)


def markdown(report: dict) -> str:
    lines = [
        "# Round trip in front of one stdio server",
        "",
        f"{report['date']}, server-everything {sdk_clients.EVERYTHING.rsplit('@', 1)[1]}, `echo` over one kept-alive "
        f"HTTP/1.1 connection per client, {report['calls']} calls for one client; loopback. catwalk {report['rev']}.",
        "",
        "| mode | clients | p50 ms | p99 ms | calls/s | errors | RSS MB |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in report["modes"]:
        rss = f"{row['rss_kb'] / 1024:.1f}" if row.get("rss_kb") else "?"
        for w in row["waves"]:
            timed = " (timed out)" if w["timed_out"] else ""
            lines.append(f"| {row['mode']} | {w['clients']} | {w['p50_ms']} | {w['p99_ms']} | {w['calls_per_s']}"
                         f"{timed} | {w['errors']} | {rss} |")  # fmt: skip
    first = {row["mode"]: row["waves"][0] for row in report["modes"] if row["waves"] and row["waves"][0]["p50_ms"]}
    if "native" in first:
        lines += ["", "p50 over the server's own streamable HTTP, one client:"]
        base = first["native"]["p50_ms"]
        lines += [f"- {mode}: {wave['p50_ms'] - base:+.3f} ms" for mode, wave in first.items() if mode != "native"]
    if "catwalk" in first:
        ours = first["catwalk"]
        lines += ["", "catwalk against each, one client (p50 ratio, < 1 is faster; calls/s ratio, > 1 is more):"]
        lines += [f"- {mode}: p50 {ours['p50_ms'] / wave['p50_ms']:.2f}×, calls/s "
                  f"{ours['calls_per_s'] / wave['calls_per_s']:.2f}×" for mode, wave in first.items()
                  if mode != "catwalk"]  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--wave-timeout", type=float, default=120.0)
    parser.add_argument("--out", default="latency")
    args = parser.parse_args(argv)
    workdir = Path(os.environ.get("TMPDIR", "/tmp")) / f"catwalk-latency-{os.getpid()}"
    workdir.mkdir(parents=True)
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout
    report = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "rev": rev.strip(),
        "calls": args.calls,
        "modes": [],
    }
    try:
        for mode in args.modes.split(","):
            print(f"{mode}…", file=sys.stderr, flush=True)
            report["modes"].append(measure(mode, args.calls, args.wave_timeout, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / f"{args.out}.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
