"""Image build and push: the unified image from `deploy/`, baked per-server images, prebuilt pass-through.

Decision: a Python dynamic provider (``ImageProvider``) that runs the `docker` CLI, not pulumi-docker's
``docker.Image`` nor pulumi-docker-build's ``Image``. What each does on the three points that matter here:

- Preview. docker-build's ``Image`` builds during preview by default (``buildOnPreview`` defaults to true;
  it skips the push but still needs a builder). pulumi-docker v4+/v5 ``Image`` skips the build in preview
  unless ``buildOnPreview`` is set. Ours compares content hashes in ``diff`` and never builds in preview;
  the new tag is already visible there, since it is the hash of `deploy/`.
- Digests. pulumi-docker ``Image`` builds and pushes through the Docker *daemon's* API and reads
  ``repoDigest`` back from the daemon's image store (``ImageInspect``) after the push. docker-build reports
  ``digest``/``ref`` from BuildKit. Ours takes the pushed manifest digest from buildx's ``--metadata-file``
  (``containerimage.digest``), builds with ``--provenance=false --sbom=false`` so that digest is a plain
  single-platform manifest Fly can run, and outputs ``registry.fly.io/<app>@sha256:…``.
- No daemon. Both vendor providers need a Docker engine or BuildKit to do anything, as does any real build;
  what differs is what can be tested without one. Their resources run in Go provider plugins that the
  Pulumi CLI downloads from the vendor at run time: not installable on this machine or in CI, so nothing
  of their behaviour (preview, diff, error text) could be exercised here. Ours is plain Python: its
  command lines, hashing, diff, digest parsing and error paths are tested against a fake `docker` on PATH
  (tests/tools/fakes/docker) that prints what the real one prints.
- Secrets. Both vendor resources take the registry password as a resource *input*, so it is stored in
  state (encrypted as a secret, but present). Ours takes the Fly token when it builds (``FLY_API_TOKEN``
  from the environment, or the ``catwalk:flyApiToken`` secret the engine hands ``configure``, as the Fly
  providers do), gives it to ``docker login --password-stdin`` on stdin and keeps it out of inputs,
  outputs, the pickled provider, argv, the docker processes' environment and error text.
- Context hashing. We decide what the tag covers (`context.py`) and build from a staged copy of exactly
  those files, so `.git`, editor files, caches and tests neither trigger rebuilds nor enter the image.

The stack calls:

- ``UnifiedImage(name, app=..., context_dir=<repo>/deploy, prebuilt=None, opts=...)``
- ``BakedImage(name, app=..., base=<unified image_ref>, runtime=..., package=<pinned>, launch=[...],
  resolved_at=<ISO-8601>, opts=...)``

each with outputs ``image_ref``, ``digest``, ``tag``, ``repository``; and the pure helpers
``context_hash(path)``, ``render_baked_dockerfile(base=...)``, ``baked_build(...)``, ``should_bake(...)``.
"""

from __future__ import annotations

from components.image.baked import (
    BAKEABLE,
    ENTRYPOINT_PATH,
    BakedBuild,
    BakeError,
    baked_build,
    render_baked_dockerfile,
)
from components.image.context import ContextError, context_hash, stage_context, tag_for
from components.image.docker_cli import PLATFORM, REGISTRY, ImageBuildError, parse_digest, repository
from components.image.provider import ImageProvider
from components.image.resources import BakedImage, UnifiedImage


def should_bake(*, bake: bool, prebuilt: str | None, runtime: str | None) -> bool:
    """Whether a server gets its own baked image: baking on, no prebuilt image, and an npm/Python server."""
    return bool(bake) and not prebuilt and runtime in BAKEABLE


__all__ = [
    "BAKEABLE",
    "ENTRYPOINT_PATH",
    "PLATFORM",
    "REGISTRY",
    "BakeError",
    "BakedBuild",
    "BakedImage",
    "ContextError",
    "ImageBuildError",
    "ImageProvider",
    "UnifiedImage",
    "baked_build",
    "context_hash",
    "parse_digest",
    "render_baked_dockerfile",
    "repository",
    "should_bake",
    "stage_context",
    "tag_for",
]
