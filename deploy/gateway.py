"""catwalk gateway: serve one stdio MCP server over HTTP (/mcp, /sse, /status) with bearer auth.

One process, the standard library's asyncio and h11 (HTTP/1.1) only; it replaced mcp-proxy 0.13, which
re-serialized every message through the pydantic models of its pinned ``mcp`` 1.x (dropping what newer
protocol revisions add) and took ~0.33 s of imports before it could answer. Modules next to this file:
``relay`` (the pure multiplexing of client sessions onto the one server) and ``mcp_http`` (the HTTP side).

* **Faithful relay.** Messages pass through as JSON, unchanged but for what sharing one server needs
  (request ids, progress tokens, cancellations; see ``relay``). The gateway initializes the server once,
  itself, and answers each client's ``initialize`` from that result.
* **Auth.** ``Authorization: Bearer <token>`` (constant-time) on every path except ``/status``. One process
  means no second hop for streaming responses and nothing extra to supervise.
* **IPv4 + IPv6.** One IPv4 socket and one IPv6-only socket are bound on the same port, so 127.0.0.1 and
  [::1] (and Fly's 6PN) all answer.
* **Lifecycle.** The server process is spawned here so that its death ends the gateway with a non-zero
  code (Fly then restarts the machine) and SIGTERM stops its whole process group within 2 s. Either way,
  each request still in flight is answered with a JSON-RPC error saying why, so no client waits for ever.
* **Speed.** The sockets are bound, the server spawned and its initialize request written to its stdin
  before anything else is imported, so it boots while asyncio and h11 load (a few tens of ms) and early clients
  queue instead of being refused; only what precedes the spawn is imported at module level.
* **Secrets.** ``MCP_AUTH_TOKEN`` is removed from the server's environment: a third-party server has no
  business reading the gateway's credential. The token is never logged.

Sub-commands (stdlib only): ``resolve`` prints the server's argv as JSON (the image build runs it to fail
early on a wrong ``MCP_LAUNCH``), ``cutoff`` turns ``MCP_RESOLVED_AT`` into the install cutoff, ``serve``
runs the gateway.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib
import json
import os
import re
import signal
import socket
import sys
import types
from pathlib import Path

# Only what the path to spawning the server needs is imported here: every millisecond before the spawn
# delays the server's own start. logging, typing, hashlib, shutil, … load where they are used, after it.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import asyncio
    from typing import Any
# asyncio itself is imported by start() once the server runs, as the module global _Gateway uses.

LOG_FORMAT = "[%(levelname).1s %(asctime)s %(name)s] %(message)s"


def _configure_logging() -> None:
    """Root logging at MCP_LOG_LEVEL, once."""
    import logging

    if not logging.root.handlers:
        logging.basicConfig(level=os.environ.get("MCP_LOG_LEVEL", "INFO").upper(), format=LOG_FORMAT)


class _Log:
    """``logging.getLogger("catwalk.gateway")``, imported and configured on first use."""

    def __getattr__(self, name: str) -> Any:
        import logging

        _configure_logging()
        return getattr(logging.getLogger("catwalk.gateway"), name)


log = _Log()

MAX_ARGS = 64
MAX_ARG = 1024
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# A launch executable is a bare name looked up inside the server's own environment, never a path.
BARE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+-]{0,127}$")
ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$")
# Packages published together (a monorepo release, a package and its helper) land minutes apart: the
# cutoff sits this long after the pinned version's upload so they resolve too. Fixed, so reproducible.
CUTOFF_MARGIN = dt.timedelta(hours=1)
# When nothing resolves as of the release (a dependency's fix landed hours later), the installer retries with
# these later cutoffs, in order, before giving up on a cutoff. Fixed offsets from the release: reproducible.
CUTOFF_WIDENING = (dt.timedelta(days=1), dt.timedelta(days=7), dt.timedelta(days=30))
STOP_DEADLINE_S = 1.8  # SIGTERM → exit, hard bound (Fly and the contract give 2 s)
OPEN_PATHS = frozenset({"/status"})


class UsageError(Exception):
    """Bad input: printed as ``Error: …`` and exit 1, before anything starts."""


def _show(value: str, limit: int = 120) -> str:
    """A value safe to echo in an error line: control characters escaped, length bounded."""
    text = value.encode("unicode_escape").decode("ascii")
    return text if len(text) <= limit else text[:limit] + "…"


# --- argv resolution (pure, stdlib) ------------------------------------------------------------------------


def parse_json_argv(raw: str | None, field: str, *, allow_empty: bool) -> list[str]:
    """A JSON array of strings from an env var; refuses control characters and oversized input."""
    if raw is None or raw.strip() == "":
        return []
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{field} is not valid JSON ({exc.msg}); expected an array of strings") from exc
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UsageError(f"{field} must be a JSON array of strings, got {_show(raw)}")
    if not value and not allow_empty:
        raise UsageError(f"{field} is an empty array; it needs at least the executable")
    if len(value) > MAX_ARGS:
        raise UsageError(f"{field} has {len(value)} items; the limit is {MAX_ARGS}")
    for i, item in enumerate(value):
        if CONTROL.search(item):
            raise UsageError(f"{field}[{i}] contains a control character (newline, NUL, …): {_show(item)}")
        if len(item) > MAX_ARG:
            raise UsageError(f"{field}[{i}] is {len(item)} characters long; the limit is {MAX_ARG}")
    return value


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _python_name(spec: str) -> str:
    return spec.split("==", 1)[0]


def _npm_name(spec: str) -> str:
    at = spec.find("@", 1)
    return spec if at == -1 else spec[:at]


def _site_packages(env_dir: Path) -> list[Path]:
    return sorted(env_dir.glob("lib/python3*/site-packages"))


def _dist_info(env_dir: Path, package: str) -> Path | None:
    want = _normalize(_python_name(package))
    for site in _site_packages(env_dir):
        for info in site.glob("*.dist-info"):
            if _normalize(info.name[: -len(".dist-info")].rsplit("-", 1)[0]) == want:
                return info
    return None


def python_fallback(env_dir: Path, package: str) -> list[str]:
    """The package's console script (named like the package, else its only one), else ``python -m``."""
    name = _python_name(package)
    info = _dist_info(env_dir, package)
    if info is None:
        raise UsageError(f"{name} is not installed in {env_dir}; run `entrypoint.sh install` first")
    scripts: list[str] = []
    entry_points = info / "entry_points.txt"
    if entry_points.is_file():
        import configparser

        parser = configparser.ConfigParser(delimiters=("=",), interpolation=None)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        parser.read(entry_points, encoding="utf-8")
        if parser.has_section("console_scripts"):
            scripts = list(parser["console_scripts"])
    for script in scripts:
        if _normalize(script) == _normalize(name):
            return [script]
    if len(scripts) == 1:
        return [scripts[0]]
    mcp_scripts = [s for s in scripts if "mcp" in s.lower()]
    if len(mcp_scripts) == 1:  # as detection chooses: the one MCP script among several
        return mcp_scripts
    if scripts:
        raise UsageError(
            f"{name} has several console scripts ({', '.join(sorted(scripts))}) and none is named after "
            "the package; set MCP_LAUNCH to the one that starts the MCP server"
        )
    module = name.replace("-", "_").replace(".", "_")
    for site in _site_packages(env_dir):
        if (site / module).is_dir() or (site / f"{module}.py").is_file():
            return ["python", "-m", module]
    raise UsageError(
        f'{name} has no console script and no module named {module}; set MCP_LAUNCH (e.g. ["python","-m","<module>"])'
    )


