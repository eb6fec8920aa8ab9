"""catwalk gateway: serve one stdio MCP server over HTTP (/mcp, /sse, /status) with bearer auth.

Runs with the Python of mcp-proxy's own isolated venv and reuses mcp-proxy 0.13's proxy server and routes
(``create_proxy_server``, ``create_single_instance_routes``) in one process. Why not plain ``mcp-proxy``:

* **Auth.** mcp-proxy has no inbound authentication. A pure ASGI middleware in front of its Starlette routes
  checks ``Authorization: Bearer <token>`` (constant-time) on every path except ``/status``. One process
  means no second hop for streaming responses and nothing extra to supervise; a separate reverse proxy
  (Caddy, nginx) would add a binary, a config language and a second process to keep alive.
* **IPv4 + IPv6.** ``--host=::`` in the original design listened on IPv6 only; here one IPv4 socket and
  one IPv6-only socket are bound on the same port, so 127.0.0.1 and [::1] (and Fly's 6PN) all answer.
* **Lifecycle.** The server process is spawned here (not by ``mcp.client.stdio``) so that its death ends
  the gateway with a non-zero code (Fly then restarts the machine) and SIGTERM stops its whole process
  group within 2 s. mcp-proxy keeps serving errors after its child dies and waits 2 s+ on shutdown.
* **Speed.** The sockets are bound and the server spawned (plain ``subprocess``) before anyio, mcp,
  starlette and uvicorn are imported (~0.25 s), so it boots while they load and early clients queue instead
  of being refused; only what precedes the spawn is imported at module level. The initialize request goes
  out as soon as the client side is imported, and the HTTP side (Starlette app, loaded uvicorn config) is
  built while the server answers. Imports not needed to answer are deferred (see ``_defer_imports``), and
  the cyclic GC stays off until the gateway serves.
* **Secrets.** ``MCP_AUTH_TOKEN`` is removed from the server's environment: a third-party server has no
  business reading the gateway's credential. The token is never logged.

Sub-commands (stdlib only except ``serve``): ``resolve`` prints the server's argv as JSON (the image build
runs it to fail early on a wrong ``MCP_LAUNCH``), ``cutoff`` turns ``MCP_RESOLVED_AT`` into the install
cutoff, ``serve`` runs the gateway.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import importlib
import importlib.util
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
    from typing import Any

LOG_FORMAT = "[%(levelname).1s %(asctime)s %(name)s] %(message)s"


def _configure_logging() -> None:
    """Root logging at MCP_LOG_LEVEL, once (mcp, mcp-proxy and uvicorn log through it too)."""
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


# --- auth (pure ASGI) ----------------------------------------------------------------------------------


def _digest(value: bytes) -> bytes:
    import hashlib

    return hashlib.sha256(value).digest()


class BearerAuth:
    """Require ``Authorization: Bearer <token>`` on every path but ``/status``.

    Deny by default (``/mcp``, ``/sse``, ``/messages/`` and anything added later), so a new route is never
    accidentally public. Both sides are hashed before ``hmac.compare_digest``: constant time, and the
    token's length does not leak either.
    """

    def __init__(self, app: Any, token: str) -> None:
        import hmac

        self.app = app
        self._want = _digest(token.encode())
        self._equal = hmac.compare_digest

    def authorized(self, headers: list[tuple[bytes, bytes]]) -> bool:
        for key, value in headers:
            if key.lower() == b"authorization":
                scheme, _, credential = value.strip().partition(b" ")
                return scheme.lower() == b"bearer" and self._equal(_digest(credential.strip()), self._want)
        return False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "lifespan" or scope.get("path") in OPEN_PATHS or self.authorized(scope.get("headers", [])):
            await self.app(scope, receive, send)
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1008})
        else:
            body = b'{"error":"unauthorized","detail":"send Authorization: Bearer <token>"}'
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        (b"www-authenticate", b'Bearer realm="mcp"'),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})


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


class _Child:
    """The MCP server process, started with plain ``subprocess`` before the event loop and its imports exist.

    Its stdin/stdout are non-blocking pipes read and written through ``anyio.wait_readable/writable``; its
    exit is awaited on a pidfd (Linux), else by polling. It leads a new session, so its whole process group
    can be signalled.
    """

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        import subprocess

        child_stdin, self._stdin = os.pipe()
        self._stdout, child_stdout = os.pipe()
        try:
            self.popen = subprocess.Popen(argv, stdin=child_stdin, stdout=child_stdout, env=env, start_new_session=True)
        except BaseException:
            os.close(self._stdin)
            os.close(self._stdout)
            raise
        finally:
            os.close(child_stdin)
            os.close(child_stdout)
        self.pid = self.popen.pid
        os.set_blocking(self._stdin, False)
        os.set_blocking(self._stdout, False)
        self._pidfd = -1
        with contextlib.suppress(AttributeError, OSError):  # no pidfd before Linux 5.3: poll instead
            self._pidfd = os.pidfd_open(self.pid)

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    async def wait(self) -> int:
        import anyio

        while (code := self.popen.poll()) is None:
            try:
                if self._pidfd < 0:
                    raise anyio.BusyResourceError("no pidfd")
                await anyio.wait_readable(self._pidfd)
            except anyio.BusyResourceError:  # another task waits on the pidfd already
                await anyio.sleep(0.05)
        return code

    async def read(self) -> bytes:
        """The next chunk of the server's stdout; b"" at end of file."""
        import anyio

        while True:
            try:
                return os.read(self._stdout, 65536)
            except BlockingIOError:
                await anyio.wait_readable(self._stdout)

    async def send(self, data: bytes) -> None:
        import anyio

        view = memoryview(data)
        while view:
            if self._stdin < 0:
                raise BrokenPipeError("the server's stdin is closed")
            try:
                view = view[os.write(self._stdin, view) :]
            except BlockingIOError:
                await anyio.wait_writable(self._stdin)

    def close_stdin(self) -> None:
        if self._stdin >= 0:
            fd, self._stdin = self._stdin, -1
            os.close(fd)

    def close(self) -> None:
        self.close_stdin()
        for name in ("_stdout", "_pidfd"):
            fd = getattr(self, name)
            if fd >= 0:
                setattr(self, name, -1)
                os.close(fd)


