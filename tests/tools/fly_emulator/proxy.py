"""``--proxy-port P``: Fly's edge proxy in front of the machines that ``--run-machines`` runs.

A request whose ``Host`` is ``<app>.fly.dev`` goes to one of that app's started machines, chosen per
request (round robin, as Fly balances HTTP per request, not per connection), so a client's consecutive
requests reach different machines. What Fly's proxy does and catwalk relies on:

- ``fly-force-instance-id: <id>`` sends the request to that machine only; 503 if it is not started.
- A machine answering with ``fly-replay: instance=<id>`` has its answer dropped; the proxy sends the same
  request (method, path, headers, body) to that machine, with ``fly-replay-src: instance=<src>;region=<r>;
  t=<µs>`` added so the target knows it was replayed and from where. ``region=<r>`` replays to a started
  machine of that region; ``elsewhere=true`` to a machine other than the source. A replayed request is not
  replayed again (Fly caps replays); such an answer is a 502.
- A machine that refuses the connection (still booting) is skipped for another one, as Fly does.
- Other hosts get 404; an app with no started machine gets 503.

The proxy buffers the request body (``Content-Length``; a chunked request body is refused with 411) and
streams the answer back as it comes, so server-sent events flow through it.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.tools.fly_emulator.processes import ProcessRunner
from tests.tools.fly_emulator.state import FlyState

APP_DOMAIN = ".fly.dev"
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "content-length"}
)
CONNECT_RETRY_S = 5.0  # how long a named machine (replay, force) may take to accept a connection


def parse_replay(value: str) -> dict[str, str]:
    """``instance=abc;region=iad`` → ``{"instance": "abc", "region": "iad"}`` (Fly's fly-replay fields)."""
    fields: dict[str, str] = {}
    for part in value.replace(",", ";").split(";"):
        key, sep, val = part.strip().partition("=")
        if sep and key.strip():
            fields[key.strip().lower()] = val.strip()
    return fields


class NoMachine(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class FlyProxy:
    """Picks the machine for each request; the HTTP side is ``ProxyHandler``."""

    def __init__(self, state: FlyState, runner: ProcessRunner) -> None:
        self.state = state
        self.runner = runner
        self._counter = itertools.count()
        self.lock = threading.Lock()
        self.log: list[dict[str, Any]] = []  # one row per answered request: app, machine, status, replayed

    def started(self, app: str) -> list[tuple[str, str, int]]:
        """(machine id, region, port) of the app's started machines whose process runs, in a stable order."""
        with self.state.lock:
            machines = sorted(
                (m.id, m.region) for m in self.state.machines.values() if m.app == app and m.state == "started"
            )
        rows = []
        for mid, region in machines:
            info = self.runner.report(mid)
            if info and info.get("running"):
                rows.append((mid, region, int(info["port"])))
        return rows

    def rotation(self, app: str) -> list[tuple[str, str, int]]:
        """The started machines, starting from the next one in turn."""
        machines = self.started(app)
        if not machines:
            raise NoMachine(503, f"app {app} has no started machine")
        start = next(self._counter) % len(machines)
        return machines[start:] + machines[:start]

    def named(self, app: str, machine_id: str) -> tuple[str, str, int]:
        end = time.monotonic() + CONNECT_RETRY_S
        while True:
            for row in self.started(app):
                if row[0] == machine_id:
                    return row
            if time.monotonic() >= end:
                raise NoMachine(503, f"machine {machine_id} of app {app} is not started")
            time.sleep(0.05)

    def record(self, app: str, machine: str, status: int, replayed_from: str | None) -> None:
        with self.lock:
            self.log.append({"app": app, "machine": machine, "status": status, "replayed_from": replayed_from})

    def requests(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(r) for r in self.log]

    def clear(self) -> None:
        with self.lock:
            self.log.clear()

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
        class Bound(ProxyHandler):
            pass

        Bound.proxy = self
        server = ThreadingHTTPServer((host, port), Bound)
        server.daemon_threads = True
        return server


class ProxyHandler(BaseHTTPRequestHandler):
    proxy: FlyProxy
    protocol_version = "HTTP/1.1"
    server_version = "fly-emulator-proxy/1"

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def _error(self, status: int, message: str) -> None:
        data = (message + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self) -> None:
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].lower()
        if not host.endswith(APP_DOMAIN) or host == APP_DOMAIN[1:]:
            self._error(404, f"no app for host {host!r}: the proxy serves <app>{APP_DOMAIN}")
            return
        app = host[: -len(APP_DOMAIN)]
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self._error(411, "the emulator's proxy needs a Content-Length request body")
            self.close_connection = True
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = [(k, v) for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP]
        try:
            forced = self.headers.get("fly-force-instance-id")
            candidates = [self.proxy.named(app, forced.strip())] if forced else self.proxy.rotation(app)
            conn, resp, source = self._first_answer(candidates, headers, body)
            replay = resp.getheader("fly-replay")
            if replay:
                resp.read()
                conn.close()
                target = self._replay_target(app, source, parse_replay(replay))
                src = f"instance={source[0]};region={source[1]};t={int(time.time() * 1e6)}"
                replayed = [*headers, ("fly-replay-src", src)]
                conn, resp, machine = self._first_answer([target], replayed, body)
                if resp.getheader("fly-replay"):
                    resp.read()
                    conn.close()
                    raise NoMachine(502, f"machine {machine[0]} asked to replay a request that was already replayed")
                self._relay(app, conn, resp, machine, source[0])
            else:
                self._relay(app, conn, resp, source, None)
        except NoMachine as exc:
            self.proxy.record(app, "", exc.status, None)
            self._error(exc.status, exc.message)

    def _replay_target(self, app: str, source: tuple[str, str, int], fields: dict[str, str]) -> tuple[str, str, int]:
        if fields.get("instance"):
            return self.proxy.named(app, fields["instance"])
        machines = self.proxy.rotation(app)
        if fields.get("region"):
            machines = [m for m in machines if m[1] == fields["region"]]
        if fields.get("elsewhere", "").lower() == "true":
            machines = [m for m in machines if m[0] != source[0]]
        if not machines:
            raise NoMachine(503, f"no started machine of app {app} to replay to ({fields})")
        return machines[0]

    def _first_answer(
        self, candidates: list[tuple[str, str, int]], headers: list[tuple[str, str]], body: bytes
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse, tuple[str, str, int]]:
        """Send to the first candidate that accepts the connection; a lone candidate gets a few seconds to."""
        end = time.monotonic() + (CONNECT_RETRY_S if len(candidates) == 1 else 0)
        while True:
            for machine in candidates:
                conn = http.client.HTTPConnection("127.0.0.1", machine[2], timeout=300)
                try:
                    conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                    for k, v in headers:
                        conn.putheader(k, v)
                    if body or self.command in ("POST", "PUT", "PATCH"):
                        conn.putheader("Content-Length", str(len(body)))
                    conn.endheaders(body or None)
                except ConnectionRefusedError:
                    conn.close()
                    continue
                try:
                    return conn, conn.getresponse(), machine
                except (OSError, http.client.HTTPException) as exc:
                    conn.close()
                    raise NoMachine(502, f"machine {machine[0]} gave no answer: {exc}") from exc
            if time.monotonic() >= end:
                names = ", ".join(m[0] for m in candidates)
                raise NoMachine(503, f"no machine accepted the connection ({names})")
            time.sleep(0.05)

    def _relay(
        self,
        app: str,
        conn: http.client.HTTPConnection,
        resp: http.client.HTTPResponse,
        machine: tuple[str, str, int],
        replayed_from: str | None,
    ) -> None:
        self.proxy.record(app, machine[0], resp.status, replayed_from)
        try:
            self.send_response(resp.status, resp.reason)
            for k, v in resp.getheaders():
                if k.lower() not in HOP_BY_HOP:
                    self.send_header(k, v)
            length = resp.getheader("Content-Length")
            no_body = self.command == "HEAD" or resp.status in (204, 304)
            if length is not None or no_body:
                data = b"" if no_body else resp.read()
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            while True:
                chunk = resp.read1(65536)
                if not chunk:
                    break
                self.wfile.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True  # the client went away mid-stream
        finally:
            with contextlib.suppress(OSError):
                conn.close()
