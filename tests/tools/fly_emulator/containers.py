"""Container mode: each started machine runs as a Docker container of its config's image, as Fly runs it.

The image is the machine config's `image` (a digest reference in a registry the engine can pull from, such
as the local one of the image tier). The container gets what a Fly machine gets: the app's secrets and
`config.env` (passed by name from the docker client's environment, so no value appears in a command
line), `FLY_APP_NAME`, `FLY_MACHINE_ID`, `FLY_REGION`, `FLY_MACHINE_VERSION`, `FLY_PRIVATE_IP`, a memory
limit of `guest.memory_mb`, the user of `init.user` when set (else the image's), `init.exec` or
`init.entrypoint` + `init.cmd` when set, and Docker's own restart policy for `restart.policy` (`no`,
`always`, `on-failure` with `max_retries`). It runs on the host network with `PORT` a free loopback port and
`MCP_HOST=loopback`, since engines here have no bridge.

Stop sends the request's signal (or `stop_config.signal`, default SIGTERM), waits `stop_grace_s` and kills;
destroy and update remove the container. A container that exits for good (no restart left) makes the
machine `stopped` with an `exit` event carrying its exit code. `GET /_emulator/machines` reports the
container id, port, URL and image.
"""

from __future__ import annotations

import os
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.tools.fly_emulator.processes import free_port
from tests.tools.fly_emulator.state import FlyState, Hooks, MachineRec

DOCKER_TIMEOUT = 1200  # a first `docker run` pulls the image


@dataclass
class Engine:
    """Where containers run: the docker client and the engine's DOCKER_HOST."""

    host: str
    client: str = "docker"


@dataclass
class RunningContainer:
    id: str
    port: int
    image: str
    stopping: bool = False


class ContainerRunner(Hooks):
    """Starts and stops one container per started machine."""

    def __init__(self, state_ref: list[FlyState], workdir: Path, engine: Engine, *, stop_grace_s: float = 5.0):
        self._state_ref = state_ref
        self.workdir = workdir
        self.engine = engine
        self.stop_grace_s = stop_grace_s
        self._lock = threading.Lock()
        self._running: dict[str, RunningContainer] = {}
        self._last: dict[str, dict[str, Any]] = {}

    def docker(self, *args: str, env: dict[str, str] | None = None, timeout: float | None = 120):
        return subprocess.run(
            [self.engine.client, *args],
            env={**os.environ, "DOCKER_HOST": self.engine.host, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def run_argv(self, m: MachineRec, names: list[str], port: int) -> list[str]:
        """`docker run` for a machine; values are passed by name (`--env NAME`), from the client's env."""
        config = m.config
        argv = ["run", "--detach", "--network", "host", "--name", f"fly-{m.app}-{m.id}"]
        memory = (config.get("guest") or {}).get("memory_mb")
        if memory:
            argv += ["--memory", f"{int(memory)}m"]
        restart = config.get("restart") or {}
        policy = restart.get("policy") or "no"
        if policy == "on-failure" and restart.get("max_retries"):
            policy = f"on-failure:{int(restart['max_retries'])}"
        argv += ["--restart", policy]
        init = config.get("init") or {}
        if init.get("user"):
            argv += ["--user", str(init["user"])]
        for name in names:
            argv += ["--env", name]
        command = [str(a) for a in init.get("exec") or []]
        entrypoint = command[:1] or [str(a) for a in init.get("entrypoint") or []][:1]
        if entrypoint:
            argv += ["--entrypoint", entrypoint[0]]
        argv.append(str(config["image"]))
        if command:
            argv += command[1:]
        else:
            argv += [str(a) for a in (init.get("entrypoint") or [])[1:]] + [str(a) for a in init.get("cmd") or []]
        return argv

    def start(self, m: MachineRec, env: dict[str, str]) -> None:
        self._remove(m.id)  # an update replaces whatever ran before
        port = free_port()
        values = {
            **env,
            "FLY_APP_NAME": m.app,
            "FLY_MACHINE_ID": m.id,
            "FLY_REGION": m.region,
            "FLY_MACHINE_VERSION": m.version,
            "FLY_PRIVATE_IP": m.private_ip,
            "PORT": str(port),
            "MCP_HOST": "loopback",
        }
        done = self.docker(*self.run_argv(m, sorted(values), port), env=values, timeout=DOCKER_TIMEOUT)
        if done.returncode != 0:
            raise RuntimeError(f"docker run of machine {m.id} failed: {done.stderr.strip()[-1000:]}")
        run = RunningContainer(done.stdout.strip().splitlines()[-1], port, str(m.config["image"]))
        with self._lock:
            self._running[m.id] = run
            self._last[m.id] = self._describe(run)
        threading.Thread(target=self._watch, args=(m, run), daemon=True, name=f"container-{m.id}").start()

    def _watch(self, m: MachineRec, run: RunningContainer) -> None:
        """Wait for the container to exit for good (Docker restarts it while its policy allows)."""
        while True:
            waited = self.docker("wait", run.id, timeout=None)
            state = self.docker("inspect", "--format", "{{.State.Restarting}} {{.State.Running}}", run.id)
            if waited.returncode != 0 or state.returncode != 0 or state.stdout.split() == ["false", "false"]:
                break
        code = int(waited.stdout.strip()) if waited.stdout.strip().lstrip("-").isdigit() else -1
        with self._lock:
            if self._running.get(m.id) is run:
                del self._running[m.id]
            if m.id in self._last:
                self._last[m.id]["exit_code"] = code
        if not run.stopping and self._state_ref:
            self._state_ref[0].process_exited(m, code)

    def stop(self, m: MachineRec, signal_name: str | None) -> None:
        with self._lock:
            run = self._running.pop(m.id, None)
        if run is None:
            return
        run.stopping = True
        self.docker("update", "--restart", "no", run.id)  # a stop is not a crash: no restart
        self.docker("kill", "--signal", signal_name or "SIGTERM", run.id)
        waited = self.docker("wait", run.id, timeout=self.stop_grace_s + 5)
        if waited.returncode != 0:
            self.docker("kill", run.id)
        self.docker("rm", "--force", run.id)

    def _remove(self, machine_id: str) -> None:
        with self._lock:
            run = self._running.pop(machine_id, None)
        if run is not None:
            run.stopping = True
            self.docker("rm", "--force", run.id)

    def stop_all(self) -> None:
        with self._lock:
            ids = list(self._running)
        for mid in ids:
            self._remove(mid)

    @staticmethod
    def _describe(run: RunningContainer) -> dict[str, Any]:
        return {
            "container": run.id,
            "image": run.image,
            "host": "127.0.0.1",
            "port": run.port,
            "url": f"http://127.0.0.1:{run.port}",
            "running": True,
        }

    def report(self, machine_id: str) -> dict[str, Any] | None:
        with self._lock:
            info = self._last.get(machine_id)
            if info is None:
                return None
            return {**info, "running": machine_id in self._running}