class _State:
    def __init__(self) -> None:
        self.code = 0
        self.stopping = False
        self.server: Any = None


def _kill_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


async def _stop_child(process: _Child) -> None:
    """Close stdin, then SIGTERM, then SIGKILL the server's process group, all within ~1 s."""
    import anyio

    with anyio.CancelScope(shield=True):
        if process.returncode is None:
            process.close_stdin()
            with anyio.move_on_after(0.3):
                await process.wait()
        if process.returncode is None:
            _kill_group(process.pid, signal.SIGTERM)
            with anyio.move_on_after(0.6):
                await process.wait()
        _kill_group(process.pid, signal.SIGKILL)  # also any grandchild left in the group
        if process.returncode is None:
            with anyio.move_on_after(0.2):
                await process.wait()


# --- import deferral (start-up speed) ----------------------------------------------------------------------
#
# The gateway cannot answer before mcp, starlette and uvicorn are imported, and on a 2-CPU machine that
# CPU time is also taken from the server starting next to it. Four imports on that path are not needed to
# answer: ``mcp/__init__`` and ``mcp/server/__init__`` (they pull FastMCP, pydantic-settings, the client
# session group), ``uvicorn/__init__`` (it pulls uvicorn.main: click, the reload and multiprocess
# supervisors), ``httpx`` (mcp.shared.session only reads ``httpx.codes`` on a request timeout) and
# ``jsonschema`` (only for tool-call argument/result validation). They are replaced, in this process only,
# by stand-ins that load the real module on first use, so nothing behaves differently: only later.


class _DeferredModule(types.ModuleType):
    """Stands in for a module until an attribute of it is used; then imports and forwards to the real one."""

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        name = self.__name__
        if sys.modules.get(name) is self:
            del sys.modules[name]
        try:
            real = importlib.import_module(name)
        except BaseException:
            sys.modules.setdefault(name, self)
            raise
        return getattr(real, attr)


class _LazyPackage(types.ModuleType):
    """A package whose ``__init__`` runs only when a name it defines is asked for; submodules import alone."""

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        name = self.__name__
        where = self.__dict__["_cheap"].get(attr)
        if where is not None:
            return getattr(importlib.import_module(where), attr)
        if importlib.util.find_spec(f"{name}.{attr}") is not None:
            return importlib.import_module(f"{name}.{attr}")
        if not self.__dict__.get("_initialized"):
            self.__dict__["_initialized"] = True
            exec(self.__spec__.loader.get_code(name), self.__dict__)  # the package's own __init__
            if attr in self.__dict__:
                return self.__dict__[attr]
        raise AttributeError(f"module {name!r} has no attribute {attr!r}")


