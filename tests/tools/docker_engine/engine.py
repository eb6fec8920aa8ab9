"""A Docker engine and a registry on loopback for the image tests, started here or taken from the environment.

`CATWALK_TEST_DOCKER_HOST` names an engine to use as it is (with `CATWALK_TEST_REGISTRY`, a registry it can
push to). Otherwise Debian's `docker.io` is started (installed with apt when this runs as root and it is
missing): `dockerd` with no iptables and no bridge, so it runs on machines without bridge networking, on
overlay2 where the kernel mounts overlayfs on the cache's file system (vfs, which copies every layer in full,
where it does not); its data root (one per storage driver) stays in the cache between runs (stand-in bases
and layers survive), locked so that two runs never share it. Containers and builds then use the host network
or none. Every container the engine creates, build steps included, trusts the local machine's CA through a
mount, never through an image layer (`runc_local_ca.py`). The registry is Distribution (`docker-registry`) on
a free loopback port, storing in a temporary directory. Every process started here is stopped when the context
ends.

`Unavailable` carries the reason the tier skips.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.tools.docker_engine import prune

DEBIAN_DOCKER = "/usr/bin/docker"  # Debian's client: BuildKit through `docker build`, no buildx plugin
PACKAGES = {"dockerd": "docker.io", "docker-registry": "docker-registry", "debootstrap": "debootstrap"}
CACHE = Path(os.environ.get("CATWALK_IMAGE_CACHE", Path.home() / ".cache" / "catwalk-image-tests"))
RUNC_WRAPPER = Path(__file__).with_name("runc_local_ca.py")
START_TIMEOUT = 60
APT_TIMEOUT = 600


class Unavailable(RuntimeError):
    """No engine can be had on the local machine; the message says why (the tier skips with it)."""


@dataclass
class Engine:
    """A reachable Docker engine, Debian's client bound to it, and a registry on loopback."""

    host: str  # DOCKER_HOST of the engine
    registry: str  # host:port of a registry the engine pushes to over plain HTTP (loopback)
    client: str = DEBIAN_DOCKER
    build_network: str = "host"  # an engine without a bridge builds on the host network
    notes: list[str] = field(default_factory=list)
    data_root: Path | None = None  # set when the tier started the engine itself (and so may prune it)

    def env(self, **extra: str) -> dict[str, str]:
        env = {**os.environ, "DOCKER_HOST": self.host, "DOCKER_BUILDKIT": "1", **extra}
        env.pop("DOCKER_CONTEXT", None)
        return env

    def docker(
        self, *args: str, check: bool = True, timeout: float = 600, stdin: str | None = None
    ) -> subprocess.CompletedProcess:
        """Run Debian's client against this engine; output is kept (stdout and stderr together)."""
        proc = subprocess.run(
            [self.client, *args],
            input=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            timeout=timeout,
            env=self.env(),
            check=False,
        )
        if check and proc.returncode != 0:
            tail = "\n".join(proc.stdout.strip().splitlines()[-40:])
            raise RuntimeError(f"docker {' '.join(args[:3])} … failed ({proc.returncode}):\n{tail}")
        return proc

    def has_image(self, ref: str) -> bool:
        return self.docker("image", "inspect", ref, check=False, timeout=60).returncode == 0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(what: str, ready, proc: subprocess.Popen, log: Path, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:]) if log.exists() else ""
    raise Unavailable(f"{what} did not start (exit {proc.poll()}):\n{tail}")


def _stop(proc: subprocess.Popen, grace: float = 20) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def ensure_installed(programs: Sequence[str]) -> list[str]:
    """Install Debian's packages for missing programs when root; returns what was installed."""
    missing = [p for p in programs if not _found(p)]
    if not missing:
        return []
    packages = sorted({PACKAGES[p] for p in missing})
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise Unavailable(
            f"{', '.join(missing)} not installed and this is not root on a Debian-like system "
            f"(install {' '.join(packages)}, or point CATWALK_TEST_DOCKER_HOST at an engine)"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", *packages]):
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=APT_TIMEOUT, check=False)
        if proc.returncode != 0:
            raise Unavailable(f"`{' '.join(argv)}` failed: {proc.stderr.strip()[-500:]}")
    return packages


def _found(program: str) -> bool:
    if program == "dockerd":
        return bool(shutil.which("dockerd")) and Path(DEBIAN_DOCKER).exists()
    return bool(shutil.which(program))


@contextlib.contextmanager
def _data_root_lock(root: Path, timeout: float) -> Iterator[None]:
    """One engine per data root: a second run waits, then gives up with a reason."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    busy = f"another run holds the engine's data root {root} (waited {timeout:.0f} s)"
                    raise Unavailable(busy) from None
                time.sleep(1)
        yield


def storage_driver(cache: Path) -> str:
    """overlay2 when an overlay mount works on the cache's file system, else vfs (slower, works anywhere)."""
    probe = Path(tempfile.mkdtemp(prefix=".overlay-probe-", dir=cache))
    try:
        dirs = {name: probe / name for name in ("lower", "upper", "work", "merged")}
        for directory in dirs.values():
            directory.mkdir()
        options = f"lowerdir={dirs['lower']},upperdir={dirs['upper']},workdir={dirs['work']}"
        mounted = subprocess.run(
            ["mount", "-t", "overlay", "overlay", "-o", options, str(dirs["merged"])],
            capture_output=True,
            timeout=30,
            check=False,
        )
        if mounted.returncode != 0:
            return "vfs"
        subprocess.run(["umount", str(dirs["merged"])], capture_output=True, timeout=30, check=False)
        return "overlay2"
    except (OSError, subprocess.SubprocessError):
        return "vfs"
    finally:
        shutil.rmtree(probe, ignore_errors=True)