def npm_fallback(env_dir: Path, package: str) -> list[str]:
    """The bin named after the package (unscoped), else the package's only bin."""
    name = _npm_name(package)
    manifest = env_dir / "node_modules" / name / "package.json"
    if not manifest.is_file():
        raise UsageError(f"{name} is not installed in {env_dir}; run `entrypoint.sh install` first")
    data = json.loads(manifest.read_text(encoding="utf-8"))
    unscoped = name.rsplit("/", 1)[-1]
    bins = data.get("bin")
    if isinstance(bins, str):
        return [unscoped]
    if isinstance(bins, dict) and bins:
        if unscoped in bins:
            return [unscoped]
        if len(bins) == 1:
            return [next(iter(bins))]
        raise UsageError(
            f"{name} has several bins ({', '.join(sorted(bins))}) and none is named {unscoped}; "
            "set MCP_LAUNCH to the one that starts the MCP server"
        )
    raise UsageError(f"{name} declares no bin in its package.json; set MCP_LAUNCH")


def _which(name: str) -> str | None:
    import shutil

    return shutil.which(name)


def _locate(runtime: str, env_dir: Path, exe: str) -> str:
    """Find a launch executable inside the server's environment (the npm runtime may also use node)."""
    if not BARE_NAME.match(exe):
        raise UsageError(f"MCP_LAUNCH[0] must be a bare executable name, not a path or option: {_show(exe)}")
    candidates = [env_dir / "bin" / exe] if runtime == "python" else [env_dir / "node_modules" / ".bin" / exe]
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    if runtime == "npm" and exe == "node" and (node := _which("node")):
        return node
    where = candidates[0].parent
    raise UsageError(f"launch executable {exe!r} was not found in {where}; check MCP_LAUNCH or reinstall")


