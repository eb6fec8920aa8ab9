"""The emulator's HTTP side: routing of the Fly ``/v1`` paths, auth, fault injection, the call log and
the test-only ``/_emulator/`` endpoints (documented in ``tests/tools/fly_emulator/__init__.py``)."""

from __future__ import annotations

import http.client
import json
import random
import re
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from tests.tools.fly_emulator.containers import ContainerRunner
from tests.tools.fly_emulator.containers import Engine as ContainerEngine
from tests.tools.fly_emulator.processes import ProcessRunner
from tests.tools.fly_emulator.proxy import FlyProxy
from tests.tools.fly_emulator.state import ApiError, FlyState, Hooks, now_iso

Handler = Callable[..., tuple[int, Any]]
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
FAULTS = ("429", "500", "502", "503", "lost", "drop", "slow")
DEFAULT_FAULTS = FAULTS[:-1]  # "slow" costs real time: only on request


@dataclass
class Faults:
    """Fault injection: with probability ``rate`` a ``/v1`` request gets one of ``kinds``.

    ``429``/``500``/``502``/``503`` answer before anything happens. ``lost`` (mutations only) performs the
    request, then answers 504 as if a proxy lost the response; ``drop`` performs it, then closes the
    connection without any answer; ``slow`` (mutations only, not drawn unless asked for) performs it and
    answers only after ``slow_s`` seconds, past a client's read timeout. 429s carry ``Retry-After``.
    """

    rate: float = 0.0
    seed: int | None = None
    kinds: tuple[str, ...] = DEFAULT_FAULTS
    retry_after: int = 1
    slow_s: float = 2.0
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}: expected some of {', '.join(FAULTS)}")
        self.rng = random.Random(self.seed)

    def pick(self, method: str) -> str | None:
        if self.rate <= 0 or self.rng.random() >= self.rate:
            return None
        kinds = [k for k in self.kinds if method in MUTATING or k not in ("lost", "drop", "slow")]
        return self.rng.choice(kinds) if kinds else None

    def to_json(self) -> dict[str, Any]:
        return {
            "rate": self.rate,
            "seed": self.seed,
            "kinds": list(self.kinds),
            "retry_after": self.retry_after,
            "slow_s": self.slow_s,
        }