def _defer_imports() -> None:
    """Install the stand-ins above (no-op for any module already imported or not installed)."""

    def spec_of(name: str) -> Any:
        if name in sys.modules:
            return None
        with contextlib.suppress(ImportError, ValueError):
            return importlib.util.find_spec(name)
        return None

    for name in ("httpx", "jsonschema"):
        if spec := spec_of(name):
            module = _DeferredModule(name)
            module.__spec__, module.__file__, module.__loader__ = spec, spec.origin, spec.loader
            sys.modules[name] = module
    lowlevel = {"Server": "mcp.server.lowlevel", "NotificationOptions": "mcp.server.lowlevel"}
    packages = (
        ("mcp", {}),
        ("mcp.server", {**lowlevel, "InitializationOptions": "mcp.server.models"}),
        ("uvicorn", {"Config": "uvicorn.config", "Server": "uvicorn.server"}),
    )
    for name, cheap in packages:
        spec = spec_of(name)
        if spec is None or spec.submodule_search_locations is None:
            continue
        package = _LazyPackage(name)
        package.__spec__, package.__file__, package.__loader__ = spec, spec.origin, spec.loader
        package.__path__ = list(spec.submodule_search_locations)
        package.__package__ = name
        package.__dict__["_cheap"] = cheap
        sys.modules[name] = package
        if "." in name:
            parent, _, child = name.rpartition(".")
            setattr(sys.modules[parent], child, package)


def start(argv: list[str], hosts: list[str], port: int, environ: dict[str, str]) -> int:
    """Validate, bind, spawn the server, and only then import the event loop and serve."""
    token = environ.get("MCP_AUTH_TOKEN")
    if token is not None and (not token.strip() or CONTROL.search(token)):
        raise UsageError("MCP_AUTH_TOKEN is set but empty or contains control characters; refusing to start")
    try:
        start_timeout = float(environ.get("MCP_START_TIMEOUT", "120"))
    except ValueError:
        raise UsageError("MCP_START_TIMEOUT must be a number of seconds") from None
    sockets = bind_sockets(hosts, port)
    # Start-up allocates ~10^5 long-lived objects (pydantic models above all); the cyclic collector would
    # scan them again and again (~10% of the import time). Off until serving, then they are frozen.
    gc.disable()
    # A stop request before the event loop handles signals must not kill the gateway alone (the server
    # leads its own session and would be left running): it is noted, and watch_signals acts on it.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _note_early_stop)
    # The server first: it boots while anyio, mcp, starlette and uvicorn load here (~0.25 s).
    process = _Child(argv, _child_env(environ))
    try:
        _configure_logging()
        # No pydantic plugins exist in this venv; looking for them scans every installed distribution.
        # Set after the spawn: the server's environment is the caller's, untouched.
        os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
        import anyio

        return anyio.run(serve, process, sockets, hosts, port, token, start_timeout, environ)
    finally:
        for sock in sockets:
            sock.close()
        if process.returncode is None:  # serve stops it; this is only a safety net
            _kill_group(process.pid, signal.SIGKILL)
        process.close()
        _collect_again()


_early_stops: list[int] = []  # SIGTERM/SIGINT received before the event loop took over the signals


def _note_early_stop(signum: int, _frame: Any) -> None:
    _early_stops.append(signum)


