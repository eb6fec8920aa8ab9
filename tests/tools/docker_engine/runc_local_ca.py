#!/usr/bin/env python3
"""`runc` of the image tier's engine: every container it creates, build steps included, trusts the local CA.

Where the registries are reached through a TLS-intercepting proxy, installs inside a build or a container need
that proxy's CA. Baking it into a stand-in base would carry it into every image built on it, the product image
included. Instead the engine runs containers through this wrapper (first on dockerd's PATH as `runc`, which
both BuildKit's executor and containerd's shim look up there): before `runc create` / `runc run` it adds to the
bundle's OCI spec a read-only bind mount of the local CA bundle at `MOUNT_POINT` and the variables that point
installers at it. The mount point is inside the container's /dev, a tmpfs, so nothing of it reaches an image
layer. Every other call goes to the real runc unchanged.

Standard library only: it runs under the system's python3, outside the project's virtualenv.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

MOUNT_POINT = "/dev/catwalk-local-ca.pem"
CA_ENV = ("SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS", "GIT_SSL_CAINFO", "REQUESTS_CA_BUNDLE", "PIP_CERT")
# What the engine's environment names: the CA bundle to mount and the real runc.
CA_VAR = "CATWALK_ENGINE_LOCAL_CA"
RUNC_VAR = "CATWALK_ENGINE_RUNC"


def bundle_of(args: list[str]) -> str | None:
    """The `--bundle` of a `runc create` or `runc run` command line, else None (nothing to change)."""
    if not {"create", "run"} & set(args):
        return None
    for i, arg in enumerate(args):
        if arg in ("--bundle", "-b") and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--bundle="):
            return arg.split("=", 1)[1]
    return None


def with_local_ca(spec: dict, ca_file: str) -> dict:
    """The OCI spec with the CA mounted at MOUNT_POINT and the installers' variables set where unset."""
    mounts = [m for m in spec.get("mounts", []) if m.get("destination") != MOUNT_POINT]
    if not any(m.get("destination") == "/dev" for m in mounts):
        return spec  # no /dev tmpfs to hold the mount point: leave the container as it is
    mounts.append(
        {
            "destination": MOUNT_POINT,
            "type": "bind",
            "source": ca_file,
            "options": ["rbind", "ro", "nosuid", "nodev", "noexec"],
        }
    )
    process = dict(spec.get("process") or {})
    env = list(process.get("env") or [])
    present = {item.split("=", 1)[0] for item in env}
    env += [f"{name}={MOUNT_POINT}" for name in CA_ENV if name not in present]
    return {**spec, "mounts": mounts, "process": {**process, "env": env}}


def real_runc() -> str:
    named = os.environ.get(RUNC_VAR)
    if named:
        return named
    me = Path(__file__).resolve()
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = Path(directory, "runc")
        if candidate.is_file() and candidate.resolve() != me and os.access(candidate, os.X_OK):
            return str(candidate)
    sys.exit("runc_local_ca: no runc found on PATH")


def main() -> None:
    args = sys.argv[1:]
    ca_file = os.environ.get(CA_VAR)
    bundle = bundle_of(args)
    if ca_file and bundle:
        config = Path(bundle, "config.json")
        if config.is_file():
            spec = json.loads(config.read_text())
            config.write_text(json.dumps(with_local_ca(spec, ca_file)))
    runc = real_runc()
    os.execv(runc, [runc, *args])


if __name__ == "__main__":
    main()
