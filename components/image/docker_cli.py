"""The `docker` command lines catwalk runs, the digest they report, and what their failures mean.

Two ways to build, both BuildKit: `docker buildx build --push` where the buildx plugin is installed, else
`docker build` followed by `docker push` (the `docker.io` packages of Debian and Ubuntu ship no buildx; their
client drives the engine's BuildKit itself with ``DOCKER_BUILDKIT=1``). Either way the digest is the one the
push reported.

Two settings from the environment, for engines and registries other than Fly's: ``CATWALK_REGISTRY``
(host[:port], default registry.fly.io) is where images are pushed and what machines pull, and
``CATWALK_BUILD_NETWORK`` (`host` or `none`) the network of build steps, for engines that have no default
bridge network (rootless or `dockerd --bridge=none`).

Command construction and output parsing are pure; `run` is the one place a process is started. The Fly
token is the registry password: it goes to `docker login --password-stdin` on stdin, is removed from the
environment of every docker process, and is scrubbed from any output quoted in an error.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from components.errors import CatwalkError

REGISTRY = "registry.fly.io"
REGISTRY_USER = "x"  # Fly's registry takes any user name; the token is the password (`fly auth docker`)
PLATFORM = "linux/amd64"  # Fly Machines run amd64
TOKEN_ENV = "FLY_API_TOKEN"
REGISTRY_ENV = "CATWALK_REGISTRY"
BUILD_NETWORK_ENV = "CATWALK_BUILD_NETWORK"
BUILD_NETWORKS = ("host", "none")
_TOKEN_ENVS = ("FLY_API_TOKEN", "FLY_ACCESS_TOKEN")

FLY_APP = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
REGISTRY_HOST = re.compile(r"^[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?(?::[0-9]{1,5})?$")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_PUSHED = re.compile(r"pushing manifest for \S+@(sha256:[0-9a-f]{64})")
_PUSH_LINE = re.compile(r"digest: (sha256:[0-9a-f]{64}) size: \d+")

LOGIN_TIMEOUT = 120
BUILD_TIMEOUT = 45 * 60
TAIL_LINES = 25


class ImageBuildError(CatwalkError, RuntimeError):
    """A build or push failed; the message says what happened and what to do about it."""


def check_app(app: str) -> None:
    if not isinstance(app, str) or not FLY_APP.match(app) or "--" in app:
        raise ValueError(
            f"app: {app!r} is not a Fly app name (lowercase letters, digits and dashes, at most 63 characters)"
        )


def registry() -> str:
    """Where images are pushed: ``CATWALK_REGISTRY`` (host[:port]) if set, else Fly's registry."""
    value = os.environ.get(REGISTRY_ENV, "").strip()
    if not value:
        return REGISTRY
    if not REGISTRY_HOST.match(value) or ".." in value:
        raise ValueError(f"{REGISTRY_ENV}: {value!r} is not a registry host[:port] (like registry.fly.io)")
    return value


def build_network() -> str | None:
    """The network of build steps from ``CATWALK_BUILD_NETWORK``; None leaves the builder's default."""
    value = os.environ.get(BUILD_NETWORK_ENV, "").strip()
    if not value:
        return None
    if value not in BUILD_NETWORKS:
        raise ValueError(f"{BUILD_NETWORK_ENV}: {value!r} is not one of {', '.join(BUILD_NETWORKS)}")
    return value


def repository(app: str) -> str:
    """The registry repository of an app: pushed to Fly's registry, images there run on that org's machines."""
    check_app(app)
    return f"{registry()}/{app}"


def login_command(registry: str = REGISTRY) -> list[str]:
    return ["docker", "login", registry, "--username", REGISTRY_USER, "--password-stdin"]


def buildx_version_command() -> list[str]:
    return ["docker", "buildx", "version"]


def build_command(
    *,
    ref: str,
    context_dir: str,
    metadata_file: str,
    dockerfile: str | None = None,
    platform: str = PLATFORM,
    build_args: Mapping[str, str] | None = None,
    network: str | None = None,
) -> list[str]:
    """`docker buildx build … --push`: one platform, no attestations (Fly pulls a plain manifest)."""
    argv = [
        "docker",
        "buildx",
        "build",
        "--platform",
        platform,
        "--push",
        "--provenance=false",
        "--sbom=false",
        "--progress=plain",
        "--metadata-file",
        metadata_file,
        "--tag",
        ref,
    ]
    return argv + _build_tail(context_dir=context_dir, dockerfile=dockerfile, build_args=build_args, network=network)


