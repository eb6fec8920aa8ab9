"""The dynamic provider behind every catwalk image resource: check, diff, build-and-push, pass-through.

Three kinds share it:

- ``context``: build a directory (the unified image from `deploy/`), tagged by the hash of its content.
- ``baked``: build a generated Dockerfile `FROM` a digest-pinned base that installs one pinned server.
- ``prebuilt``: no build; the configured reference is passed through (and pinned when it carries a digest).

The engine calls `diff` in preview and in `up`; it compares content hashes only, so preview never builds
and an unchanged context does nothing. `create`/`update` stage the context, log in to the Fly registry
with the Fly token (stack config `catwalk:flyApiToken` handed to `configure`, else `FLY_API_TOKEN` read at
that moment), run `docker buildx build --push` (or `docker build` + `docker push` where the client has no
buildx), and return the pushed digest. The provider holds no
state worth keeping (no session or client; a configured token is dropped from its pickle) because the
engine pickles it into the stack state; it is pickled by reference, since this module is importable.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, DiffResult, ReadResult, UpdateResult

from components import safety
from components.detect.models import RuntimeSpec, iso_utc
from components.image import baked as bake
from components.image import docker_cli as cli
from components.image.context import ContextError, context_hash, stage_context, tag_for
from components.image.docker_config import temporary_docker_config
from components.providers.base import Provider, contains_unknown, diff_result, strip_engine_keys

KINDS = ("context", "baked", "prebuilt")
OUTPUT_KEYS = ("repository", "tag", "digest", "image_ref")
# What each kind's image is made of: a change here is a new image (an update). Nothing else counts, so a
# moved checkout (a new absolute context_dir, same content) does not rebuild.
CONTENT_KEYS = {"context": ("content_hash",), "baked": ("content_hash",), "prebuilt": ("ref",)}
# A change of these is a different image resource altogether (a replacement).
REPLACE_KEYS = ("kind", "app", "platform")
# Where a built image is pushed (the registry + app): another registry is another image.
BUILT_REPLACE_KEYS = ("repository",)
# `browser` came later: check() fills False into a resource recorded without it, whose image (and hash)
# is then exactly what it was, so existing stacks see no change.
BAKED_FIELDS = ("base", "runtime", "package", "launch", "resolved_at", "entrypoint", "browser", "newest_fallback")
# Outputs and derived inputs that a new build changes: never stable across a change.
MOVING = frozenset({"tag", "digest", "image_ref", "content_hash", "ref"})


def _any_unknown(values: dict[str, Any], keys: tuple[str, ...]) -> bool:
    return any(contains_unknown(values.get(k)) for k in keys)


def baked_fields(inputs: dict[str, Any]) -> dict[str, Any]:
    """The inputs a baked image is made of, as `baked_build` takes them (absent ones as None)."""
    return {k: inputs.get(k) for k in BAKED_FIELDS}


def kept_on_update(olds: dict[str, Any], news: dict[str, Any], compared: tuple[str, ...]) -> list[str]:
    """What a rebuild cannot change and the new inputs do not change either (the rest of the stables)."""
    return [
        k
        for k in sorted(set(olds) | set(news))
        if k not in compared
        and k not in MOVING
        and k in news
        and not contains_unknown(news[k])
        and olds.get(k) == news[k]
    ]


def registry_token(configured: str | None = None) -> str:
    """The Fly token, the registry password: from the stack config the engine handed the provider host,
    else `FLY_API_TOKEN` read now. Never an input, an output or an attribute that is pickled."""
    token = (configured or os.environ.get(cli.TOKEN_ENV, "")).strip()
    if not token:
        raise cli.ImageBuildError(
            f"{cli.TOKEN_ENV} is not set: the Fly registry needs it to push images "
            "(`export FLY_API_TOKEN=$(fly auth token)` or `pulumi config set --secret catwalk:flyApiToken …`), "
            "or set `catwalk:image` to a prebuilt image"
        )
    return token


class ImageProvider(Provider):
    """Builds and pushes images to registry.fly.io; see the module docstring.

    On the shared provider base for the token (`configure`, kept out of the pickle) and the pure diff; its
    `check` derives the tag and content hash, which no inputs model could.
    """

    replace_keys = REPLACE_KEYS
    kind = "image"

    # -- check: validate and derive (repository, tag, content hash); no I/O beyond hashing text ----------
    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        inputs = {k: v for k, v in news.items() if k not in OUTPUT_KEYS or k == "tag"}
        inputs = {k: v for k, v in inputs.items() if v is not None}
        failures: list[CheckFailure] = []

        def fail(prop: str, reason: str) -> None:
            failures.append(CheckFailure(prop, reason))

        kind = inputs.get("kind")
        if kind not in KINDS:
            fail("kind", f"must be one of {', '.join(KINDS)}, got {kind!r}")
            return CheckResult(inputs, failures)
        inputs.setdefault("platform", cli.PLATFORM)
        if inputs["platform"] != cli.PLATFORM and not contains_unknown(inputs["platform"]):
            fail("platform", f"Fly Machines run {cli.PLATFORM}; got {inputs['platform']!r}")

        if kind == "prebuilt":
            ref = inputs.get("ref")
            if not contains_unknown(ref):
                try:
                    safety.check_image_ref(ref if isinstance(ref, str) else "")
                except ValueError as exc:
                    fail("ref", str(exc))
            return CheckResult(inputs, failures)

        try:  # the environment's registry and build network, checked before anything is built
            cli.registry()
            cli.build_network()
        except ValueError as exc:
            fail("repository", str(exc))
            return CheckResult(inputs, failures)
        app: Any = inputs.get("app")
        if not contains_unknown(app):
            try:
                inputs["repository"] = cli.repository(app)
            except ValueError as exc:
                fail("app", str(exc))

        if kind == "context":
            directory: Any = inputs.get("context_dir")
            digest: Any = inputs.get("content_hash")
            if not isinstance(directory, str) or not os.path.isabs(directory):
                fail("context_dir", f"must be an absolute path, got {directory!r}")
            if not contains_unknown(digest):
                try:
                    inputs["tag"] = tag_for(digest)
                except (TypeError, ValueError) as exc:
                    fail("content_hash", str(exc))
        else:  # baked
            inputs.setdefault("entrypoint", bake.ENTRYPOINT_PATH)
            inputs.setdefault("browser", False)
            inputs.setdefault("newest_fallback", False)  # came later still, as `browser` did
            inputs.pop("content_hash", None)
            inputs.pop("tag", None)
            if not _any_unknown(inputs, BAKED_FIELDS):
                try:
                    build = bake.baked_build(**baked_fields(inputs))
                except bake.BakeError as exc:
                    field, _, reason = str(exc).partition(": ")
                    fail(field.split("[")[0], reason or str(exc))
                else:
                    inputs["launch"] = build.build_args["MCP_LAUNCH"]
                    inputs["content_hash"] = build.content_hash
                    inputs["tag"] = build.tag
        return CheckResult(inputs, failures)

    # -- diff: compare what the image is made of; never builds -------------------------------------------
    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        olds, news = strip_engine_keys(olds), strip_engine_keys(news)
        kind = str(news.get("kind"))
        built = kind != "prebuilt"
        replace_keys = self.replace_keys + (BUILT_REPLACE_KEYS if built else ())
        keys = replace_keys + CONTENT_KEYS.get(kind, ("content_hash",))
        if olds.get("app") != news.get("app"):
            replace_keys = self.replace_keys  # a new app names a new repository too: the app is the cause
        # A state without a pushed image (an older or broken state) is built.
        unbuilt = built and not (olds.get("digest") and olds.get("image_ref"))
        return diff_result(
            olds,
            news,
            keys=keys,
            replace_keys=replace_keys,
            stable_outputs=kept_on_update(olds, news, keys),
            extra_changes=["digest"] if unbuilt else [],
        )

    # -- create / update: build and push (or pass through) -----------------------------------------------
    def create(self, props: dict[str, Any]) -> CreateResult:
        outs = self._realize(props)
        return CreateResult(id_=outs["repository"], outs=outs)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=self._realize(news))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        # A tag named by a content hash is never rebuilt under that name and Fly's registry has no listing
        # to check it against without a push credential, so refresh keeps what was pushed.
        return ReadResult(id_=id_, outs=strip_engine_keys(props))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        # Nothing to do: Fly's registry offers no tag deletion, and a running machine may still pull the
        # digest. Images of deleted apps go with the app.
        return None

    # -- the work ------------------------------------------------------------------------------------------
    def _realize(self, props: dict[str, Any]) -> dict[str, Any]:
        inputs = strip_engine_keys(props)
        kind = inputs["kind"]
        if kind == "prebuilt":
            return {**inputs, **prebuilt_outputs(inputs["ref"])}
        repo = inputs["repository"]
        try:
            with tempfile.TemporaryDirectory(prefix="catwalk-image-") as work:
                staged = Path(work, "context")
                staged.mkdir()
                build_args: dict[str, str] = {}
                if kind == "context":
                    actual = stage_context(inputs["context_dir"], staged)
                    if actual != inputs["content_hash"]:
                        raise cli.ImageBuildError(
                            f"{inputs['context_dir']} changed while `pulumi up` was running (its hash is now "
                            f"{tag_for(actual)}, the plan was {inputs['tag']}): run `pulumi up` again"
                        )
                else:
                    build = bake.baked_build(**baked_fields(inputs))
                    if build.content_hash != inputs["content_hash"]:
                        raise cli.ImageBuildError("baked image inputs changed between check and build")
                    (staged / "Dockerfile").write_text(build.dockerfile)
                    build_args = build.build_args
                digest = build_and_push(
                    token=registry_token(self.settings().token),
                    ref=f"{repo}:{inputs['tag']}",
                    context_dir=str(staged),
                    metadata_file=str(Path(work, "metadata.json")),
                    build_args=build_args,
                    platform=inputs.get("platform", cli.PLATFORM),
                )
        except (ContextError, bake.BakeError) as exc:
            raise cli.ImageBuildError(f"image {repo}: {exc}") from exc
        except cli.ImageBuildError as exc:
            raise cli.ImageBuildError(f"image {repo}:{inputs.get('tag')}: {exc}") from exc
        return {**inputs, "repository": repo, "digest": digest, "image_ref": cli.pinned_ref(repo, digest)}


def prebuilt_outputs(ref: str) -> dict[str, Any]:
    """A configured image: no build; machines run it as given, pinned when it names a digest."""
    repo, tag, digest = cli.split_ref(ref)
    return {"repository": repo, "tag": tag or "", "digest": digest or "", "image_ref": ref}


def build_and_push(
    *, token: str, ref: str, context_dir: str, metadata_file: str, build_args: dict[str, str], platform: str
) -> str:
    """Log in to the registry, build and push (buildx where it is installed, else `docker build` and
    `docker push`); return the pushed digest.

    Every docker call uses a temporary Docker config (`docker_config`): the token `docker login` stores
    never reaches the user's `~/.docker/config.json`, and is gone from disk once the push is done.
    """
    with temporary_docker_config() as config_dir:
        return _build_and_push(token, ref, context_dir, metadata_file, build_args, platform, config_dir)


def _build_and_push(
    token: str,
    ref: str,
    context_dir: str,
    metadata_file: str,
    build_args: dict[str, str],
    platform: str,
    config_dir: str,
) -> str:
    repo = cli.split_ref(ref)[0]
    registry = repo.split("/", 1)[0]
    network = cli.build_network()

    def fail(step: str, result: cli.Result) -> cli.ImageBuildError:
        return cli.ImageBuildError(cli.explain_failure(step, result.output, repo=repo, secrets=[token]))

    def run(argv: list[str], *, timeout: float, step: str, stdin: str | None = None) -> cli.Result:
        return cli.run(argv, stdin=stdin, timeout=timeout, step=step, config_dir=config_dir)

    result = run(cli.buildx_version_command(), timeout=cli.LOGIN_TIMEOUT, step="docker buildx")
    buildx = result.returncode == 0
    if not buildx and not cli.lacks_buildx(result.output):
        raise fail("docker buildx", result)

    result = run(cli.login_command(registry), stdin=token + "\n", timeout=cli.LOGIN_TIMEOUT, step="docker login")
    if result.returncode != 0:
        raise fail(f"docker login {registry}", result)

    if buildx:
        argv = cli.build_command(
            ref=ref,
            context_dir=context_dir,
            metadata_file=metadata_file,
            platform=platform,
            build_args=build_args,
            network=network,
        )
        result = run(argv, timeout=cli.BUILD_TIMEOUT, step="docker buildx build")
        if result.returncode != 0:
            raise fail("docker buildx build --push", result)
        metadata = Path(metadata_file).read_text() if Path(metadata_file).is_file() else None
        return cli.parse_digest(metadata, result.output)

    argv = cli.docker_build_command(
        ref=ref, context_dir=context_dir, platform=platform, build_args=build_args, network=network
    )
    result = run(argv, timeout=cli.BUILD_TIMEOUT, step="docker build")
    if result.returncode != 0:
        raise fail("docker build", result)
    result = run(cli.push_command(ref), timeout=cli.BUILD_TIMEOUT, step="docker push")
    if result.returncode != 0:
        raise fail("docker push", result)
    return cli.parse_digest(None, result.output)


def baked_from_spec(spec: RuntimeSpec) -> dict[str, Any]:
    """What a baked image takes from a server's detected spec: the program's BakedImage and a bake by hand."""
    return {
        "runtime": spec.runtime,
        "package": spec.pinned or spec.package or "",
        "launch": spec.launch,
        "resolved_at": iso_utc(spec.resolved_at) if spec.resolved_at else "",
        "browser": spec.browser is not None,
    }


def context_inputs(*, app: Any, context_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The inputs of a `context` image as the program computes them: the hash of the directory now."""
    directory = Path(context_dir).resolve()
    digest = context_hash(directory)
    return {
        "kind": "context",
        "app": app,
        "context_dir": str(directory),
        "content_hash": digest,
        "tag": tag_for(digest),
    }
