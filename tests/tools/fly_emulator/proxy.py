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
- A replay whose target cannot be reached within its ``timeout`` (``5s``, ``800ms``; default 5 s) — destroyed,
  stopped without autostart, or not accepting connections — is a 503, unless it says ``fallback=force_self``
  (or ``prefer_self``): then the request goes back to the machine that asked for the replay, with
  ``fly-replay-failed: instance=<target>;reason=<why>`` added, and is not replayed again.
- Autostart: a request for an app with no started machine, or a replay to a stopped machine, starts a stopped
  machine whose service has ``autostart`` and waits for it. Fly also starts machines when the running ones are
  over their load limits; the emulator does not.
- Autostop (``--autostop-after S``, off unless set): a started machine whose service has ``autostop`` (stop or
  suspend; the emulator stops) and that has had no request in flight for S seconds is stopped, keeping the
  service's ``min_machines_running`` started per app. Fly looks every few minutes; tests set seconds.
- Nearest region: Fly sends a client to the region nearest to it; here the proxy's ``region`` (``--proxy-region``)
  is where the clients are: its machines take the requests while one is started, others only when none is.
- A machine that refuses the connection (still booting, or stopping) is skipped for another one, as Fly does.
- Other hosts get 404; an app with no started machine (and none to autostart) gets 503.
- ``app_url(app)`` (``GET /_emulator/proxy/apps/<app>``) opens a loopback port of the proxy's own for one app,
  where every request is for that app whatever its ``Host``: a plain URL (the harness's ``local_url``) that
  reaches the app's machines exactly as ``<app>.fly.dev`` does.

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
from tests.tools.fly_emulator.state import ApiError, FlyState

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


Machine = tuple[str, str, int]  # (machine id, region, port of its process)


def parse_duration(value: str | None, default: float) -> float:
    """Fly's duration strings (``10s``, ``800ms``, ``1m``) in seconds; ``default`` when absent or unreadable."""
    text = (value or "").strip().strip('"').lower()
    for suffix, scale in (("ms", 0.001), ("s", 1.0), ("m", 60.0)):
        if text.endswith(suffix):
            try:
                return float(text[: -len(suffix)]) * scale
            except ValueError:
                return default
    return default


def service_of(config: dict[str, Any]) -> dict[str, Any]:
    services = config.get("services") or []
    return services[0] if services and isinstance(services[0], dict) else {}


def autostops(service: dict[str, Any]) -> bool:
    return service.get("autostop") in (True, "stop", "suspend")


class FlyProxy:
    """Picks the machine for each request, starts and stops machines on demand; the HTTP side is ``ProxyHandler``."""

    def __init__(
        self, state: FlyState, runner: ProcessRunner, *, region: str | None = None, autostop_after: float | None = None
    ) -> None:
        self.state = state
        self.runner = runner
        self.region = region
        self.autostop_after = autostop_after
        self._counter = itertools.count()
        self.lock = threading.Lock()
        self.log: list[dict[str, Any]] = []  # one row per answered request: app, machine, status, replayed_from
        self.actions: list[dict[str, Any]] = []  # machines the proxy started (autostart) or stopped (autostop)
        self._busy: dict[str, int] = {}  # machine id -> requests in flight through the proxy
        self._last: dict[tuple[str, int], float] = {}  # (machine id, pid) -> when it last finished a request
        self._closed = threading.Event()
        self._autostopper: threading.Thread | None = None
        self._app_servers: dict[str, ThreadingHTTPServer] = {}

    def started(self, app: str) -> list[Machine]:
        """The app's started machines whose process runs, in a stable order."""
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

    def rotation(self, app: str) -> list[Machine]:
        """The started machines, the nearest region's first, each group starting from the next one in turn;
        with none started, a machine autostart brings up."""
        machines = self.started(app)
        if not machines:
            woken = self.autostart(app, None, time.monotonic() + CONNECT_RETRY_S)
            if woken is None:
                raise NoMachine(503, f"app {app} has no started machine")
            return [woken]
        start = next(self._counter)
        near = [m for m in machines if m[1] == self.region] or machines
        far = [m for m in machines if m not in near]
        return near[start % len(near) :] + near[: start % len(near)] + far

    def named(self, app: str, machine_id: str, deadline: float | None = None) -> Machine:
        end = time.monotonic() + CONNECT_RETRY_S if deadline is None else deadline
        while True:
            for row in self.started(app):
                if row[0] == machine_id:
                    return row
            if time.monotonic() >= end:
                raise NoMachine(503, f"machine {machine_id} of app {app} is not started")
            time.sleep(0.05)

    def autostart(self, app: str, machine_id: str | None, deadline: float) -> Machine | None:
        """Start ``machine_id`` (or any stopped machine of the app) when its service has autostart, and wait
        until its process runs; None if there is no such machine or it does not come up by ``deadline``."""
        with self.state.lock:
            stopped = [
                m
                for m in self.state.machines.values()
                if m.app == app
                and (machine_id is None or m.id == machine_id)
                and m.state in ("stopped", "suspended", "starting", "started")
                and (m.state in ("starting", "started") or service_of(m.config).get("autostart"))
            ]
            stopped.sort(key=lambda m: (m.region != self.region, m.id))
        if not stopped:
            return None
        target = stopped[0]
        if target.state in ("stopped", "suspended"):
            try:
                self.state.start_machine(app, target.id, None)
            except ApiError:  # leased by a deploy, or gone meanwhile: not ours to start
                return None
            self.note_action(app, target.id, "autostart")
        try:
            return self.named(app, target.id, deadline)
        except NoMachine:
            return None

    def status_of(self, app: str, machine_id: str) -> str | None:
        with self.state.lock:
            m = self.state.machines.get(machine_id)
            return m.state if m is not None and m.app == app else None

    # -- bookkeeping -----------------------------------------------------------------------------------

    def busy(self, machine_id: str, delta: int) -> None:
        with self.lock:
            self._busy[machine_id] = self._busy.get(machine_id, 0) + delta
            if delta < 0:
                info = self.runner.report(machine_id) or {}
                self._last[machine_id, int(info.get("pid") or 0)] = time.monotonic()

    def note_action(self, app: str, machine_id: str, action: str) -> None:
        with self.lock:
            self.actions.append({"app": app, "machine": machine_id, "action": action, "time": time.time()})

    def record(self, app: str, machine: str, status: int, replayed_from: str | None, fallback: bool = False) -> None:
        with self.lock:
            row = {"app": app, "machine": machine, "status": status, "replayed_from": replayed_from}
            self.log.append({**row, "fallback": fallback})

    def requests(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(r) for r in self.log]

    def action_log(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(r) for r in self.actions]

    def clear(self) -> None:
        with self.lock:
            self.log.clear()
            self.actions.clear()

    # -- autostop --------------------------------------------------------------------------------------

    def autostop_once(self) -> list[str]:
        """Stop the machines autostop allows now; returns their ids."""
        if self.autostop_after is None:
            return []
        now = time.monotonic()
        with self.state.lock:
            machines = [
                (m.app, m.id, service_of(m.config)) for m in self.state.machines.values() if m.state == "started"
            ]
        by_app: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for app, mid, service in machines:
            by_app.setdefault(app, []).append((mid, service))
        stopped = []
        for app, rows in sorted(by_app.items()):
            running = len(rows)
            for mid, service in sorted(rows):
                if running <= int(service.get("min_machines_running") or 0):
                    break
                if not autostops(service):
                    continue
                info = self.runner.report(mid) or {}
                with self.lock:
                    last = self._last.setdefault((mid, int(info.get("pid") or 0)), now)
                    idle = not self._busy.get(mid) and now - last >= self.autostop_after
                if not idle:
                    continue
                try:
                    self.state.stop_machine(app, mid, {}, None)
                except ApiError:  # leased by a deploy, or gone meanwhile
                    continue
                running -= 1
                stopped.append(mid)
                self.note_action(app, mid, "autostop")
        return stopped

    def _autostop_loop(self) -> None:
        assert self.autostop_after is not None
        period = max(0.05, min(1.0, self.autostop_after / 4))
        while not self._closed.wait(period):
            self.autostop_once()

    def close(self) -> None:
        self._closed.set()
        with self.lock:
            servers, self._app_servers = list(self._app_servers.values()), {}
        for server in servers:
            server.shutdown()
            server.server_close()

    def app_url(self, app: str, host: str = "127.0.0.1") -> str:
        """A loopback port of the proxy's own for ``app`` (opened on first use): a plain URL any client can use,
        balanced and replayed as ``<app>.fly.dev`` is, whatever Host the client sends."""
        with self.lock:
            server = self._app_servers.get(app)
            if server is None:
                server = self._app_servers[app] = self.serve(host, 0, app=app)
                threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return "http://{}:{}".format(*server.server_address[:2])

    def serve(self, host: str = "127.0.0.1", port: int = 0, app: str = "") -> ThreadingHTTPServer:
        class Bound(ProxyHandler):
            pass

        Bound.proxy = self
        Bound.app = app
        server = ThreadingHTTPServer((host, port), Bound)
        server.daemon_threads = True
        if self.autostop_after is not None and self._autostopper is None:
            self._autostopper = threading.Thread(target=self._autostop_loop, daemon=True, name="fly-autostop")
            self._autostopper.start()
        return server


class ProxyHandler(BaseHTTPRequestHandler):
    proxy: FlyProxy
    app: str = ""  # an app's own port: every request is for it, whatever its Host
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
        if self.app:
            app = self.app
        elif not host.endswith(APP_DOMAIN) or host == APP_DOMAIN[1:]:
            self._error(404, f"no app for host {host!r}: the proxy serves <app>{APP_DOMAIN}")
            return
        else:
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
            if not replay:
                self._relay(app, conn, resp, source, None)
                return
            self._drop(conn, resp, source)
            self._replay(app, source, parse_replay(replay), headers, body)
        except NoMachine as exc:
            self.proxy.record(app, "", exc.status, None)
            self._error(exc.status, exc.message)

    def _replay(
        self, app: str, source: Machine, fields: dict[str, str], headers: list[tuple[str, str]], body: bytes
    ) -> None:
        deadline = time.monotonic() + parse_duration(fields.get("timeout"), CONNECT_RETRY_S)
        try:
            target = self._replay_target(app, source, fields, deadline)
            src = f"instance={source[0]};region={source[1]};t={int(time.time() * 1e6)}"
            conn, resp, machine = self._first_answer([target], [*headers, ("fly-replay-src", src)], body, deadline)
        except NoMachine as exc:
            if fields.get("fallback", "").lower() not in ("force_self", "prefer_self"):
                raise
            # Back to the machine that asked for the replay, which learns why and answers the client itself.
            failed = f"instance={fields.get('instance') or fields.get('region') or '-'};reason={exc.message}"
            conn, resp, machine = self._first_answer([source], [*headers, ("fly-replay-failed", failed)], body)
            if resp.getheader("fly-replay"):
                self._drop(conn, resp, machine)
                raise NoMachine(502, f"machine {machine[0]} asked to replay a request that fell back to it") from exc
            self._relay(app, conn, resp, machine, None, fallback=True)
            return
        if resp.getheader("fly-replay"):
            self._drop(conn, resp, machine)
            raise NoMachine(502, f"machine {machine[0]} asked to replay a request that was already replayed")
        self._relay(app, conn, resp, machine, source[0])

    def _replay_target(self, app: str, source: Machine, fields: dict[str, str], deadline: float) -> Machine:
        instance = fields.get("instance")
        if instance:
            for row in self.proxy.started(app):
                if row[0] == instance:
                    return row
            woken = self.proxy.autostart(app, instance, deadline)
            if woken is None:
                state = self.proxy.status_of(app, instance) or "not found"
                raise NoMachine(503, f"machine {instance} of app {app} cannot be reached ({state})")
            return woken
        machines = self.proxy.rotation(app)
        if fields.get("region"):
            machines = [m for m in machines if m[1] == fields["region"].strip('"')]
        if fields.get("elsewhere", "").lower() == "true":
            machines = [m for m in machines if m[0] != source[0]]
        if not machines:
            raise NoMachine(503, f"no started machine of app {app} to replay to ({fields})")
        return machines[0]

    def _first_answer(
        self, candidates: list[Machine], headers: list[tuple[str, str]], body: bytes, deadline: float | None = None
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse, Machine]:
        """Send to the first candidate that accepts the connection, trying them in turn until ``deadline``
        (default a few seconds: a machine just started may not listen yet)."""
        end = time.monotonic() + CONNECT_RETRY_S if deadline is None else deadline
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
                self.proxy.busy(machine[0], +1)
                try:
                    return conn, conn.getresponse(), machine
                except (OSError, http.client.HTTPException) as exc:
                    self.proxy.busy(machine[0], -1)
                    conn.close()
                    raise NoMachine(502, f"machine {machine[0]} gave no answer: {exc}") from exc
            if time.monotonic() >= end:
                names = ", ".join(m[0] for m in candidates)
                raise NoMachine(503, f"no machine accepted the connection ({names})")
            time.sleep(0.05)

    def _drop(self, conn: http.client.HTTPConnection, resp: http.client.HTTPResponse, machine: Machine) -> None:
        """An answer the client never sees (it asked for a replay)."""
        try:
            resp.read()
        finally:
            conn.close()
            self.proxy.busy(machine[0], -1)

    def _relay(
        self,
        app: str,
        conn: http.client.HTTPConnection,
        resp: http.client.HTTPResponse,
        machine: Machine,
        replayed_from: str | None,
        fallback: bool = False,
    ) -> None:
        self.proxy.record(app, machine[0], resp.status, replayed_from, fallback)
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
            self.proxy.busy(machine[0], -1)