def _collect_again() -> None:
    """Start-up is over: keep what it built out of every future collection, and collect from now on."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


async def serve(
    process: _Child,
    sockets: list[socket.socket],
    hosts: list[str],
    port: int,
    token: str | None,
    start_timeout: float,
    environ: dict[str, str],
) -> int:
    """Ask the server to initialize as soon as the client side is imported; load the HTTP side meanwhile."""
    import threading
    from typing import Any

    import anyio

    state = _State()
    _defer_imports()
    from mcp.client.session import ClientSession
    from mcp.shared.message import SessionMessage
    from mcp.types import JSONRPCMessage
    from mcp_proxy.proxy_server import create_proxy_server
    from pydantic import ValidationError

    # Set once the initialize request is in the server's stdin pipe (or never will be: pump or task ended).
    initialize_sent = anyio.Event()

    async def pump_stdout(send: Any) -> None:
        async with send:
            buffer = b""
            while chunk := await process.read():
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if not line.strip():
                        continue
                    try:
                        message = JSONRPCMessage.model_validate_json(line)
                    except ValidationError:
                        log.warning("ignoring a non-JSON-RPC line on the server's stdout: %r", line[:200])
                        continue
                    await send.send(SessionMessage(message))

    async def pump_stdin(receive: Any) -> None:
        try:
            async with receive:
                async for message in receive:
                    data = message.message.model_dump_json(by_alias=True, exclude_none=True)
                    try:
                        await process.send(data.encode() + b"\n")
                    except (anyio.BrokenResourceError, anyio.ClosedResourceError, BrokenPipeError):
                        return
                    initialize_sent.set()
        finally:
            initialize_sent.set()

    async def watch_child(scope: anyio.CancelScope) -> None:
        code = await process.wait()
        if not state.stopping:
            log.error("Error: the MCP server process exited with code %s; stopping", code)
            state.code = code if code and code > 0 else (128 - code if code else 1)
            scope.cancel()

    def hard_stop() -> None:
        _kill_group(process.pid, signal.SIGKILL)
        os._exit(state.code)

    async def watch_signals(scope: anyio.CancelScope) -> None:
        async def received() -> Any:
            for signum in _early_stops:  # noted while starting (the receiver replaced that handler)
                yield signum
            async for signum in signals:
                yield signum

        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in received():
                if state.stopping:
                    hard_stop()
                log.info("%s received: stopping the MCP server", signal.Signals(signum).name)
                state.stopping = True
                timer = threading.Timer(STOP_DEADLINE_S, hard_stop)
                timer.daemon = True
                timer.start()
                if state.server is not None:
                    state.server.should_exit = True
                else:
                    scope.cancel()

    proxied: dict[str, Any] = {}  # "server" once the MCP server answered initialize, else "error"
    initialized = anyio.Event()

    async def initialize(session: Any) -> None:
        try:
            with anyio.fail_after(start_timeout):
                proxied["server"] = await create_proxy_server(session)
        except Exception as exc:  # a timeout, the server closing its stdout or answering garbage at start
            proxied["error"] = exc
        finally:
            initialize_sent.set()
            initialized.set()

    read_send, read_receive = anyio.create_memory_object_stream[Any](0)
    write_send, write_receive = anyio.create_memory_object_stream[Any](0)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch_signals, tg.cancel_scope)
            tg.start_soon(watch_child, tg.cancel_scope)
            tg.start_soon(pump_stdout, read_send)
            tg.start_soon(pump_stdin, write_receive)
            async with ClientSession(read_receive, write_send) as session:
                tg.start_soon(initialize, session)
                await initialize_sent.wait()
                # While the server answers: the HTTP side, up to a loaded uvicorn config (routes come later).
                add_mcp_routes, config = _http_side(token, environ)
                await initialized.wait()
                if isinstance(proxied.get("error"), TimeoutError):
                    log.error("Error: the MCP server did not answer initialize within %.0f s", start_timeout)
                    state.code = 1
                    tg.cancel_scope.cancel()
                    return state.code
                if "error" in proxied:
                    with anyio.move_on_after(1):
                        await process.wait()  # watch_child reports the exit code and cancels
                    log.error("Error: the MCP server failed during initialize: %s", proxied["error"])
                    state.code = state.code or 1
                    tg.cancel_scope.cancel()
                    return state.code
                proxy = proxied["server"]
                manager = add_mcp_routes(proxy)
                if token is None:
                    log.warning("MCP_AUTH_TOKEN is not set: /mcp and /sse are open to anyone who can connect")
                async with manager.run():
                    state.server = _uvicorn_server(config)
                    names = ", ".join(f"{h}:{port}" if ":" not in h else f"[{h}]:{port}" for h in hosts)
                    log.info(
                        "Serving %s %s on %s (/mcp, /sse, /status; auth %s)",
                        proxy.name,
                        proxy.version or "",
                        names,
                        "required" if token is not None else "OFF",
                    )
                    await state.server.serve(sockets=sockets)
            tg.cancel_scope.cancel()
    finally:
        for sock in sockets:
            sock.close()
        await _stop_child(process)
    return state.code


def _http_side(token: str | None, environ: dict[str, str]) -> tuple[Any, Any]:
    """A loaded uvicorn config for a Starlette app serving ``/status``, and the function that adds the MCP
    routes (``/mcp``, ``/sse``, ``/messages/``) once the proxied server is known (it returns their manager)."""
    import uvicorn
    from mcp_proxy.mcp_server import create_single_instance_routes
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def status(_request: Any) -> Any:
        return JSONResponse({"status": "ok"})

    app = Starlette(routes=[Route("/status", status)])
    app.router.redirect_slashes = False

    def add_mcp_routes(proxy: Any) -> Any:
        routes, manager = create_single_instance_routes(proxy, stateless_instance=False)
        app.router.routes.extend(routes)
        return manager

    config = uvicorn.Config(
        app if token is None else BearerAuth(app, token),
        lifespan="off",
        http="h11",  # what "auto" picks here (no httptools), without probing for it
        ws="none",  # nothing is served over WebSocket
        log_level=environ.get("MCP_LOG_LEVEL", "info").lower(),
        timeout_graceful_shutdown=0.5,
        timeout_keep_alive=5,
        server_header=False,  # nothing about the stack to an unauthenticated caller
    )
    config.load()
    return add_mcp_routes, config


def _uvicorn_server(config: Any) -> Any:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn without its own signal handling (the gateway decides how to stop); GC back on once up."""

        @contextlib.contextmanager
        def capture_signals(self):  # type: ignore[override]
            yield

        def install_signal_handlers(self) -> None:
            return

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            _collect_again()

    return Server(config)


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
