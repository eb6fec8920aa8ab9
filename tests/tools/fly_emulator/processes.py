"""``--run-machines``: each started machine runs as a local process, as Fly would run its image.

What runs: the machine's ``config.init.exec`` argv if set (Fly: it replaces the image's entrypoint and
command); otherwise the entrypoint script (default ``deploy/entrypoint.sh``, ``--entrypoint PATH``)
followed by ``config.init.cmd``. An executable script runs through its shebang; a non-executable
``.sh`` one runs under ``sh``.

Its environment: this host's environment minus every ``FLY_*`` and ``MCP_*`` variable (the emulator's
token never reaches a machine), then the app's secrets, then ``config.env``, then what Fly itself sets
(``FLY_APP_NAME``, ``FLY_MACHINE_ID``, ``FLY_REGION``, ``FLY_MACHINE_VERSION``, ``FLY_PRIVATE_IP``) and
what the emulator owns: ``PORT`` (a free loopback port, replacing any PORT in the config), ``MCP_HOST``
(``loopback``: a machine here answers only on 127.0.0.1 and [::1]), ``MCP_HOME`` (one directory per
emulator) and ``PATH`` with the repo's ``.venv/bin`` first.

Its disk, as on Fly: the machine's own filesystem is fresh at every start (``<workdir>/machines/<id>/root``,
emptied each time), its volume is not (``<workdir>/volumes/<volume_id>``, kept until the volume is destroyed).
Guest paths map onto them: a path under the mount path into the volume's directory, any other into the
machine's root. Before the process starts, ``config.files`` are written there (``raw_value``, or the app secret
``secret_name``, base64) with their mode; the process starts in the image's working directory (mapped the same
way); env values that are paths under the mount, the working directory or /tmp are rewritten to where they map.
Snapshots copy the volume's directory; a volume created from one starts as that copy. Processes run as the
emulator's own user: ``config.processes[].user`` is kept in the config but not acted on.

Stop sends the signal from the stop request or ``config.stop_config`` (default SIGTERM) to the process
group and SIGKILLs it after ``stop_grace_s``; destroy and update kill it. A process that exits by itself
makes the machine ``stopped`` with an ``exit`` event carrying its exit code. Output goes to
``<workdir>/logs/<app>-<machine_id>.log``. ``GET /_emulator/machines`` reports pid, port and log path.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import signal
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.storage import WORKDIR, under
from tests.tools.fly_emulator.runner import MachineRunner
from tests.tools.fly_emulator.state import FlyState, MachineRec

REPO = Path(__file__).resolve().parents[3]
DEFAULT_ENTRYPOINT = REPO / "deploy" / "entrypoint.sh"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Running:
    proc: subprocess.Popen
    port: int
    log_path: Path
    argv: list[str]
    stopping: bool = False


class ProcessRunner(MachineRunner[Running]):
    """Starts and stops one local process per started machine."""

    def __init__(
        self, state_ref: list[FlyState], workdir: Path, *, entrypoint: Path | None = None, stop_grace_s: float = 5.0
    ) -> None:
        super().__init__(state_ref, stop_grace_s)
        self.workdir = workdir
        self.entrypoint = Path(entrypoint) if entrypoint else DEFAULT_ENTRYPOINT
        self.mcp_home = workdir / "mcp-home"
        self.logs = workdir / "logs"
        self.volumes = workdir / "volumes"
        self.snapshots = workdir / "snapshots"
        self.mcp_home.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)

    def argv(self, m: MachineRec) -> list[str]:
        init = m.config.get("init") or {}
        if init.get("exec"):
            return [str(a) for a in init["exec"]]
        entry = [str(a) for a in init.get("entrypoint") or []] or [str(self.entrypoint)]
        script = Path(entry[0])
        if script.suffix == ".sh" and not os.access(script, os.X_OK):
            entry = ["sh", *entry]  # an executable script runs through its own shebang
        return entry + [str(a) for a in init.get("cmd") or []]

    def environment(self, m: MachineRec, env: dict[str, str], port: int) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("FLY_", "MCP_"))}
        venv_bin = str(REPO / ".venv" / "bin")
        return {
            **base,
            **env,
            "FLY_APP_NAME": m.app,
            "FLY_MACHINE_ID": m.id,
            "FLY_REGION": m.region,
            "FLY_MACHINE_VERSION": m.version,
            "FLY_PRIVATE_IP": m.private_ip,
            "PORT": str(port),
            "MCP_HOME": str(self.mcp_home),
            "MCP_HOST": "loopback",
            "PATH": venv_bin + os.pathsep + base.get("PATH", "/usr/bin:/bin"),
        }

    # -- the machine's disk ------------------------------------------------------------------------------

    def mounts(self, m: MachineRec) -> dict[str, Path]:
        """Guest mount path → the volume's directory on this host."""
        return {
            str(mount["path"]).rstrip("/"): self.volumes / str(mount["volume"])
            for mount in m.config.get("mounts") or []
            if isinstance(mount, dict) and mount.get("path") and mount.get("volume")
        }

    def host_path(self, m: MachineRec, guest: str, mounts: dict[str, Path]) -> Path:
        for path, directory in mounts.items():
            if under(guest, path):
                return directory / guest[len(path) :].lstrip("/")
        return self.workdir / "machines" / m.id / "root" / guest.lstrip("/")

    def prepare_disk(self, m: MachineRec, env: dict[str, str]) -> tuple[Path, dict[str, str]]:
        """A fresh root, the volume, the files; returns the working directory and the env with paths mapped."""
        root = self.workdir / "machines" / m.id / "root"
        shutil.rmtree(root, ignore_errors=True)
        (root / "tmp").mkdir(parents=True)  # the image has an empty /tmp
        mounts = self.mounts(m)
        for directory in mounts.values():
            directory.mkdir(parents=True, exist_ok=True)
        for f in m.config.get("files") or []:
            value = f.get("raw_value") if f.get("raw_value") is not None else env.get(str(f.get("secret_name")))
            if value is None:
                raise RuntimeError(f"file {f.get('guest_path')}: secret {f.get('secret_name')!r} is not set")
            target = self.host_path(m, str(f["guest_path"]), mounts)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(base64.b64decode(value))
            target.chmod(int(f.get("mode") or 0o644))
        cwd = self.host_path(m, WORKDIR, mounts)
        cwd.mkdir(parents=True, exist_ok=True)
        mapped = {}
        for name, value in env.items():
            guest = any(under(value, p) for p in (*mounts, WORKDIR))
            guest = guest or (under(value, "/tmp") and not self.on_host(value))
            if value.startswith("/") and guest:
                value = str(self.host_path(m, value, mounts))
            mapped[name] = value
        return cwd, mapped

    def on_host(self, value: str) -> bool:
        """Whether an env value names this host's own files (a test hands machines a program of the checkout,
        which may itself live under /tmp): those keep their path, only the guest's /tmp is mapped."""
        first = value.split(" ", 1)[0]
        return under(first, str(REPO)) or under(first, str(self.workdir)) or Path(first).exists()

    def volume_snapshot(self, volume_id: str, snapshot_id: str) -> None:
        source = self.volumes / volume_id
        if source.is_dir():
            shutil.copytree(source, self.snapshots / snapshot_id)

    def volume_restore(self, snapshot_id: str, volume_id: str) -> None:
        source = self.snapshots / snapshot_id
        if source.is_dir():
            shutil.copytree(source, self.volumes / volume_id)

    def volume_destroyed(self, volume_id: str) -> None:
        shutil.rmtree(self.volumes / volume_id, ignore_errors=True)

    # -- processes ---------------------------------------------------------------------------------

    def start(self, m: MachineRec, env: dict[str, str]) -> None:
        self.stop(m, "SIGKILL")  # an update replaces whatever ran before
        port = free_port()
        argv = self.argv(m)
        cwd, env = self.prepare_disk(m, env)
        log_path = self.logs / f"{m.app}-{m.id}.log"
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                argv,
                env=self.environment(m, env, port),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=cwd,
            )
        run = Running(proc, port, log_path, argv)
        self._started(m, run, f"machine-{m.id}")

    def _wait(self, run: Running) -> int:
        return run.proc.wait()

    def stop(self, m: MachineRec, signal_name: str | None) -> None:
        run = self._take(m.id)
        if run is None:
            return
        sig = getattr(signal, signal_name or "SIGTERM", signal.SIGTERM)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.proc.pid, sig)
        try:
            run.proc.wait(timeout=self.stop_grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(run.proc.pid, signal.SIGKILL)
            run.proc.wait(timeout=5)

    def stop_all(self) -> None:
        for mid in self._running_ids():
            self.stop(MachineRec(mid, "", "", "", {}, ""), "SIGKILL")

    @staticmethod
    def _describe(run: Running) -> dict[str, Any]:
        return {
            "pid": run.proc.pid,
            "host": "127.0.0.1",
            "port": run.port,
            "url": f"http://127.0.0.1:{run.port}",
            "log": str(run.log_path),
            "argv": run.argv,
            "running": True,
        }
