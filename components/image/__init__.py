"""Image build and push: the unified image from `deploy/`, baked per-server images, prebuilt pass-through.

One Python dynamic provider (``ImageProvider``) runs the `docker` CLI for all three: it never builds in a
preview, outputs a digest-pinned reference, keeps the registry token out of the state, and is tested
against a fake `docker` and, in the image tier, a real engine. A client without buildx (Debian's and
Ubuntu's ``docker.io``) builds with BuildKit through ``docker build`` and pushes with ``docker push``. Why
this and not pulumi-docker or pulumi-docker-build: docs/image-build-provider.md.

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
from components.image.provider import ImageProvider, baked_from_spec
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
    "baked_from_spec",
    "context_hash",
    "parse_digest",
    "render_baked_dockerfile",
    "repository",
    "should_bake",
    "stage_context",
    "tag_for",
]
