"""Start the emulator for a test: in a thread (``running_emulator``) or as ``python -m`` (``emulator_process``).

Both yield an ``EmulatorHandle``: ``base_url``, a ``token`` the emulator accepts, and helpers over the
``/_emulator/`` endpoints. ``running_emulator`` also exposes the in-process ``Emulator`` as ``.emulator``.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.tools.fly_emulator.containers import Engine as ContainerEngine
from tests.tools.fly_emulator.processes import REPO
from tests.tools.fly_emulator.server import DEFAULT_FAULTS, Emulator, Faults

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class EmulatorHandle:
    def __init__(
        self, base_url: str, token: str, emulator: Emulator | None = None, proxy_url: str | None = None
    ) -> None:
        self.base_url = base_url
        self.token = token
        self.emulator = emulator
        self.proxy_url = proxy_url  # Fly's proxy (send Host: <app>.fly.dev), when started with it

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.base_url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def calls(self) -> list[dict[str, Any]]:
        """Every ``/v1`` request so far: method, path, query, status, fault."""
        return self._call("GET", "/_emulator/calls")["calls"]

    def mutating_calls(self, path_suffix: str = "") -> list[dict[str, Any]]:
        return [c for c in self.calls() if c["method"] in MUTATING and c["path"].endswith(path_suffix)]

    def clear_calls(self) -> None:
        self._call("DELETE", "/_emulator/calls")

    def reset(self) -> None:
        self._call("POST", "/_emulator/reset")

    def machines(self) -> list[dict[str, Any]]:
        return self._call("GET", "/_emulator/machines")["machines"]

    def proxy_requests(self) -> list[dict[str, Any]]:
        """Every request the proxy answered: app, machine, status, replayed_from."""
        return self._call("GET", "/_emulator/proxy")["requests"]

    def proxy_actions(self) -> list[dict[str, Any]]:
        """Machines the proxy started (``autostart``) or stopped (``autostop``): app, machine, action, time."""
        return self._call("GET", "/_emulator/proxy")["actions"]

    def app_url(self, app: str) -> str:
        """The proxy's loopback URL for ``app`` (any Host), balanced and replayed like ``<app>.fly.dev``."""
        return self._call("GET", f"/_emulator/proxy/apps/{app}")["url"]

    def set_faults(
        self,
        rate: float = 0.0,
        seed: int | None = None,
        kinds: list[str] | None = None,
        retry_after: int | None = None,
        slow_s: float | None = None,
    ) -> dict[str, Any]:
        body = {
            "rate": rate,
            "seed": seed,
            "kinds": kinds or list(DEFAULT_FAULTS),
            "retry_after": retry_after,
            "slow_s": slow_s,
        }
        return self._call("POST", "/_emulator/faults", body)

    def reserve_app_name(self, name: str) -> None:
        self._call("POST", f"/_emulator/apps/{name}/reserve")


@contextlib.contextmanager
def running_emulator(
    *,
    token: str | None = None,
    fault_rate: float = 0.0,
    seed: int | None = None,
    kinds: tuple[str, ...] = DEFAULT_FAULTS,
    retry_after: int = 0,
    transition_s: float = 0.02,
    run_machines: bool = False,
    entrypoint: str | Path | None = None,
    workdir: str | Path | None = None,
    proxy: bool = False,
    containers: ContainerEngine | None = None,
    proxy_region: str | None = None,
    autostop_after: float | None = None,
    checks: bool = False,
) -> Iterator[EmulatorHandle]:
    """The emulator in a background thread on a free 127.0.0.1 port; stopped (and its machines killed) on exit.

    Defaults suit tests: ``Retry-After: 0`` on injected 429s and fast state transitions. ``proxy`` (with
    ``run_machines``) also serves Fly's proxy on another free port: ``handle.proxy_url``, with its clients nearest
    to ``proxy_region`` and autostop after ``autostop_after`` idle seconds (off when None). ``checks`` runs each
    machine's config checks against its process, so a machine passes them only once it serves.
    """
    emulator = Emulator(
        token=token,
        faults=Faults(rate=fault_rate, seed=seed, kinds=kinds, retry_after=retry_after),
        transition_s=transition_s,
        run_machines=run_machines,
        entrypoint=entrypoint,
        containers=containers,
        workdir=workdir,
        proxy_region=proxy_region,
        autostop_after=autostop_after,
        checks=checks,
    )
    server = emulator.serve("127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    proxy_server = emulator.serve_proxy("127.0.0.1", 0) if proxy else None
    proxy_url = None
    if proxy_server is not None:
        threading.Thread(target=proxy_server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        proxy_url = "http://{}:{}".format(*proxy_server.server_address[:2])
    try:
        yield EmulatorHandle(f"http://{host}:{port}", token or "test-token", emulator, proxy_url)
    finally:
        if proxy_server is not None:
            proxy_server.shutdown()
            proxy_server.server_close()
        server.shutdown()
        server.server_close()
        emulator.close()
        thread.join(timeout=5)


@contextlib.contextmanager
def emulator_process(*args: str, token: str = "test-token", timeout_s: float = 15.0) -> Iterator[EmulatorHandle]:
    """``python -m tests.tools.fly_emulator --port 0 ARGS...`` as a subprocess; its URL is the one it prints."""
    cmd = [sys.executable, "-m", "tests.tools.fly_emulator", "--port", "0", "--token", token, *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = _read_line(proc, timeout_s)
        if "listening on " not in line:
            proc.kill()
            raise RuntimeError(f"emulator did not start: {line!r} {proc.stderr.read() if proc.stderr else ''}")
        proxy_url = None
        if "--proxy-port" in args:
            proxy_line = _read_line(proc, timeout_s)
            if "proxy listening on " not in proxy_line:
                proc.kill()
                raise RuntimeError(f"emulator's proxy did not start: {proxy_line!r}")
            proxy_url = proxy_line.rsplit(" ", 1)[-1].strip()
        yield EmulatorHandle(line.rsplit(" ", 1)[-1].strip(), token, proxy_url=proxy_url)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _read_line(proc: subprocess.Popen, timeout_s: float) -> str:
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.append(proc.stdout.readline() if proc.stdout else ""), daemon=True)
    reader.start()
    reader.join(timeout_s)
    return out[0] if out else ""