def resolve_argv(
    runtime: str, env_dir: Path | None, package: str, custom: list[str], environ: dict[str, str]
) -> list[str]:
    """The server's full argv: the launch (MCP_LAUNCH or a fallback) resolved in its env, then MCP_ARGS."""
    extra = parse_json_argv(environ.get("MCP_ARGS"), "MCP_ARGS", allow_empty=True)
    if runtime == "custom":
        if not custom:
            raise UsageError("MCP_COMMAND is required when MCP_RUNTIME=custom")
        exe = custom[0]
        found = exe if "/" in exe else _which(exe)
        if not found or not os.access(found, os.X_OK):
            raise UsageError(f"custom command {exe!r} was not found or is not executable")
        return [found, *custom[1:], *extra]
    assert env_dir is not None
    # Absent or [] (detection found nothing better): the package's own console script / bin.
    launch = parse_json_argv(environ.get("MCP_LAUNCH"), "MCP_LAUNCH", allow_empty=True)
    if not launch:
        launch = python_fallback(env_dir, package) if runtime == "python" else npm_fallback(env_dir, package)
    return [_locate(runtime, env_dir, launch[0]), *launch[1:], *extra]


def install_cutoff(resolved_at: str, margin: dt.timedelta = CUTOFF_MARGIN) -> str:
    """``MCP_RESOLVED_AT`` (the pinned version's upload time) plus a fixed margin, as RFC 3339 UTC."""
    value = resolved_at.strip()
    if not ISO_UTC.match(value):
        raise UsageError(f"MCP_RESOLVED_AT is not an ISO-8601 time: {_show(value)}")
    moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace(" ", "T"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    cut = (moment + margin).astimezone(dt.timezone.utc).replace(microsecond=0)
    return cut.strftime("%Y-%m-%dT%H:%M:%SZ")


# --- auth (pure) ---------------------------------------------------------------------------------------


def _digest(value: bytes) -> bytes:
    import hashlib

    return hashlib.sha256(value).digest()


class BearerAuth:
    """Require ``Authorization: Bearer <token>`` on every path but ``/status``.

    Deny by default (``/mcp``, ``/sse``, ``/messages/`` and anything added later), so a new route is never
    accidentally public. Both sides are hashed before ``hmac.compare_digest``: constant time, and the
    token's length does not leak either. A refused request gets 401, ``WWW-Authenticate: Bearer`` and
    :data:`DENIED`.
    """

    def __init__(self, token: str) -> None:
        import hmac

        self._want = _digest(token.encode())
        self._equal = hmac.compare_digest

    def authorized(self, headers: list[tuple[bytes, bytes]]) -> bool:
        for key, value in headers:
            if key.lower() == b"authorization":
                scheme, _, credential = value.strip().partition(b" ")
                return scheme.lower() == b"bearer" and self._equal(_digest(credential.strip()), self._want)
        return False

    def allows(self, path: str, headers: list[tuple[bytes, bytes]]) -> bool:
        return path in OPEN_PATHS or self.authorized(headers)


# --- serving -------------------------------------------------------------------------------------------


def bind_sockets(hosts: list[str], port: int) -> list[socket.socket]:
    """One listening socket per address; IPv6 ones are IPv6-only so IPv4 and IPv6 can share the port."""
    sockets: list[socket.socket] = []
    for host in hosts:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((host, port))
            sock.listen(512)
            sock.set_inheritable(False)
        except OSError as exc:
            sock.close()
            if family == socket.AF_INET6 and sockets and exc.errno in (97, 99):  # no IPv6 on this host
                log.warning("IPv6 is unavailable here (%s); serving on IPv4 only", exc.strerror)
                continue
            for other in sockets:
                other.close()
            raise UsageError(f"cannot listen on {host} port {port}: {exc.strerror}") from exc
        sockets.append(sock)
    return sockets


def _child_env(environ: dict[str, str]) -> dict[str, str]:
    """The whole environment (``--pass-environment``) minus the gateway's own credential."""
    return {k: v for k, v in environ.items() if k != "MCP_AUTH_TOKEN"}


def _rpc_line(message: dict[str, Any]) -> bytes:
    return _relay().encode(message) + b"\n"


class _Child:
    """The MCP server process, started with plain ``subprocess`` before the event loop exists.

    It leads a new session, so its whole process group can be signalled. Its stdin/stdout are non-blocking
    pipes driven by the event loop's readers/writers; its exit is seen on a pidfd (Linux), else by polling.
    """

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        import subprocess

        child_stdin, self.stdin = os.pipe()
        self.stdout, child_stdout = os.pipe()
        try:
            self.popen = subprocess.Popen(argv, stdin=child_stdin, stdout=child_stdout, env=env, start_new_session=True)
        except BaseException:
            os.close(self.stdin)
            os.close(self.stdout)
            raise
        finally:
            os.close(child_stdin)
            os.close(child_stdout)
        self.pid = self.popen.pid
        os.set_blocking(self.stdin, False)
        os.set_blocking(self.stdout, False)
        self.pidfd = -1
        with contextlib.suppress(AttributeError, OSError):  # no pidfd before Linux 5.3: poll instead
            self.pidfd = os.pidfd_open(self.pid)
        # Written to stdin once the pipe has room (the event loop drains it). A bytearray: dropping what was
        # written from its front is O(1), where slicing bytes copied all the rest at every 64 KiB written.
        self.pending = bytearray()

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def write(self, data: bytes) -> None:
        """Queue ``data`` for the server's stdin and write what fits now (never blocks)."""
        if self.stdin < 0:
            return
        self.pending += data
        try:
            written = os.write(self.stdin, self.pending)
        except BlockingIOError:
            written = 0
        except OSError:  # EPIPE: the server closed its stdin; its exit is reported by the watcher
            self.pending.clear()
            self.close_stdin()
            return
        del self.pending[:written]

    def close_stdin(self) -> None:
        if self.stdin >= 0:
            fd, self.stdin = self.stdin, -1
            os.close(fd)

    def close(self) -> None:
        self.close_stdin()
        for name in ("stdout", "pidfd"):
            fd = getattr(self, name)
            if fd >= 0:
                setattr(self, name, -1)
                os.close(fd)


def _kill_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _exit_code(code: int) -> int:
    """The gateway's exit code for the server's: its own if it failed, 128+N for signal N, else 1."""
    return code if code > 0 else (128 - code if code else 1)


def start(argv: list[str], hosts: list[str], port: int, environ: dict[str, str]) -> int:
    """Validate, bind, spawn the server and ask it to initialize; only then import the event loop and serve."""
    token = environ.get("MCP_AUTH_TOKEN")
    if token is not None and (not token.strip() or CONTROL.search(token)):
        raise UsageError("MCP_AUTH_TOKEN is set but empty or contains control characters; refusing to start")
    try:
        start_timeout = float(environ.get("MCP_START_TIMEOUT", "120"))
    except ValueError:
        raise UsageError("MCP_START_TIMEOUT must be a number of seconds") from None
    sockets = bind_sockets(hosts, port)
    # A stop request before the event loop handles signals must not kill the gateway alone (the server
    # leads its own session and would be left running): it is noted, and the loop acts on it.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _note_early_stop)
    process = _Child(argv, _child_env(environ))
    try:
        # The initialize request is in the server's stdin before it has even loaded: it answers as soon
        # as it can, while the gateway imports its HTTP side.
        process.write(_rpc_line(_relay().initialize_request(INIT_ID)))
        _configure_logging()
        _import_asyncio()
        return asyncio.run(_Gateway(process, sockets, hosts, port, token, start_timeout).run())
    finally:
        for sock in sockets:
            sock.close()
        if process.returncode is None:  # run() stops it; this is only a safety net
            _kill_group(process.pid, signal.SIGKILL)
        process.close()


_early_stops: list[int] = []  # SIGTERM/SIGINT received before the event loop took over the signals
INIT_ID = 0  # the upstream id of the gateway's own initialize request


def _note_early_stop(signum: int, _frame: Any) -> None:
    _early_stops.append(signum)


def _import_asyncio() -> None:
    """``asyncio`` as the module global ``_Gateway`` uses, imported without ``ssl`` (~7 ms of its ~30 ms).

    asyncio imports ssl only to offer TLS, which the gateway never serves (Fly's proxy terminates it). ssl
    is blocked for the duration of that one import, so a later ``import ssl`` would still work.
    """
    global asyncio
    blocked = "ssl" not in sys.modules
    if blocked:
        sys.modules["ssl"] = None  # type: ignore[assignment]  # an ImportError, which asyncio handles
    try:
        import asyncio
    finally:
        if blocked and sys.modules.get("ssl", 0) is None:
            del sys.modules["ssl"]


def _sibling(name: str) -> types.ModuleType:
    """A module next to this file (``relay``, ``mcp_http``): importable by name, as for ``python gateway.py``.

    The entrypoint loads the gateway by path (``-c``), which does not put its directory on ``sys.path``.
    """
    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.insert(0, here)
    return importlib.import_module(name)


def _set_once(future: Any) -> None:
    if not future.done():
        future.set_result(None)


def _relay() -> Any:
    return _sibling("relay")


class _Gateway:
    """The running gateway: server pipes, start-up, the HTTP listeners, signals and the stop sequence."""

    def __init__(
        self, process: _Child, sockets: list[socket.socket], hosts: list[str], port: int, token: str | None,
        start_timeout: float,
    ) -> None:  # fmt: skip
        self.process, self.sockets, self.hosts, self.port = process, sockets, hosts, port
        self.token, self.start_timeout = token, start_timeout
        self.code = 0
        self.stopping = False
        self.gateway: Any = None  # mcp_http.Gateway once serving
        self.lines = _relay().Lines()  # the server's stdout, cut into messages
        self.why = "the gateway is stopping"  # set by finish()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        self.done = loop.create_future()  # set to the exit code: a stop request, the server's end, a failure
        self.initialized = loop.create_future()  # the server's initialize result
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop_requested, sig)
        for signum in _early_stops:  # noted while starting, before the loop took the signals over
            self.stop_requested(signum)
        loop.add_reader(self.process.stdout, self.on_stdout)
        if self.process.stdin >= 0 and self.process.pending:
            loop.add_writer(self.process.stdin, self.on_stdin)
        watcher = asyncio.ensure_future(self.watch_child())
        try:
            await self.start_and_serve()
        finally:
            watcher.cancel()
            for sock in self.sockets:
                sock.close()
            await self.stop_child()
        return self.code

    async def start_and_serve(self) -> None:
        relay = _relay()
        mcp_http = _sibling("mcp_http")
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
        auth = BearerAuth(self.token) if self.token is not None else None
        # MCP_HOST=loopback's addresses (no ipaddress import on the serve path); any other spelling is not local.
        local_only = auth is None and all(host == "::1" or host.startswith("127.") for host in self.hosts)
        self.gateway = mcp_http.Gateway(
            relay.Relay(answer["result"]), self.to_server, auth, local_only, backlog=lambda: len(self.process.pending)
        )
        servers = [
            await asyncio.start_server(lambda r, w: mcp_http.serve_connection(self.gateway, r, w), sock=sock)
            for sock in self.sockets
        ]
        if self.token is None:
            log.warning("MCP_AUTH_TOKEN is not set: /mcp and /sse are open to anyone who can connect")
        info = answer["result"].get("serverInfo") or {}
        names = ", ".join(f"{h}:{self.port}" if ":" not in h else f"[{h}]:{self.port}" for h in self.hosts)
        log.info(
            "Serving %s %s on %s (/mcp, /sse, /status; auth %s)",
            info.get("name", "?"),
            info.get("version", ""),
            names,
            "required" if self.token is not None else "OFF",
        )
        sweeper = asyncio.ensure_future(self.sweep_sessions())
        try:
            self.code = await self.done
        finally:
            sweeper.cancel()
            for server in servers:
                server.close()
            self.gateway.deliver(self.gateway.relay.abandon(self.why))  # no client waits for ever
            self.gateway.close_streams()  # open SSE responses end; their connections then close
            deadline = asyncio.get_running_loop().time() + 0.3
            while self.gateway.streams and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.01)

    async def sweep_sessions(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(60)
            self.gateway.expire_idle(loop.time())

    # --- server pipes ----------------------------------------------------------------------------------

    def to_server(self, message: dict[str, Any]) -> None:
        had = bool(self.process.pending)
        self.process.write(_rpc_line(message))
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
                if self.gateway is not None:
                    self.gateway.deliver(self.gateway.relay.too_long(line))
        return True

    def on_line(self, line: bytes) -> None:
        relay = _relay()
        try:
            parsed = json.loads(line)
        except ValueError:
            parsed = None
        messages = parsed if isinstance(parsed, list) and parsed else [parsed]
        if any(relay.kind(m) is None for m in messages):
            log.warning("ignoring a non-JSON-RPC line on the server's stdout: %r", line[:200])
            return
        for message in messages:
            if self.gateway is not None:
                try:
                    self.gateway.from_server(message)
                except Exception:  # one message the relay cannot route must not stop the others
                    log.exception("could not relay a message from the server")
            elif message.get("id") == INIT_ID and relay.kind(message) == "response":
                if not self.initialized.done():
                    self.initialized.set_result(message)
            elif relay.kind(message) == "request":  # e.g. a ping before it answered: answered like later
                for send in relay.Relay({}).from_server(message):
                    self.to_server(send.message)

    async def watch_child(self) -> None:
        loop = asyncio.get_running_loop()
        while (code := self.process.returncode) is None:
            if self.process.pidfd >= 0:
                ready = loop.create_future()
                loop.add_reader(self.process.pidfd, _set_once, ready)
                try:
                    await ready
                finally:
                    loop.remove_reader(self.process.pidfd)
            else:
                await asyncio.sleep(0.05)
        if not self.stopping:
            with contextlib.suppress(OSError):  # its last answers are relayed before the rest are failed
                for _ in range(256):  # bounded: a grandchild may still be writing to the pipe
                    if self.process.stdout < 0 or not self.on_stdout():
                        break
            self.finish(_exit_code(code), f"the MCP server process exited with code {code}")

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
            self.hard_stop()
        log.info("%s received: stopping the MCP server", signal.Signals(signum).name)
        self.stopping = True
        import threading

        timer = threading.Timer(STOP_DEADLINE_S, self.hard_stop)
        timer.daemon = True
        timer.start()
        self.finish(0, "the gateway is stopping")

    def hard_stop(self) -> None:
        _kill_group(self.process.pid, signal.SIGKILL)
        os._exit(self.code)

    async def stop_child(self) -> None:
        """Close stdin, then SIGTERM, then SIGKILL the server's process group, all within ~1 s."""
        process = self.process
        self.stopping = True

        async def exited(within: float) -> bool:
            deadline = asyncio.get_running_loop().time() + within
            while process.returncode is None and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.02)
            return process.returncode is not None

        with contextlib.suppress(ValueError, OSError):
            asyncio.get_running_loop().remove_writer(process.stdin)
        process.close_stdin()
        if not await exited(0.3):
            _kill_group(process.pid, signal.SIGTERM)
            await exited(0.6)
        _kill_group(process.pid, signal.SIGKILL)  # also any grandchild left in the group
        await exited(0.2)


