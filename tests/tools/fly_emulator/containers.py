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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.tools.fly_emulator.processes import free_port
from tests.tools.fly_emulator.runner import MachineRunner
from tests.tools.fly_emulator.state import FlyState, MachineRec

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


class ContainerRunner(MachineRunner[RunningContainer]):
    """Starts and stops one container per started machine."""

    def __init__(self, state_ref: list[FlyState], workdir: Path, engine: Engine, *, stop_grace_s: float = 5.0):
        super().__init__(state_ref, stop_grace_s)
        self.workdir = workdir
        self.engine = engine

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
        self._started(m, run, f"container-{m.id}")

    def _wait(self, run: RunningContainer) -> int:
        """Until the container exits for good (Docker restarts it while its policy allows)."""
        while True:
            waited = self.docker("wait", run.id, timeout=None)
            state = self.docker("inspect", "--format", "{{.State.Restarting}} {{.State.Running}}", run.id)
            if waited.returncode != 0 or state.returncode != 0 or state.stdout.split() == ["false", "false"]:
                break
        return int(waited.stdout.strip()) if waited.stdout.strip().lstrip("-").isdigit() else -1

    def stop(self, m: MachineRec, signal_name: str | None) -> None:
        run = self._take(m.id)
        if run is None:
            return
        self.docker("update", "--restart", "no", run.id)  # a stop is not a crash: no restart
        self.docker("kill", "--signal", signal_name or "SIGTERM", run.id)
        waited = self.docker("wait", run.id, timeout=self.stop_grace_s + 5)
        if waited.returncode != 0:
            self.docker("kill", run.id)
        self.docker("rm", "--force", run.id)

    def _remove(self, machine_id: str) -> None:
        run = self._take(machine_id)
        if run is not None:
            self.docker("rm", "--force", run.id)

    def stop_all(self) -> None:
        for mid in self._running_ids():
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