class Emulator:
    """State + options + call log of one emulator; ``serve()`` binds it to an HTTP server."""

    def __init__(
        self,
        *,
        token: str | None = None,
        faults: Faults | None = None,
        transition_s: float = 0.05,
        run_machines: bool = False,
        entrypoint: str | Path | None = None,
        workdir: str | Path | None = None,
        containers: ContainerEngine | None = None,
        proxy_region: str | None = None,
        autostop_after: float | None = None,
        checks: bool = False,
    ) -> None:
        self.token = token
        self.checks = checks  # run the machines' config checks against their processes (see machine_checks)
        self.faults = faults or Faults()
        self._tmp = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="fly-emulator-")
            workdir = self._tmp.name
        self.workdir = Path(workdir)
        ref: list[FlyState] = []
        self.runner: ProcessRunner | ContainerRunner | None = None
        if containers is not None:  # machines as containers of their image
            self.runner = ContainerRunner(ref, self.workdir, containers)
        elif run_machines:
            self.runner = ProcessRunner(ref, self.workdir, entrypoint=entrypoint)
        self.state = FlyState(transition_s=transition_s, hooks=self.runner or Hooks())
        ref.append(self.state)
        self.lock = threading.Lock()
        self.calls: list[dict[str, Any]] = []
        self.proxy = (
            FlyProxy(self.state, self.runner, region=proxy_region, autostop_after=autostop_after)
            if self.runner
            else None
        )
        self.proxy_serving = False  # serve_proxy() was called: the proxy answers requests
        self.routes = self._routes()

    # -- routing -------------------------------------------------------------------------------------

    def _routes(self) -> list[tuple[str, re.Pattern[str], Handler]]:
        s = self.state
        app = r"/v1/apps/(?P<app>[^/]+)"
        mach = app + r"/machines/(?P<mid>[^/]+)"
        vol = app + r"/volumes/(?P<vid>[^/]+)"
        table: list[tuple[str, str, Handler]] = [
            ("GET", r"/v1/apps", lambda r: (200, s.list_apps(r.query.get("org_slug")))),
            ("POST", r"/v1/apps", lambda r: (201, s.create_app(r.json()))),
            ("GET", app, lambda r, app: (200, s.get_app(app))),
            ("DELETE", app, lambda r, app: (202, s.delete_app(app))),
            ("GET", app + r"/machines", lambda r, app: (200, s.list_machines(app, r.query))),
            ("POST", app + r"/machines", lambda r, app: (200, s.create_machine(app, r.json()))),
            ("GET", mach, lambda r, app, mid: (200, self.machine_checks(s.get_machine(app, mid)))),
            ("POST", mach, lambda r, app, mid: (200, s.update_machine(app, mid, r.json(), r.nonce))),
            (
                "DELETE",
                mach,
                lambda r, app, mid: (
                    200,
                    s.delete_machine(app, mid, r.query.get("force", "").lower() == "true", r.nonce),
                ),
            ),
            ("POST", mach + r"/start", lambda r, app, mid: (200, s.start_machine(app, mid, r.nonce))),
            ("POST", mach + r"/stop", lambda r, app, mid: (200, s.stop_machine(app, mid, r.json(True), r.nonce))),
            ("GET", mach + r"/wait", lambda r, app, mid: (200, s.wait(app, mid, r.query))),
            ("GET", mach + r"/lease", lambda r, app, mid: (200, s.get_lease(app, mid))),
            ("POST", mach + r"/lease", lambda r, app, mid: (201, s.create_lease(app, mid, r.json(), r.nonce))),
            ("DELETE", mach + r"/lease", lambda r, app, mid: (200, s.release_lease(app, mid, r.nonce))),
            ("GET", mach + r"/events", lambda r, app, mid: (200, s.get_machine(app, mid)["events"])),
            (
                "GET",
                app + r"/secrets",
                lambda r, app: (200, s.list_secrets(app, r.query.get("show_secrets", "").lower() == "true")),
            ),
            ("POST", app + r"/secrets", lambda r, app: (200, s.update_secrets(app, r.json()))),
            ("GET", app + r"/volumes", lambda r, app: (200, s.list_volumes(app))),
            ("GET", r"/v1/orgs/(?P<org>[^/]+)/volumes", lambda r, org: (200, s.list_org_volumes(org, r.query))),
            ("POST", app + r"/volumes", lambda r, app: (200, s.create_volume(app, r.json()))),
            ("GET", vol, lambda r, app, vid: (200, s.get_volume(app, vid))),
            ("PUT", vol, lambda r, app, vid: (200, s.update_volume(app, vid, r.json(True)))),
            ("DELETE", vol, lambda r, app, vid: (200, s.delete_volume(app, vid))),
            ("PUT", vol + r"/extend", lambda r, app, vid: (200, s.extend_volume(app, vid, r.json()))),
            ("GET", vol + r"/snapshots", lambda r, app, vid: (200, s.list_snapshots(app, vid))),
            ("POST", vol + r"/snapshots", lambda r, app, vid: (200, s.create_snapshot(app, vid))),
            ("GET", app + r"/ip_assignments", lambda r, app: (200, s.list_ips(app))),
            ("POST", app + r"/ip_assignments", lambda r, app: (200, s.assign_ip(app, r.json()))),
            ("DELETE", app + r"/ip_assignments/(?P<ip>[^/]+)", lambda r, app, ip: (204, s.delete_ip(app, ip))),
            # test-only, no auth, no faults
            ("GET", r"/_emulator/calls", lambda r: (200, {"calls": self.call_log()})),
            ("DELETE", r"/_emulator/calls", lambda r: (200, {"cleared": self.clear_calls()})),
            ("POST", r"/_emulator/reset", lambda r: (200, self.reset())),
            ("GET", r"/_emulator/machines", lambda r: (200, {"machines": self.machine_report()})),
            ("GET", r"/_emulator/proxy", lambda r: (200, self.proxy_report())),
            ("GET", r"/_emulator/proxy/apps/(?P<app>[^/]+)", lambda r, app: (200, self.proxy_app(app))),
            ("GET", r"/_emulator/faults", lambda r: (200, self.faults.to_json())),
            ("POST", r"/_emulator/faults", lambda r: (200, self.set_faults(**r.json()))),
            ("POST", r"/_emulator/apps/(?P<app>[^/]+)/reserve", lambda r, app: (200, s.reserve_app_name(app))),
        ]
        return [(m, re.compile(p + r"/?"), h) for m, p, h in table]

    def route(self, method: str, path: str) -> tuple[Handler, dict[str, str]] | None:
        allowed = False
        for m, pattern, handler in self.routes:
            match = pattern.fullmatch(path)
            if match:
                if m == method:
                    return handler, {k: unquote(v) for k, v in match.groupdict().items()}
                allowed = True
        if allowed:
            raise ApiError(405, f"method {method} not allowed on {path}")
        return None

    # -- test-only endpoints -------------------------------------------------------------------------

    def record(self, method: str, path: str, query: str, status: int | None, fault: str | None) -> None:
        with self.lock:
            self.calls.append(
                {"method": method, "path": path, "query": query, "status": status, "fault": fault, "time": time.time()}
            )

    def call_log(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(c) for c in self.calls]

    def clear_calls(self) -> int:
        with self.lock:
            n = len(self.calls)
            self.calls.clear()
            return n

    def reset(self) -> dict[str, Any]:
        if self.runner:
            self.runner.stop_all()
        self.state.reset()
        self.clear_calls()
        if self.proxy:
            self.proxy.clear()
        return {"ok": True}

    def set_faults(
        self,
        rate: float = 0.0,
        seed: int | None = None,
        kinds: list[str] | None = None,
        retry_after: int | None = None,
        slow_s: float | None = None,
    ) -> dict[str, Any]:
        self.faults = Faults(
            rate=float(rate),
            seed=seed,
            kinds=tuple(kinds or DEFAULT_FAULTS),
            retry_after=self.faults.retry_after if retry_after is None else int(retry_after),
            slow_s=self.faults.slow_s if slow_s is None else float(slow_s),
        )
        return self.faults.to_json()

    def machine_report(self) -> list[dict[str, Any]]:
        with self.state.lock:
            machines = list(self.state.machines.values())
            rows = [
                {"app": m.app, "id": m.id, "name": m.name, "state": m.state, "version": m.version, "region": m.region}
                for m in machines
            ]
        for row in rows:
            row["process"] = self.runner.report(row["id"]) if self.runner else None
        return rows

    def proxy_report(self) -> dict[str, Any]:
        if self.proxy is None:
            return {"requests": [], "actions": []}
        return {"requests": self.proxy.requests(), "actions": self.proxy.action_log()}

    def machine_checks(self, machine: dict[str, Any]) -> dict[str, Any]:
        """With ``checks`` and a runner, a machine's ``checks`` as Fly reports them: each of its config's http
        (GET ``path``, 2xx passes) or tcp checks run against its process now; a machine not started fails them.
        Without, ``checks`` stays empty (a client then sees only the machine's state)."""
        config_checks = (machine.get("config") or {}).get("checks") or {}
        if not self.checks or self.runner is None or not isinstance(config_checks, dict):
            return machine
        info = self.runner.report(machine["id"]) if machine.get("state") == "started" else None
        rows = []
        for name, check in sorted(config_checks.items()):
            status, output = "critical", f"machine is {machine.get('state')}"
            if info and info.get("running"):
                status, output = probe_check(str(info["host"]), int(info["port"]), check)
            rows.append({"name": name, "status": status, "output": output, "updated_at": now_iso()})
        return {**machine, "checks": rows}

    def proxy_app(self, app: str) -> dict[str, Any]:
        if self.proxy is None or not self.proxy_serving:
            raise ApiError(404, "the proxy is not serving: start the emulator with --proxy-port (proxy=True)")
        return {"app": app, "url": self.proxy.app_url(app)}

    def close(self) -> None:
        if self.proxy:
            self.proxy.close()
        if self.runner:
            self.runner.stop_all()
        if self._tmp is not None:
            self._tmp.cleanup()

    # -- serving -------------------------------------------------------------------------------------

    def serve_proxy(self, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
        """Fly's proxy in front of the machines' processes (``tests.tools.fly_emulator.proxy``)."""
        if self.proxy is None:
            raise ValueError("the proxy needs run_machines: it forwards to the machines' processes")
        self.proxy_serving = True
        return self.proxy.serve(host, port)

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
        emulator = self

        class Bound(RequestHandler):
            pass

        Bound.emulator = emulator
        server = ThreadingHTTPServer((host, port), Bound)
        server.daemon_threads = True
        return server


def probe_check(host: str, port: int, check: dict[str, Any]) -> tuple[str, str]:
    """Run one Fly check (http: GET its path, 2xx passes; tcp: connect) against a machine's process."""
    timeout = 2.0
    try:
        if check.get("type") == "http":
            conn = http.client.HTTPConnection(host, port, timeout=timeout)
            try:
                conn.request(str(check.get("method") or "GET"), str(check.get("path") or "/"))
                status = conn.getresponse().status
            finally:
                conn.close()
            return ("passing" if 200 <= status < 300 else "critical"), f"HTTP {status}"
        socket.create_connection((host, port), timeout=timeout).close()
        return "passing", "connected"
    except (OSError, http.client.HTTPException) as exc:
        return "critical", f"{type(exc).__name__}: {exc}"


class Request:
    """What a route handler needs from the HTTP request."""

    def __init__(self, handler: BaseHTTPRequestHandler, query: dict[str, str], raw: bytes) -> None:
        self.query = query
        self.raw = raw
        self.nonce = handler.headers.get("fly-machine-lease-nonce")

    def json(self, optional: bool = False) -> dict[str, Any]:
        if not self.raw.strip():
            if optional:
                return {}
            raise ApiError(400, "request body is required")
        try:
            data = json.loads(self.raw)
        except ValueError as exc:
            raise ApiError(400, f"request body is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ApiError(400, "request body must be a JSON object")
        return data


class RequestHandler(BaseHTTPRequestHandler):
    emulator: Emulator
    protocol_version = "HTTP/1.1"
    server_version = "fly-emulator/1"

    def setup(self) -> None:
        super().setup()
        # Headers and body go out as two writes: without this, Nagle + delayed ACK add ~40 ms per call.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # the call log replaces stderr chatter
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None or status == 204 else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("fly-request-id", f"emu-{time.monotonic_ns():x}")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if data:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data:
            self.wfile.write(data)

    def _authorized(self) -> bool:
        auth = self.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme not in ("Bearer", "FlyV1") or not token.strip():
            return False
        expected = self.emulator.token
        return expected is None or auth in (f"Bearer {expected}", expected, f"FlyV1 {expected}")

    def _handle(self, method: str) -> None:
        emu = self.emulator
        parts = urlsplit(self.path)
        path, query_string = parts.path, parts.query
        query = dict(parse_qsl(query_string, keep_blank_values=True))
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        api = path.startswith("/v1/")
        fault = None
        status: int | None = None
        try:
            routed = emu.route(method, path)
            if routed is None:
                raise ApiError(404, f"no such endpoint: {method} {path}")
            if api and not self._authorized():
                raise ApiError(401, "You must be authenticated to view this.")
            fault = emu.faults.pick(method) if api else None
            if fault in ("429", "500", "502", "503"):
                status = int(fault)
                headers = {"Retry-After": str(emu.faults.retry_after)} if status == 429 else None
                message = "rate limit exceeded" if status == 429 else "injected fault: nothing was done"
                self._send(status, {"error": message}, headers)
                return
            handler, args = routed
            status, body = handler(Request(self, query, raw), **args)
            if fault == "lost":
                status = 504
                self._send(status, {"error": "injected fault: done, but the response was lost"})
            elif fault == "drop":
                status = None
                self.close_connection = True  # done, but no answer at all
            elif fault == "slow":
                time.sleep(emu.faults.slow_s)  # done, but the answer comes after the client gave up
                self._send(status, body)
            else:
                self._send(status, body)
        except ApiError as exc:
            status = exc.status
            self._send(exc.status, exc.body())
        except Exception as exc:  # a bug in the emulator must show up as a 500, not a hung client
            status = 500
            self._send(500, {"error": f"emulator error: {type(exc).__name__}: {exc}"})
        finally:
            if api:
                emu.record(method, path, query_string, status, fault)