def docker_build_command(
    *,
    ref: str,
    context_dir: str,
    dockerfile: str | None = None,
    platform: str = PLATFORM,
    build_args: Mapping[str, str] | None = None,
    network: str | None = None,
) -> list[str]:
    """`docker build` without buildx (BuildKit through the client, ``DOCKER_BUILDKIT=1``); `push_command` pushes."""
    argv = ["docker", "build", "--platform", platform, "--progress=plain", "--tag", ref]
    return argv + _build_tail(context_dir=context_dir, dockerfile=dockerfile, build_args=build_args, network=network)


def push_command(ref: str) -> list[str]:
    return ["docker", "push", ref]


def _build_tail(
    *, context_dir: str, dockerfile: str | None, build_args: Mapping[str, str] | None, network: str | None
) -> list[str]:
    argv: list[str] = []
    if network:
        argv += ["--network", network]
    for key, value in sorted((build_args or {}).items()):
        argv += ["--build-arg", f"{key}={value}"]
    if dockerfile:
        argv += ["--file", dockerfile]
    argv.append(context_dir)
    return argv


def lacks_buildx(output: str) -> bool:
    """Whether a failed docker command failed because the client has no buildx plugin."""
    return any(s in output.lower() for s in NO_BUILDX)


def parse_digest(metadata: str | None, output: str = "") -> str:
    """The pushed manifest digest, from what the push itself reported.

    First the `pushing manifest for <ref>@sha256:…` line of buildx's progress (or `docker push`'s
    `digest: sha256:… size:` line): that is what the registry accepted. Then buildx's `--metadata-file`
    `containerimage.digest`, unless it equals `containerimage.config.digest`: some drivers have reported
    the image ID there, which no registry can pull by.
    """
    found = _PUSHED.findall(output) or _PUSH_LINE.findall(output)
    if found:
        return found[-1]
    try:
        data = json.loads(metadata) if metadata else None
    except json.JSONDecodeError:
        data = None
    if isinstance(data, dict):
        value = data.get("containerimage.digest")
        if isinstance(value, str) and DIGEST.match(value) and value != data.get("containerimage.config.digest"):
            return value
    raise ImageBuildError(
        "the build finished but reported no pushed manifest digest (no 'pushing manifest' line, no usable "
        "containerimage.digest in buildx's metadata); check that `docker buildx build --push` pushed the image"
    )


def pinned_ref(repo: str, digest: str) -> str:
    """`registry/repo@sha256:…`: what machines run, immune to a tag being moved."""
    if not DIGEST.match(digest):
        raise ValueError(f"{digest!r} is not a sha256 digest")
    return f"{repo}@{digest}"


def split_ref(ref: str) -> tuple[str, str | None, str | None]:
    """`repo[:tag][@sha256:…]` → (repo, tag, digest)."""
    rest, _, digest = ref.partition("@")
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        return rest[:colon], rest[colon + 1 :], digest or None
    return rest, None, digest or None


# --- failures ---------------------------------------------------------------------------------------

NO_DAEMON = ("cannot connect to the docker daemon", "is the docker daemon running", "error during connect")
NO_BUILDX = (
    "unknown command: docker buildx",
    "'buildx' is not a docker command",
    "unknown flag: --platform",
    "buildx component is missing",
)
AUTH = (
    "401 unauthorized",
    "unauthorized",
    "authentication required",
    "denied: requested access",
    "incorrect username or password",
    "403 forbidden",
    "insufficient_scope",
)
QUOTA = (
    "quota",
    "toomanyrequests",
    "429 too many requests",
    "rate limit",
    "507 insufficient storage",
    "413 request entity too large",
    "storage limit",
)
NO_APP = ("name unknown", "name_unknown", "repository name not known", "app not found")
NO_SOCKET_ACCESS = ("permission denied while trying to connect to the docker daemon",)
NETWORK = (
    "no such host",
    "i/o timeout",
    "tls handshake timeout",
    "connection refused",
    "network is unreachable",
    "connection reset by peer",
)

SKIP_HINT = "or set `catwalk:image` to a prebuilt image to skip building"


def scrub(text: str, secrets: Sequence[str] = ()) -> str:
    """Replace any secret value (and the Fly tokens in this environment) with ***."""
    values = [s for s in secrets if s] + [os.environ.get(n, "") for n in _TOKEN_ENVS]
    for value in sorted({v for v in values if len(v) >= 4}, key=len, reverse=True):
        text = text.replace(value, "***")
    return text


