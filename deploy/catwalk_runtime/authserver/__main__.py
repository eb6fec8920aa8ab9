"""``python -m catwalk_runtime.authserver``: read the settings, bind, serve until stopped.

Settings come from the environment only (secrets among them); a missing or bad one ends the process with
every problem listed, before anything listens.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sqlite3
import sys

from .. import contract
from ..errors import UsageError
from ..serve import bind_sockets, configure_logging, listen_hosts
from .settings import SettingsError, from_environ

log = logging.getLogger("catwalk.authserver")


async def _run(app: object, sockets: list) -> None:
    from .http_server import serve

    task = asyncio.ensure_future(serve(app, sockets))  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


def main(args: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m catwalk_runtime.authserver", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=None, help="default: PORT, else 8080")
    parser.add_argument("--host", action="append", dest="hosts", help="default: MCP_HOST, else all interfaces")
    opts = parser.parse_args(args)
    try:
        settings = from_environ(os.environ)
        port = opts.port if opts.port is not None else int(os.environ.get("PORT") or 8080)
        if not 0 < port < 65536:
            raise UsageError(f"PORT must be 1-65535, got {port}")
        hosts = opts.hosts or listen_hosts(os.environ.get(contract.HOST))
        configure_logging()
        from .app import App

        app = App(settings)
        sockets = bind_sockets(hosts, port)
    except SettingsError as exc:
        print(f"Error: the authorization server cannot start:\n{exc}", file=sys.stderr)
        return 1
    except sqlite3.Error as exc:
        print(f"Error: {contract.AS_STATE}={settings.state_dir}: its database cannot be used: {exc}", file=sys.stderr)
        return 1
    except (UsageError, ValueError, OSError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    log.info("Authorization server %s serving %d resource(s) on port %d (state: %s)", settings.issuer,
             len(settings.resources), port, settings.state_dir or "in memory: restarts forget clients")  # fmt: skip
    asyncio.run(_run(app, sockets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
