"""``python -m catwalk_runtime.serve``: check the inputs, bind, spawn the server, then serve it over HTTP.

Order matters for a cold start: the sockets are bound, the server spawned and its initialize request
written to its stdin before the event loop and the HTTP side are imported, so the server boots while
they load and early clients queue instead of being refused. Measured in docs/gateway-start-order.md;
only what the way to the spawn needs is imported at module level here and in the modules it uses.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys

from . import contract, relay
from .errors import UsageError
from .launch import add_server_arguments, resolve_argv
from .supervisor import EarlyStops, ServerProcess, child_env, kill_group
from .token_delivery import make_non_dumpable, read_token

LOG_FORMAT = "[%(levelname).1s %(asctime)s %(name)s] %(message)s"
ALL_INTERFACES = ["0.0.0.0", "::"]
LOOPBACK = ["127.0.0.1", "::1"]


def configure_logging() -> None:
    """Root logging at MCP_LOG_LEVEL, once."""
    import logging

    if not logging.root.handlers:
        logging.basicConfig(level=os.environ.get("MCP_LOG_LEVEL", "INFO").upper(), format=LOG_FORMAT)


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


def bind_sockets(hosts: list[str], port: int) -> list[socket.socket]:
    """One listening socket per address; IPv6 ones are IPv6-only so IPv4 and IPv6 can share the port
    (127.0.0.1, [::1] and Fly's 6PN all answer)."""
    sockets: list[socket.socket] = []
    for host in hosts:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # Created as TCP (not protocol 0), so asyncio sets TCP_NODELAY on every connection accepted from it:
        # without it each small answer waited for the client's delayed ACK (~40 ms per call).
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
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
                import logging

                configure_logging()
                logging.getLogger("catwalk.gateway").warning(
                    "IPv6 is unavailable here (%s); serving on IPv4 only", exc.strerror
                )
                continue
            for other in sockets:
                other.close()
            raise UsageError(f"cannot listen on {host} port {port}: {exc.strerror}") from exc
        sockets.append(sock)
    return sockets


def oauth_auth(environ: dict[str, str], token: str | None) -> object | None:
    """The OAuth authenticator MCP_AUTH_MODE asks for (oauth, both), else None (the static token alone).

    Imported only then: PyJWT and cryptography are not loaded by a gateway that does not use them.
    """
    mode = environ.get(contract.AUTH_MODE) or contract.AUTH_MODE_BEARER
    if mode not in contract.AUTH_MODES:
        raise UsageError(f"{contract.AUTH_MODE}={mode[:40]!r}: expected one of {', '.join(contract.AUTH_MODES)}")
    if mode == contract.AUTH_MODE_BEARER:
        return None
    if token is None:
        raise UsageError(f"{contract.AUTH_MODE}={mode} cannot be combined with MCP_AUTH=off")
    from .oauth import from_environ

    try:
        return from_environ(environ, token)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def start(argv: list[str], hosts: list[str], port: int, environ: dict[str, str]) -> int:
    """Validate, bind, spawn the server and ask it to initialize; only then import the event loop and serve."""
    token = read_token(environ)  # before anything binds: no token and no opt-out, nothing listens
    if token is not None:
        make_non_dumpable()
    auth = oauth_auth(environ, token)
    try:
        start_timeout = float(environ.get("MCP_START_TIMEOUT", "120"))
    except ValueError:
        raise UsageError("MCP_START_TIMEOUT must be a number of seconds") from None
    sockets = bind_sockets(hosts, port)
    early = EarlyStops()
    early.install()
    process = ServerProcess(argv, child_env(environ))
    try:
        # The initialize request is in the server's stdin before it has even loaded: it answers as soon
        # as it can, while the gateway imports its HTTP side.
        process.write(relay.encode(relay.initialize_request(0)) + b"\n")
        configure_logging()
        import asyncio

        from .gateway import Gateway

        return asyncio.run(Gateway(process, sockets, hosts, port, token, start_timeout, early.received, auth).run())
    finally:
        for sock in sockets:
            sock.close()
        if process.returncode is None:  # run() stops it; this is only a safety net
            kill_group(process.pid, signal.SIGKILL)
        process.close()


def main(args: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m catwalk_runtime.serve", description=__doc__.splitlines()[0])
    add_server_arguments(parser)
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--host", action="append", dest="hosts")
    parser.add_argument("--banner", default="", help="printed to stdout once the inputs are valid")
    opts = parser.parse_args(args)
    environ = dict(os.environ)
    try:
        argv = resolve_argv(opts.runtime, opts.env_dir, opts.package, opts.custom, environ)
        if not 0 < opts.port < 65536:
            raise UsageError(f"PORT must be 1-65535, got {opts.port}")
        if opts.banner:
            print(opts.banner, flush=True)
        return start(argv, opts.hosts or listen_hosts(environ.get(contract.HOST)), opts.port, environ)
    except UsageError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