# --- CLI -----------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("resolve", "serve"):
        p = sub.add_parser(name)
        p.add_argument("--runtime", required=True, choices=["npm", "python", "custom"])
        p.add_argument("--env-dir", type=Path)
        p.add_argument("--package", default="")
        if name == "serve":
            p.add_argument("--port", type=int, default=8080)
            p.add_argument("--host", action="append", dest="hosts")
            p.add_argument("--banner", default="", help="printed to stdout once the inputs are valid")
        p.add_argument("custom", nargs="*", help="custom runtime: the command's argv (after --)")
    c = sub.add_parser("cutoff")
    c.add_argument("resolved_at")
    c.add_argument("--widened", action="store_true", help="print the retry cutoffs instead, one per line")
    return parser


ALL_INTERFACES = ["0.0.0.0", "::"]
LOOPBACK = ["127.0.0.1", "::1"]


def listen_hosts(value: str | None) -> list[str]:
    """Where to listen: all interfaces by default (Fly), `loopback` for a server run on a workstation
    (infra.cli run, the emulator), or a comma-separated list of IP addresses."""
    if not value or value == "all":
        return list(ALL_INTERFACES)
    if value == "loopback":
        return list(LOOPBACK)
    hosts = [h.strip() for h in value.split(",") if h.strip()]
    import ipaddress

    for host in hosts:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise UsageError(f"MCP_HOST={value!r}: {host!r} is not an IP address (or use all / loopback)") from None
    return hosts


def main(args: list[str] | None = None) -> int:
    opts = _parser().parse_args(args)
    environ = dict(os.environ)
    try:
        if opts.command == "cutoff":
            margins = CUTOFF_WIDENING if opts.widened else (CUTOFF_MARGIN,)
            print("\n".join(install_cutoff(opts.resolved_at, margin) for margin in margins))
            return 0
        if opts.runtime != "custom" and opts.env_dir is None:
            raise UsageError("--env-dir is required for the npm and python runtimes")
        argv = resolve_argv(opts.runtime, opts.env_dir, opts.package, opts.custom, environ)
        if opts.command == "resolve":
            print(json.dumps(argv))
            return 0
        if not 0 < opts.port < 65536:
            raise UsageError(f"PORT must be 1-65535, got {opts.port}")
        if opts.banner:
            print(opts.banner, flush=True)
        return start(argv, opts.hosts or listen_hosts(environ.get("MCP_HOST")), opts.port, environ)
    except UsageError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
