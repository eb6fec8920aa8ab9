"""`run SPEC [--port 8080]`: try an MCP server on your own machine before deploying it.

The same detection and the same `deploy/entrypoint.sh` as on Fly, with a fresh bearer token: what
answers here is what the stack will run. Prints the local URL, the token and a client config once the
server answers, then serves until Ctrl-C.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from components import safety
from components.detect import DetectError, detect
from components.detect.models import custom_spec
from components.errors import CatwalkError
from components.mcpcheck import check
from components.providers.machine_config import AUTH_OPT_OUT
from components.server import client_configs

ENTRYPOINT = Path(__file__).resolve().parents[2] / "deploy" / "entrypoint.sh"


# What of this shell's environment the server and its installs see: where home and temp are, the locale,
# a display for a browser, and how to reach the registries (proxy, CA). Nothing else: a shell holds
# credentials under names no denylist foresees (DATABASE_URL with a password, GH_PAT, SSH_AUTH_SOCK, ...).
# A variable the server needs is passed by name with --env. Why each one: docs/env-allowlists.md.
INHERITED = frozenset(
    {
        "HOME",
        "USER",
        "LOGNAME",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TERM",
        "TMPDIR",
        "DISPLAY",
        "WAYLAND_DISPLAY",
        "XDG_RUNTIME_DIR",
        "XDG_CACHE_HOME",
        "XDG_CONFIG_HOME",
        "XDG_DATA_HOME",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "no_proxy",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "NODE_EXTRA_CA_CERTS",
        "UV_NATIVE_TLS",
    }
)
INHERITED_PREFIXES = ("LC_",)


class NoBrowser(CatwalkError, RuntimeError):
    """The server drives a browser and the local machine has none that the entrypoint could use."""


def local_browser(spec) -> str | None:
    """The Chromium a browser server uses here (None for others): MCP_BROWSER from this shell, else the
    `chromium` on PATH. On Fly the baked image brings Debian's; here it must already be installed."""
    if not spec.browser:
        return None
    browser = os.environ.get("MCP_BROWSER") or shutil.which("chromium")
    if not browser:
        raise NoBrowser(
            f"{spec.pinned or spec.package} drives a browser and no Chromium was found: install it "
            "(`sudo apt-get install chromium` on Debian/Ubuntu) or set MCP_BROWSER to a Chromium executable"
        )
    return browser


class UsageError(ValueError):
    """A command-line value is refused; the message names the option."""


def passed_env(items: list[str]) -> dict[str, str]:
    """`--env NAME=VALUE` or `--env NAME` (this shell's value): what the user hands the server on purpose.

    Names are checked as a stack's `secrets` are: no variable that would override the runtime, catwalk's own
    settings or where installs fetch from (a credential is fine here: it stays on the local machine).
    """
    env = {}
    for item in items:
        name, has_value, value = item.partition("=")
        try:
            safety.check_env_name(name, plain=False)
            if not has_value:
                if name not in os.environ:
                    raise ValueError(f"{name!r} is not set in this shell (write --env {name}=VALUE)")
                value = os.environ[name]
            safety.check_env_value(value)
        except ValueError as exc:
            raise UsageError(f"--env {name}: {exc}") from None
        env[name] = value
    return env


def server_env(
    spec, *, port: int, home: Path, token: str | None, passed: dict[str, str] | None = None
) -> dict[str, str]:
    """The entrypoint's environment: the detected contract, `passed` (--env), and an allowlist of this shell's.

    Installers still see the proxy and CA settings (HTTPS_PROXY, SSL_CERT_FILE, ...) they need here. MCP_*
    is not inherited, except MCP_BROWSER for a server that drives a browser (see `local_browser`).
    """
    inherited = {k: v for k, v in os.environ.items() if k in INHERITED or k.startswith(INHERITED_PREFIXES)}
    # Loopback only: a server tried on a workstation (perhaps with --no-auth) is not for the LAN.
    env = {**inherited, **(passed or {}), **spec.env()}
    env.update(PORT=str(port), MCP_HOME=str(home), MCP_HOST="loopback")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', os.defpath)}"
    if token:
        env["MCP_AUTH_TOKEN"] = token
    else:
        env.update(AUTH_OPT_OUT)  # --no-auth, said out loud: without it the gateway refuses to start
    browser = local_browser(spec)
    if browser:
        env["MCP_BROWSER"] = browser
    return env


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def handle(args) -> int:
    console = Console(stderr=True)
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops the server too, as Ctrl-C does
    try:
        if args.command:
            spec = custom_spec(args.spec, args.arg)
        else:
            spec = detect(args.spec, version=args.version, runtime=args.runtime, args=args.arg)
    except DetectError as exc:
        console.print(f"[red]error:[/] {exc}")
        return 1
    token = None if args.no_auth else secrets.token_urlsafe(32)
    home = Path(args.home).expanduser()
    console.print(f"{spec.runtime}: {spec.pinned or spec.command}  ({'; '.join(spec.evidence)})")
    try:
        env = server_env(spec, port=args.port, home=home, token=token, passed=passed_env(args.env))
    except (NoBrowser, UsageError) as exc:
        console.print(f"[red]error:[/] {exc}")
        return 1
    home.mkdir(parents=True, exist_ok=True)
    # The server's log goes to stderr, so stdout carries only the URL, token and client config.
    process = subprocess.Popen([str(ENTRYPOINT)], env=env, stdout=sys.stderr)
    try:
        url = f"http://127.0.0.1:{args.port}/mcp"
        result = check(url, token=token, timeout=args.timeout, wait_until_up=True, poll_interval=0.5)
        if process.poll() is not None:
            console.print(f"[red]error:[/] the server exited with status {process.returncode}")
            return 1
        if not result.ok:
            console.print(f"[red]error:[/] no MCP answer at {url}: {result.error}")
            process.send_signal(signal.SIGTERM)
            process.wait(10)
            return 1
        print(f"MCP server ready at {url} ({len(result.tools)} tools: {', '.join(result.tools[:8])})", flush=True)
        if token:
            print(f"token: {token}", flush=True)
        print(client_configs("local", url, token)["claude_code"], flush=True)
        return process.wait()
    except KeyboardInterrupt:
        process.send_signal(signal.SIGTERM)
        return process.wait(10)


def add_parser(commands) -> None:
    parser = commands.add_parser("run", help="serve an MCP server locally, as the stack would", description=__doc__)
    parser.add_argument("spec", help="package spec (mcp-server-time, @scope/name, pypi:NAME==1.0, ...) or command")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--version", help="version or range")
    parser.add_argument("--runtime", choices=["npm", "python"], help="force a registry")
    parser.add_argument("--command", action="store_true", help="SPEC is a custom command, run without a shell")
    parser.add_argument("--arg", action="append", default=[], help="extra server argument (repeatable)")
    parser.add_argument("--no-auth", action="store_true", help="serve without a bearer token")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME[=VALUE]",
        help="hand the server this variable (NAME alone: its value in this shell); repeatable. Of this shell's "
        "environment the server otherwise sees only home, locale, display, proxy and CA settings",
    )
    parser.add_argument("--home", default="~/.cache/catwalk/servers", help="where server environments live")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the first answer")
    parser.set_defaults(func=handle)