def data_root(cache: Path, driver: str) -> Path:
    """The engine's data root for a storage driver (vfs keeps the name it always had)."""
    return cache / ("engine" if driver == "vfs" else f"engine-{driver}")


def local_ca_bundle() -> Path:
    """The CA bundle the local machine trusts (a TLS-intercepting proxy's CA is in it where there is one)."""
    for candidate in (os.environ.get("SSL_CERT_FILE"), "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise Unavailable("no CA bundle found on the local machine (SSL_CERT_FILE, /etc/ssl/certs/ca-certificates.crt)")


def _runc_with_local_ca(run_dir: Path) -> dict[str, str]:
    """dockerd's environment: the wrapper as `runc` first on PATH, with the real runc and the CA bundle."""
    real = shutil.which("runc")
    if real is None:
        raise Unavailable("runc not found (Debian's docker.io depends on it)")
    bin_dir = run_dir / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "runc").symlink_to(RUNC_WRAPPER)
    return {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "CATWALK_ENGINE_RUNC": real,
        "CATWALK_ENGINE_LOCAL_CA": str(local_ca_bundle()),
    }


@contextlib.contextmanager
def _dockerd(root: Path, driver: str, run_dir: Path) -> Iterator[str]:
    sock = run_dir / "docker.sock"
    log = run_dir / "dockerd.log"
    argv = [
        "dockerd",
        "--iptables=false",
        "--ip6tables=false",
        "--bridge=none",
        f"--storage-driver={driver}",
        f"--data-root={root}",
        f"--exec-root={run_dir / 'exec'}",
        f"--pidfile={run_dir / 'dockerd.pid'}",
        f"--host=unix://{sock}",
    ]
    env = _runc_with_local_ca(run_dir)
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    host = f"unix://{sock}"
    try:

        def ready() -> bool:
            if not sock.exists():
                return False
            probe = subprocess.run(
                [DEBIAN_DOCKER, "version", "--format", "{{.Server.Version}}"],
                env={**os.environ, "DOCKER_HOST": host},
                capture_output=True,
                timeout=20,
                check=False,
            )
            return probe.returncode == 0

        _wait("dockerd", ready, proc, log)
        yield host
    finally:
        _stop(proc)
        _unmount_under(run_dir)


def _unmount_under(directory: Path) -> None:
    """Unmount what the engine left mounted below its exec root (network namespaces of stopped containers)."""
    prefix = str(directory.resolve()) + "/"
    with open("/proc/self/mounts") as mounts:
        points = [line.split()[1] for line in mounts if line.split()[1].startswith(prefix)]
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "--lazy", point], capture_output=True, check=False, timeout=30)


@contextlib.contextmanager
def _registry(run_dir: Path) -> Iterator[str]:
    port = free_port()
    storage = run_dir / "registry"
    config = run_dir / "registry.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    log = run_dir / "registry.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["docker-registry", "serve", str(config)], stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:

        def ready() -> bool:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
            return False

        _wait("docker-registry", ready, proc, log)
        yield f"127.0.0.1:{port}"
    finally:
        _stop(proc)


@contextlib.contextmanager
def engine(*, lock_timeout: float = 900) -> Iterator[Engine]:
    """An engine and a registry for the duration of the context (see the module docstring)."""
    given = os.environ.get("CATWALK_TEST_DOCKER_HOST")
    if given:
        registry = os.environ.get("CATWALK_TEST_REGISTRY")
        if not registry:
            raise Unavailable("CATWALK_TEST_DOCKER_HOST is set without CATWALK_TEST_REGISTRY (host:port to push to)")
        yield Engine(host=given, registry=registry, notes=[f"engine: {given} (given), registry {registry}"])
        return
    installed = ensure_installed(["dockerd", "docker-registry", "debootstrap"])
    if os.geteuid() != 0:
        raise Unavailable("starting dockerd needs root (or point CATWALK_TEST_DOCKER_HOST at an engine)")
    with _data_root_lock(CACHE, lock_timeout):
        driver = storage_driver(CACHE)
        root = data_root(CACHE, driver)
        removed = prune.remove_stale_data_roots(CACHE, root)
        with (
            tempfile.TemporaryDirectory(prefix="cw-docker-", ignore_cleanup_errors=True) as run,
            _dockerd(root, driver, Path(run)) as host,
            _registry(Path(run)) as registry,
        ):
            notes = [
                f"engine: Debian's dockerd ({driver}, no bridge) with data root {root}, registry {registry}; "
                f"its containers and build steps trust {local_ca_bundle()} through a mount (no image holds it)"
            ]
            if installed:
                notes.append(f"installed with apt: {', '.join(installed)}")
            yield Engine(host=host, registry=registry, notes=notes + removed, data_root=root)


def provider_environment(eng: Engine, work: Path) -> dict[str, str]:
    """What the image provider needs to build and push with this engine: Debian's client as `docker` (no
    buildx) first on PATH, the engine, the local registry (CATWALK_REGISTRY), host-network builds, a scratch
    docker config under work and a registry password (the local registry takes any)."""
    bin_dir = work / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    if not (bin_dir / "docker").exists():
        (bin_dir / "docker").symlink_to(eng.client)
    return {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "DOCKER_CONFIG": str(work / "docker-config"),
        "DOCKER_HOST": eng.host,
        "CATWALK_REGISTRY": eng.registry,
        "CATWALK_BUILD_NETWORK": eng.build_network,
        "FLY_API_TOKEN": "local-registry-needs-no-token",
    }
