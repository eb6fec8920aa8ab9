"""The image provider against a real engine whose client has no buildx (Debian's `docker.io`).

It builds `deploy/` with BuildKit through `docker build`, pushes to the registry named by CATWALK_REGISTRY
(here a local one), and reports the digest the registry serves; machines then run `registry/app@sha256:…`.
"""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

import httpx
import pytest

from components.image import ImageBuildError, ImageProvider
from components.image.provider import context_inputs
from tests.docker.conftest import DEPLOY, RUNTIME_APP
from tests.tools.docker_engine.engine import DEBIAN_DOCKER

pytestmark = [pytest.mark.network, pytest.mark.slow, pytest.mark.timeout(3600)]
APP = RUNTIME_APP
MANIFEST_TYPES = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"


def client_on_path(tmp_path: Path, client: str, monkeypatch) -> None:
    """`docker` on PATH is the given client."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").symlink_to(client)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def registry_digest(registry: str, repo: str, tag: str) -> str:
    answer = httpx.head(f"http://{registry}/v2/{repo}/manifests/{tag}", headers={"Accept": MANIFEST_TYPES})
    answer.raise_for_status()
    return answer.headers["Docker-Content-Digest"]


def test_without_buildx_the_provider_builds_pushes_and_reports_the_registry_digest(provider_env, pushed_runtime):
    assert provider_env.docker("buildx", "version", check=False).returncode != 0  # this client has no buildx
    outs = pushed_runtime
    assert outs["repository"] == f"{provider_env.registry}/{APP}"
    assert outs["digest"] == registry_digest(provider_env.registry, APP, outs["tag"])
    assert outs["image_ref"] == f"{provider_env.registry}/{APP}@{outs['digest']}"
    # What a machine does with it: pull by digest and run it.
    provider_env.docker("rmi", f"{outs['repository']}:{outs['tag']}")
    provider_env.docker("pull", outs["image_ref"], timeout=1200)
    ran = provider_env.docker("run", "--rm", "--network", "none", "--entrypoint", "id", outs["image_ref"], "-u")
    assert ran.stdout.strip() == "10001"


def newer_client_without_buildx() -> tuple[str | None, str]:
    """A docker client ≥ 23 on PATH other than Debian's that has no buildx plugin, and what was found."""
    seen = []
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = Path(directory, "docker")
        if not candidate.is_file() or candidate.resolve() == Path(DEBIAN_DOCKER).resolve():
            continue
        run = functools.partial(subprocess.run, capture_output=True, text=True, timeout=30, check=False)
        version = run([str(candidate), "version", "--format", "{{.Client.Version}}"]).stdout.strip()
        plugin = run([str(candidate), "buildx", "version"]).returncode == 0
        seen.append(f"{candidate} {version or '?'}{' with buildx' if plugin else ''}")
        if version.split(".")[0].isdigit() and int(version.split(".")[0]) >= 23 and not plugin:
            return str(candidate), ""
    return None, ", ".join(seen) or "no other docker client on PATH"


def test_a_newer_client_without_buildx_fails_saying_to_install_buildx(provider_env, tmp_path, monkeypatch):
    client, seen = newer_client_without_buildx()
    if client is None:
        pytest.skip(f"no docker client >= 23 without buildx here ({seen})")
    client_on_path(tmp_path, client, monkeypatch)
    provider = ImageProvider()
    checked = provider.check({}, context_inputs(app=APP, context_dir=DEPLOY))
    with pytest.raises(ImageBuildError, match=r"docker build failed: docker has no buildx plugin: install it"):
        provider.create(checked.inputs)
