"""`status [FILE|-]`: a table of the deployed servers with their health, from `pulumi stack output --json`.

Reads the outputs from FILE, from stdin (`-`), or by running `pulumi stack output --json`. Health is the
open `/status` endpoint of each server (no token needed), checked concurrently with a short timeout.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit, urlunsplit

import httpx
from rich.console import Console
from rich.table import Table


def servers_of(outputs: dict) -> dict[str, dict]:
    """The stack exports one object per server; anything else (e.g. a plain string) is not a server."""
    return {name: value for name, value in outputs.items() if isinstance(value, dict) and "url" in value}


def status_url(mcp_url: str) -> str:
    parts = urlsplit(mcp_url)
    return urlunsplit((parts.scheme, parts.netloc, "/status", "", ""))


def health(url: str, timeout: float = 5.0) -> str:
    start = time.monotonic()
    try:
        response = httpx.get(status_url(url), timeout=timeout)
    except httpx.HTTPError as exc:
        return f"✗ unreachable ({type(exc).__name__})"
    elapsed = (time.monotonic() - start) * 1000
    if response.status_code == 200:
        return f"✓ up ({elapsed:.0f} ms)"
    return f"✗ HTTP {response.status_code}"


def auth_of(server: dict) -> str:
    """How clients authenticate: the mode the outputs name (stacks deployed before OAuth export a boolean)."""
    auth = server.get("auth", True)
    if auth is True:
        return "bearer"
    if auth is False:
        return "open"
    return str(auth)


def read_outputs(source: str | None) -> dict:
    if source == "-":
        return json.load(sys.stdin)
    if source:
        with open(source) as handle:
            return json.load(handle)
    done = subprocess.run(["pulumi", "stack", "output", "--json"], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip() or "pulumi stack output failed")
    return json.loads(done.stdout)


def handle(args) -> int:
    console = Console()
    try:
        servers = servers_of(read_outputs(args.source))
    except (OSError, ValueError, RuntimeError) as exc:
        Console(stderr=True).print(f"[red]error:[/] cannot read stack outputs: {exc}")
        return 1
    names = sorted(servers)
    with ThreadPoolExecutor(max_workers=8) as pool:
        states = list(pool.map(lambda n: health(servers[n]["url"]) if args.health else "-", names))
    table = Table(title=f"catwalk: {len(names)} MCP server(s)")
    for column in ("server", "runtime", "package", "version", "regions", "auth", "url", "health"):
        table.add_column(column)
    for name, state in zip(names, states, strict=True):
        s = servers[name]
        table.add_row(
            name,
            s.get("badge", s.get("runtime", "")),
            str(s.get("package") or ""),
            str(s.get("version") or ""),
            ", ".join(s.get("regions") or []),
            auth_of(s),
            s["url"],
            state,
        )
    console.print(table)
    return 0 if all(not s.startswith("✗") for s in states) else 1


def add_parser(commands) -> None:
    parser = commands.add_parser("status", help="table of deployed servers and their health", description=__doc__)
    parser.add_argument("source", nargs="?", help="stack outputs JSON file, or - for stdin")
    parser.add_argument("--no-health", dest="health", action="store_false", help="skip the /status checks")
    parser.set_defaults(func=handle)
