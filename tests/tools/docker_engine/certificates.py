"""Which certificates an image holds, to show that the local machine's CA never reaches one.

A certificate is named by its PEM body (base64, line breaks removed). An image's files are read from
`docker export` of a created (never started) container of it, so nothing the engine mounts at run time is
seen; every file holding a PEM certificate block counts, wherever it lies.
"""

from __future__ import annotations

import re
import subprocess
import tarfile
from collections import defaultdict
from pathlib import Path

from tests.tools.docker_engine.engine import Engine, local_ca_bundle

_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----\s*(.*?)\s*-----END CERTIFICATE-----", re.DOTALL)
MAX_FILE = 64 * 1024 * 1024
DEBIAN_STORE = "usr/share/ca-certificates/"  # what Debian's ca-certificates package ships


def pem_certificates(data: bytes) -> set[str]:
    """The PEM bodies of every certificate block in data."""
    return {re.sub(rb"\s+", b"", m.group(1)).decode("ascii", "replace") for m in _PEM.finditer(data)}


def local_only(local_bundle: Path, debian: set[str]) -> set[str]:
    """Certificates the local machine trusts that Debian does not ship (a TLS-intercepting proxy's CA)."""
    return pem_certificates(local_bundle.read_bytes()) - debian


def certificates_in_image(engine: Engine, image: str) -> dict[str, list[str]]:
    """Each certificate found in the image's files, with the paths of the files holding it."""
    cid = engine.docker("create", "--network", "none", "--entrypoint", "true", image).stdout.strip().splitlines()[-1]
    found: dict[str, list[str]] = defaultdict(list)
    try:
        proc = subprocess.Popen(
            [engine.client, "export", cid], stdout=subprocess.PIPE, env=engine.env(), stderr=subprocess.DEVNULL
        )
        assert proc.stdout is not None
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            for member in tar:
                if not member.isfile() or member.size > MAX_FILE:
                    continue
                handle = tar.extractfile(member)
                data = handle.read() if handle else b""
                if b"-----BEGIN CERTIFICATE-----" in data:
                    for body in pem_certificates(data):
                        found[body].append(member.name)
        if proc.wait(600) != 0:
            raise RuntimeError(f"docker export of {image} failed ({proc.returncode})")
    finally:
        engine.docker("rm", "--force", cid, check=False, timeout=120)
    return dict(found)


def debian_certificates(found: dict[str, list[str]]) -> set[str]:
    """Of an image's certificates, those in Debian's own store."""
    return {body for body, paths in found.items() if any(p.startswith(DEBIAN_STORE) for p in paths)}


def local_ca_in_image(engine: Engine, image: str) -> dict[str, list[str]]:
    """The local machine's own certificates (beyond the image's Debian store) found in the image, with their files."""
    found = certificates_in_image(engine, image)
    local = local_only(local_ca_bundle(), debian_certificates(found))
    return {body[:40]: paths for body, paths in found.items() if body in local}
