"""``python -m tests.tools.fly_emulator``: serve the Fly Machines API emulator on loopback until interrupted."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from tests.tools.fly_emulator.containers import Engine as ContainerEngine
from tests.tools.fly_emulator.server import DEFAULT_FAULTS, FAULTS, Emulator, Faults


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.tools.fly_emulator", description=__doc__)
    p.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=4280, help="port, 0 for any free one (default 4280)")
    p.add_argument("--token", default=None, help="accept only this API token (default: any non-empty one)")
    p.add_argument("--fault-rate", type=float, default=0.0, help="probability of a fault per /v1 request")
    p.add_argument("--seed", type=int, default=None, help="seed of the fault generator")
    p.add_argument(
        "--faults",
        default=",".join(DEFAULT_FAULTS),
        help=f"fault kinds to draw from, some of {','.join(FAULTS)} (default {','.join(DEFAULT_FAULTS)})",
    )
    p.add_argument("--slow-s", type=float, default=2.0, help="delay of a 'slow' fault's answer (default 2)")
    p.add_argument("--retry-after", type=int, default=1, help="Retry-After seconds on injected 429s (default 1)")
    p.add_argument("--transition-s", type=float, default=0.2, help="seconds per machine state step (default 0.2)")
    p.add_argument("--run-machines", action="store_true", help="run each started machine as a local process")
    p.add_argument("--entrypoint", default=None, help="script machines run (default deploy/entrypoint.sh)")
    p.add_argument(
        "--proxy-port",
        type=int,
        default=None,
        help="also serve Fly's proxy here: Host <app>.fly.dev balanced over the app's machines (needs --run-machines)",
    )
    p.add_argument(
        "--proxy-region",
        default=None,
        help="the region nearest to the proxy's clients: its machines take the requests while one is started",
    )
    p.add_argument(
        "--autostop-after",
        type=float,
        default=None,
        metavar="S",
        help="the proxy stops a machine whose service has autostop after S idle seconds (default: never)",
    )
    p.add_argument(
        "--checks",
        action="store_true",
        help="report each machine's config checks as Fly does, run against its process (needs --run-machines)",
    )
    p.add_argument(
        "--containers",
        metavar="DOCKER_HOST",
        default=None,
        help="run each started machine as a Docker container of its image on this engine (e.g. unix:///…/docker.sock)",
    )
    p.add_argument("--workdir", default=None, help="where MCP_HOME and machine logs go (default: a temp dir)")
    args = p.parse_args(argv)
    if not 0.0 <= args.fault_rate <= 1.0:
        p.error("--fault-rate must be between 0 and 1")
    if not args.host.startswith("127.") and args.host not in ("localhost", "::1"):
        p.error("--host must be a loopback address")
    if args.proxy_port is not None and not args.run_machines:
        p.error("--proxy-port needs --run-machines (the proxy forwards to the machines' processes)")
    if args.autostop_after is not None and args.autostop_after <= 0:
        p.error("--autostop-after must be a positive number of seconds")
    unknown = sorted(set(args.faults.split(",")) - set(FAULTS) - {""})
    if unknown:
        p.error(f"--faults: unknown kinds {', '.join(unknown)} (expected some of {','.join(FAULTS)})")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    faults = Faults(
        rate=args.fault_rate,
        seed=args.seed,
        kinds=tuple(k for k in args.faults.split(",") if k),
        retry_after=args.retry_after,
        slow_s=args.slow_s,
    )
    emulator = Emulator(
        token=args.token,
        faults=faults,
        transition_s=args.transition_s,
        run_machines=args.run_machines,
        entrypoint=args.entrypoint,
        workdir=args.workdir,
        containers=ContainerEngine(host=args.containers) if args.containers else None,
        proxy_region=args.proxy_region,
        autostop_after=args.autostop_after,
        checks=args.checks,
    )
    server = emulator.serve(args.host, args.port)
    host, port = server.server_address[:2]
    print(f"fly emulator listening on http://{host}:{port}", flush=True)
    proxy_server = None
    if args.proxy_port is not None:
        proxy_server = emulator.serve_proxy(args.host, args.proxy_port)
        phost, pport = proxy_server.server_address[:2]
        print(f"fly proxy listening on http://{phost}:{pport}", flush=True)
        threading.Thread(target=proxy_server.serve_forever, daemon=True).start()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        stop.wait()
    finally:
        server.shutdown()
        server.server_close()
        if proxy_server is not None:
            proxy_server.shutdown()
            proxy_server.server_close()
        emulator.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