def _tail(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.strip()]
    return "\n".join("    " + line for line in lines[-TAIL_LINES:])


def explain_failure(step: str, output: str, *, repo: str = REGISTRY, secrets: Sequence[str] = ()) -> str:
    """One message for a failed docker step: the cause in words, what to do, then docker's last lines."""
    low = output.lower()
    app = repo.rsplit("/", 1)[-1]
    if any(s in low for s in NO_BUILDX):
        cause = (
            "docker has no buildx plugin: install it (Debian/Ubuntu: `apt-get install docker-buildx`, or "
            f"docker-buildx-plugin from Docker's repository; see https://docs.docker.com/go/buildx/), {SKIP_HINT}"
        )
    elif any(s in low for s in NO_SOCKET_ACCESS):
        cause = (
            "this user may not use the Docker engine's socket: add it to the docker group "
            "(`sudo usermod -aG docker $USER`, then log in again) or use rootless Docker, "
            f"{SKIP_HINT}"
        )
    elif any(s in low for s in NO_DAEMON):
        cause = (
            "no Docker engine is reachable: start Docker (Docker Desktop, or `sudo systemctl start docker`), "
            f"point DOCKER_HOST or a buildx builder at a running engine, {SKIP_HINT}"
        )
    elif any(s in low for s in NO_APP):
        cause = (
            f"the Fly registry has no repository {repo}: the Fly app {app!r} must exist before its image is "
            f"pushed (`fly apps create {app}`), and FLY_API_TOKEN must belong to its organization"
        )
    elif any(s in low for s in QUOTA):
        cause = (
            f"the Fly registry refused the push to {repo} for quota, size or rate: wait a few minutes and run "
            "`pulumi up` again; if it persists, check the organization's plan and billing (`fly orgs show`, "
            "`fly dashboard`) or make the image smaller"
        )
    elif any(s in low for s in AUTH):
        cause = (
            f"the Fly registry refused FLY_API_TOKEN for {repo}: check it with `fly auth whoami`, then export a "
            "valid one (`export FLY_API_TOKEN=$(fly auth token)`, or a deploy token from "
            f"`fly tokens create deploy -a {app}`) and run `pulumi up` again"
        )
    elif any(s in low for s in NETWORK):
        cause = (
            f"the registry {repo.split('/', 1)[0]} could not be reached: check the network, DNS and any "
            "HTTPS_PROXY setting of the Docker engine, then run `pulumi up` again"
        )
    else:
        cause = "see docker's output below"
    return f"{step} failed: {cause}\n  docker said:\n{_tail(scrub(output, secrets))}"


# --- running ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    returncode: int
    output: str  # stdout and stderr together, as a person would have seen them


def docker_env(config_dir: str | None = None) -> dict[str, str]:
    """The environment of docker processes: ours, without the Fly tokens (docker needs none of them), and
    `DOCKER_CONFIG` when the call has its own Docker config (see `components.image.docker_config`)."""
    env = {k: v for k, v in os.environ.items() if k not in _TOKEN_ENVS}
    env.setdefault("BUILDX_NO_DEFAULT_ATTESTATIONS", "1")
    env["DOCKER_BUILDKIT"] = "1"  # `docker build` without buildx: BuildKit (COPY --chmod), not the legacy builder
    if config_dir is not None:
        env["DOCKER_CONFIG"] = config_dir
    return env


def run(
    argv: Sequence[str],
    *,
    stdin: str | None = None,
    timeout: float,
    step: str,
    cwd: str | None = None,
    config_dir: str | None = None,
) -> Result:
    """Run one docker command; a missing docker binary or a timeout becomes an ImageBuildError."""
    try:
        proc = subprocess.run(
            list(argv),
            input=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            timeout=timeout,
            env=docker_env(config_dir),
            cwd=cwd,
            check=False,
        )
    except FileNotFoundError:
        raise ImageBuildError(
            f"{step} failed: the `docker` command was not found on PATH: install Docker with the buildx plugin "
            f"(https://docs.docker.com/engine/install/), {SKIP_HINT}"
        ) from None
    except subprocess.TimeoutExpired:
        raise ImageBuildError(f"{step} failed: docker did not finish within {int(timeout)} s") from None
    return Result(proc.returncode, proc.stdout or "")
