"""The running gateway: one server process, its HTTP listeners, start-up and the stop sequence.

Imported by ``serve`` only once the server is spawned and asked to initialize, so the server boots while
asyncio and h11 load. The gateway initializes the server once, itself, and answers each client's
``initialize`` from that result. The server's death ends the gateway with a non-zero code (Fly then restarts the
machine), and each request still in flight is answered with a JSON-RPC error saying why. Why catwalk has
its own gateway: docs/gateway-replaces-mcp-proxy.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import threading
from typing import Any

from . import mcp_http, relay
from .auth import BearerAuth
from .supervisor import STOP_DEADLINE_S, STOP_SIGNALS, ServerProcess, exit_code

log = logging.getLogger("catwalk.gateway")

INIT_ID = 0  # the upstream id of the gateway's own initialize request
SWEEP_S = 60  # how often idle sessions are looked for
DRAIN_S = 1.2  # on a stop request, how long requests in flight may take to be answered (< STOP_DEADLINE_S)
QUIET_S = 0.3  # ... and how long without one before it stops serving


def rpc_line(message: dict[str, Any]) -> bytes:
    return relay.encode(message) + b"\n"


class Gateway:
    """Server pipes <-> relay <-> HTTP router, from the server's initialize answer to the last request."""

    def __init__(
        self, process: ServerProcess, sockets: list[socket.socket], hosts: list[str], port: int, token: str | None,
        start_timeout: float, early_stops: list[int] = (),  # type: ignore[assignment]
        auth: Any = None,
    ) -> None:  # fmt: skip
        self.process, self.sockets, self.hosts, self.port = process, sockets, hosts, port
        self.token, self.start_timeout = token, start_timeout
        self.auth = auth  # an authenticator other than the static token's (oauth.OAuthAuth), built by serve
        self.early_stops = early_stops
        self.code = 0
        self.stopping = False
        self.router: mcp_http.Router | None = None  # once serving
        self.lines = relay.Lines()  # the server's stdout, cut into messages
        self.why = "the gateway is stopping"  # set by finish()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        self.done = loop.create_future()  # set to the exit code: a stop request, the server's end, a failure
        self.initialized = loop.create_future()  # the server's initialize result
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, self.stop_requested, sig)
        mcp_http.quiet_repeats(loop)
        for signum in self.early_stops:  # noted while starting, before the loop took the signals over
            self.stop_requested(signum)
        loop.add_reader(self.process.stdout, self.on_stdout)
        if self.process.stdin >= 0 and self.process.pending:
            loop.add_writer(self.process.stdin, self.on_stdin)
        watcher = asyncio.ensure_future(self.watch_server())
        try:
            await self.start_and_serve()
        finally:
            watcher.cancel()
            for sock in self.sockets:
                sock.close()
            self.stopping = True
            await self.process.stop()
        return self.code

    async def start_and_serve(self) -> None:
        waiting = await asyncio.wait({self.initialized, self.done}, timeout=self.start_timeout,
                                     return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
        if not waiting[0]:
            log.error("Error: the MCP server did not answer initialize within %.0f s", self.start_timeout)
            self.code = 1
            return
        if self.done.done():
            self.code = self.done.result()
            return
        answer = self.initialized.result()
        if "result" not in answer or not isinstance(answer["result"], dict):
            log.error("Error: the MCP server failed during initialize: %s", json.dumps(answer.get("error"))[:500])
            self.code = 1
            return
        self.to_server(relay.INITIALIZED)
        auth = self.auth or (BearerAuth(self.token) if self.token is not None else None)
        # MCP_HOST=loopback's addresses (no ipaddress import on the serve path); any other spelling is not local.
        local_only = auth is None and all(host == "::1" or host.startswith("127.") for host in self.hosts)
        router = self.router = mcp_http.Router(
            relay.Relay(answer["result"]), self.to_server, auth, local_only, backlog=lambda: len(self.process.pending)
        )
        servers = [
            await asyncio.start_server(lambda r, w: mcp_http.serve_connection(router, r, w), sock=sock)
            for sock in self.sockets
        ]
        if self.token is None:
            log.warning("MCP_AUTH=off: /mcp and /sse are open to anyone who can connect")
        info = answer["result"].get("serverInfo") or {}
        names = ", ".join(f"{h}:{self.port}" if ":" not in h else f"[{h}]:{self.port}" for h in self.hosts)
        log.info(
            "Serving %s %s on %s (/mcp, /sse, /status; auth %s)",
            info.get("name", "?"),
            info.get("version", ""),
            names,
            ("OAuth" if self.auth is not None else "required") if auth is not None else "OFF",
        )
        sweeper = asyncio.ensure_future(self.sweep_sessions(router))
        try:
            self.code = await self.done
        finally:
            sweeper.cancel()
            if self.stopping and self.code == 0:
                await self.drain(router)
            for server in servers:
                server.close()
            router.deliver(router.relay.abandon(self.why))  # no client waits for ever
            router.close_streams()  # open SSE responses end; their connections then close
            deadline = asyncio.get_running_loop().time() + 0.3
            while router.streams and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.01)

    async def drain(self, router: mcp_http.Router) -> None:
        """On a stop request, keep serving until no request has been in flight for QUIET_S, within DRAIN_S of the
        STOP_DEADLINE_S the stop allows: the requests the server is working on get their answers, and so does one
        Fly's proxy sent just before it saw the machine stopping (closing the socket at once would reset it).
        An update or a scale-down then costs no client a call."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DRAIN_S
        quiet_since = loop.time()
        while loop.time() < deadline and loop.time() - quiet_since < QUIET_S:
            if router.relay.in_flight():
                quiet_since = loop.time()
            await asyncio.sleep(0.01)

    async def sweep_sessions(self, router: mcp_http.Router) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(SWEEP_S)
            router.expire_idle(loop.time())

    # --- server pipes ----------------------------------------------------------------------------------

    def to_server(self, message: dict[str, Any]) -> None:
        had = bool(self.process.pending)
        self.process.write(rpc_line(message))
        if self.process.pending and not had and self.process.stdin >= 0:
            asyncio.get_running_loop().add_writer(self.process.stdin, self.on_stdin)

    def on_stdin(self) -> None:
        fd = self.process.stdin
        self.process.write(b"")
        if not self.process.pending or self.process.stdin < 0:
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_writer(fd)

    def on_stdout(self) -> bool:
        """Relay what the server wrote; False once nothing is left to read now."""
        try:
            chunk = os.read(self.process.stdout, 1 << 16)
        except BlockingIOError:
            return False
        if not chunk:  # the server closed its stdout: it is ending (the watcher reports its exit)
            asyncio.get_running_loop().remove_reader(self.process.stdout)
            asyncio.get_running_loop().call_later(1.0, self.finish, 1, "the MCP server closed its stdout")
            return False
        for line in self.lines.feed(chunk):
            if isinstance(line, bytes):
                if line.strip():
                    self.on_line(line)
            else:
                log.warning("ignoring a line of more than %d MiB on the server's stdout", self.lines.limit >> 20)
                if self.router is not None:
                    self.router.deliver(self.router.relay.too_long(line))
        return True

    def on_line(self, line: bytes) -> None:
        try:
            parsed = json.loads(line)
        except ValueError:
            parsed = None
        messages = parsed if isinstance(parsed, list) and parsed else [parsed]
        if any(relay.kind(m) is None for m in messages):
            log.warning("ignoring a non-JSON-RPC line on the server's stdout: %r", line[:200])
            return
        for message in messages:
            if self.router is not None:
                try:
                    self.router.from_server(message)
                except Exception:  # one message the relay cannot route must not stop the others
                    log.exception("could not relay a message from the server")
            elif message.get("id") == INIT_ID and relay.kind(message) == "response":
                if not self.initialized.done():
                    self.initialized.set_result(message)
            elif relay.kind(message) == "request":  # e.g. a ping before it answered: answered like later
                for send in relay.Relay({}).from_server(message):
                    self.to_server(send.message)

    async def watch_server(self) -> None:
        code = await self.process.wait()
        if not self.stopping:
            with contextlib.suppress(OSError):  # its last answers are relayed before the rest are failed
                for _ in range(256):  # bounded: a grandchild may still be writing to the pipe
                    if self.process.stdout < 0 or not self.on_stdout():
                        break
            self.finish(exit_code(code), f"the MCP server process exited with code {code}")

    def finish(self, code: int, why: str) -> None:
        """Stop serving with exit ``code``; ``why`` is logged (unless stopping on request) and is the error
        each request still in flight is answered with."""
        if not self.done.done():
            self.why = why
            if not self.stopping:
                log.error("Error: %s; stopping", why)
            self.done.set_result(code)

    # --- stopping ----------------------------------------------------------------------------------------

    def stop_requested(self, signum: int) -> None:
        if self.stopping:
            self.process.hard_stop(self.code)
        log.info("%s received: stopping the MCP server", signal.Signals(signum).name)
        self.stopping = True
        timer = threading.Timer(STOP_DEADLINE_S, lambda: self.process.hard_stop(self.code))
        timer.daemon = True
        timer.start()
        self.finish(0, "the gateway is stopping")
