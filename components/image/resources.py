"""The Pulumi resources the stack creates: the unified image and one baked image per npm/Python server.

Outputs of each: ``image_ref`` (`registry.fly.io/<app>@sha256:…`, what machines run), ``digest``,
``tag`` and ``repository``. During a preview that will build, ``image_ref`` and ``digest`` are unknown
and ``tag`` is already known (it is the content hash).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pulumi
from pulumi import dynamic

from components.image.baked import ENTRYPOINT_PATH
from components.image.provider import ImageProvider, context_inputs

_OUTPUTS: dict[str, Any] = {"repository": None, "tag": None, "digest": None, "image_ref": None}
# deploy/ of the checkout that `components` is installed from (editable), whatever the program's cwd.
DEFAULT_CONTEXT = Path(__file__).resolve().parents[2] / "deploy"


class _Image(dynamic.Resource):
    """What both image resources are: inputs for the image provider, and the same four outputs."""

    repository: pulumi.Output[str]
    tag: pulumi.Output[str]
    digest: pulumi.Output[str]
    image_ref: pulumi.Output[str]

    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None) -> None:
        super().__init__(ImageProvider(), name, {**_OUTPUTS, **props}, opts)


class UnifiedImage(_Image, module="catwalk/image", name="UnifiedImage"):
    """`deploy/` built for linux/amd64 and pushed to `registry.fly.io/<app>:ctx-<hash>`.

    ``context_dir`` defaults to the repository's `deploy/` (found from this package, not from the cwd).

    With ``prebuilt`` (the stack's `catwalk:image`), nothing is built: the reference is passed through,
    and ``image_ref`` is digest-pinned exactly when the reference names a digest.
    """

    def __init__(
        self,
        name: str,
        *,
        app: pulumi.Input[str],
        context_dir: str | os.PathLike[str] | None = None,
        prebuilt: str | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        if prebuilt:
            props: dict[str, Any] = {"kind": "prebuilt", "ref": prebuilt}
        else:
            props = context_inputs(app=app, context_dir=DEFAULT_CONTEXT if context_dir is None else context_dir)
        super().__init__(name, props, opts)


class BakedImage(_Image, module="catwalk/image", name="BakedImage"):
    """One npm/Python server installed at build time on top of ``base`` (a digest-pinned image ref).

    ``package`` is the pinned spec (`name==1.2.3`, `@scope/name@1.2.3`), ``launch`` the server's argv,
    ``resolved_at`` the ISO-8601 time its dependencies resolve as of. Pushed to `registry.fly.io/<app>`
    under `bake-<hash>`, where the hash covers the base digest and every value. ``browser``: the server
    drives a browser (detection's ``RuntimeSpec.browser``), so the image gets Debian's Chromium.
    """

    def __init__(
        self,
        name: str,
        *,
        app: pulumi.Input[str],
        base: pulumi.Input[str],
        runtime: pulumi.Input[str],
        package: pulumi.Input[str],
        launch: pulumi.Input[list[str]],
        resolved_at: pulumi.Input[str],
        entrypoint: str = ENTRYPOINT_PATH,
        browser: bool = False,
        newest_fallback: bool = False,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "kind": "baked",
            "app": app,
            "base": base,
            "runtime": runtime,
            "package": package,
            "launch": launch,
            "resolved_at": resolved_at,
            "entrypoint": entrypoint,
            "browser": browser,
            "newest_fallback": newest_fallback,
        }
        super().__init__(name, props, opts)
