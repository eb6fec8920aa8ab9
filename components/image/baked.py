"""Baked server images: a thin two-stage Dockerfile `FROM` the unified image that installs one pinned server.

A cold start of a baked server downloads nothing: `entrypoint.sh install` runs once at build time and
leaves the server's environment in a layer. The build stage adds compilers first (native npm modules such
as better-sqlite3 and Python sdists build from source when no prebuilt binary fits; the layer is the same
for every server, so a builder caches it once), then installs as the app user; the final stage is the
unified image plus only the installed environment (and the app user's home, where install scripts may
leave downloads), so no compiler reaches the runtime image. The server's values reach the build as
`--build-arg`s (argv, never a shell) and are declared with `ARG`/`ENV` in the Dockerfile, so no value is
ever spliced into Dockerfile or shell text; the install `RUN` uses the exec form, so there is no shell at
all. Every value is still checked against the same allowlists as the entrypoint before anything is
rendered. `ENV` keeps them in the image, so the entrypoint at run time finds the install it made at build
time (its stamp is the package and resolution cutoff).

A server that drives a browser (``browser=True``: detection found Playwright or Puppeteer) gets Debian's
Chromium in the final stage, installed as root in one layer before any server value (so a builder caches it
for every such server), plus a font; servers without one stay lean. The entrypoint, told by ``MCP_BROWSER``
where it is, installs with browser downloads skipped (in the build stage too, which has no Chromium) and links
Playwright's expected executables to it; Google Chrome's path (the "chrome" channel, the default of
@playwright/mcp and chrome-devtools-mcp) leads to the same browser through the entrypoint's wrapper.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime

from catwalk_runtime import contract
from components import safety
from components.errors import CatwalkError

# Where deploy/Dockerfile puts the entrypoint, the per-server environments (MCP_HOME), and its app user.
ENTRYPOINT_PATH = "/app/entrypoint.sh"
MCP_HOME = contract.IMAGE_HOME
APP_HOME = "/home/app"
APP_USER = "10001:10001"
# Compilers for the build stage only: native npm modules (node-gyp: make, g++, python3, already in the
# image) and Python sdists.
BUILD_PACKAGES = ("build-essential",)
# The browser of servers that drive one: Debian's Chromium (signed, with its libraries) and a font for its text.
BROWSER_PACKAGES = ("chromium", "fonts-liberation")
BROWSER_PATH = "/usr/bin/chromium"
# Google Chrome's path (Playwright's and Puppeteer's "chrome" channel) and the entrypoint's wrapper it leads to.
CHROME_CHANNEL_PATH = "/opt/google/chrome/chrome"
BROWSER_WRAPPER = f"{MCP_HOME}/{contract.BROWSER_WRAPPER}"
SERVER_ARGS = contract.BAKED_ARGS
BAKE_TAG_PREFIX = "bake-"
BAKEABLE = ("npm", "python")

# Pinned specs only: a baked image must name one exact version (a subset of what the entrypoint accepts).
PYTHON_PINNED = contract.PYTHON_PINNED
NPM_PINNED = contract.NPM_PINNED
RESOLVED_AT = contract.RESOLVED_AT_FORMAT
ABS_PATH = re.compile(r"^/[A-Za-z0-9._/-]{1,255}$")
MAX_LAUNCH_WORDS = contract.MAX_ARGS
MAX_LAUNCH_TEXT = 8192


class BakeError(CatwalkError, ValueError):
    """A server's values cannot be baked; the message names the field and what is wrong."""


@dataclass(frozen=True)
class BakedBuild:
    """Everything the builder needs for one baked image: Dockerfile text, build args and their hash."""

    dockerfile: str
    build_args: dict[str, str]
    content_hash: str

    @property
    def tag(self) -> str:
        return f"{BAKE_TAG_PREFIX}{self.content_hash[:16]}"


def check_runtime(runtime: str) -> None:
    if runtime == "custom":
        raise BakeError(
            "runtime: 'custom' servers run a command that is already in the image; there is nothing to bake "
            "(use the unified image for them)"
        )
    if runtime not in BAKEABLE:
        raise BakeError(f"runtime: {runtime!r} is not one of {', '.join(BAKEABLE)}")


def check_pinned_package(runtime: str, package: str) -> None:
    try:
        safety.check_package_text(package)
    except ValueError as exc:
        raise BakeError(f"package: {exc}") from None
    pattern, example = (
        (PYTHON_PINNED, "mcp-server-git==2025.1.14")
        if runtime == "python"
        else (NPM_PINNED, "@modelcontextprotocol/server-memory@2025.8.4")
    )
    if not pattern.match(package):
        raise BakeError(
            f"package: {package!r} is not a pinned {runtime} package (expected an exact version like "
            f"{example}); versions are resolved and pinned before baking"
        )


def check_launch(launch: list[str] | str) -> str:
    """The server's argv as the JSON text the entrypoint reads; refuses what it would refuse."""
    if isinstance(launch, str):
        try:
            launch = json.loads(launch)
        except json.JSONDecodeError as exc:
            raise BakeError(f"launch: is not a JSON array: {exc}") from None
    if not isinstance(launch, list) or not launch:
        raise BakeError("launch: must be a non-empty list of strings (the server's argv)")
    if len(launch) > MAX_LAUNCH_WORDS:
        raise BakeError(f"launch: has {len(launch)} words; the limit is {MAX_LAUNCH_WORDS}")
    for i, word in enumerate(launch):
        if not isinstance(word, str) or not word:
            raise BakeError(f"launch[{i}]: must be a non-empty string")
        try:
            safety.check_arg(word)
        except ValueError as exc:
            raise BakeError(f"launch[{i}]: {exc}") from None
    if launch[0].startswith("-"):
        raise BakeError(f"launch[0]: {launch[0]!r} is an option, not a program")
    text = json.dumps(launch, separators=(",", ":"), ensure_ascii=True)
    if len(text) > MAX_LAUNCH_TEXT:
        raise BakeError(f"launch: is {len(text)} characters as JSON; the limit is {MAX_LAUNCH_TEXT}")
    return text


def check_resolved_at(value: str) -> None:
    if not isinstance(value, str) or not RESOLVED_AT.match(value):
        raise BakeError(f"resolved_at: {value!r} is not an ISO-8601 time with a zone, like 2025-01-14T09:30:00Z")
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise BakeError(f"resolved_at: {value!r} is not a valid time: {exc}") from None


def check_base(base: str) -> None:
    try:
        safety.check_image_ref(base)
    except ValueError as exc:
        raise BakeError(f"base: {exc}") from None
    if "@sha256:" not in base:
        raise BakeError(f"base: {base!r} is not pinned to a digest (repo@sha256:…); bake from the pushed image")


def _server_values() -> list[str]:
    """`ARG` + `ENV` of the server's values: build args in, kept in the image for the entrypoint at run time."""
    env = " \\\n    ".join(f"{name}=${{{name}}}" for name in SERVER_ARGS)
    return [*(f"ARG {name}" for name in SERVER_ARGS), f"ENV {env}"]


def _browser_env() -> str:
    return f"ENV MCP_BROWSER={BROWSER_PATH} \\\n    MCP_NEEDS_BROWSER=chromium"


def _browser_layer() -> list[str]:
    """Debian's Chromium as root in one layer (apt lists removed), and the "chrome" channel's path to it."""
    chrome_dir = CHROME_CHANNEL_PATH.rsplit("/", 1)[0]
    return [
        "# The browser of a server that drives one: Debian's Chromium with its libraries, and Google Chrome's",
        '# path (the "chrome" channel) leading to it through the entrypoint\'s wrapper.',
        "USER 0:0",
        "# hadolint ignore=DL3008",
        "RUN apt-get update \\",
        f"    && apt-get install -y --no-install-recommends {' '.join(BROWSER_PACKAGES)} \\",
        "    && rm -rf /var/lib/apt/lists/* \\",
        f"    && mkdir -p {chrome_dir} \\",
        f"    && ln -s {BROWSER_WRAPPER} {CHROME_CHANNEL_PATH} \\",
        f"    && {BROWSER_PATH} --version",
        f"USER {APP_USER}",
        _browser_env(),
    ]


def render_baked_dockerfile(
    *, base: str, entrypoint: str = ENTRYPOINT_PATH, browser: bool = False, newest_fallback: bool = False
) -> str:
    """The Dockerfile of a baked server: generic text; the server itself arrives as build args.

    `base` must be digest-pinned, so a baked image is rebuilt exactly when its base changes. The compiler
    layer comes before any `ARG`, so its cache key is the same for every server of one base; so does the
    browser layer of servers that drive a browser.
    """
    check_base(base)
    if not ABS_PATH.match(entrypoint) or ".." in entrypoint.split("/"):
        raise BakeError(f"entrypoint: {entrypoint!r} is not an absolute path of plain characters")
    owner = f"--chown={APP_USER}"
    return "\n".join(
        [
            "# Generated by catwalk (components/image/baked.py): one MCP server baked into the unified image.",
            "# The server's values are build args, checked before rendering; RUN uses the exec form (no shell).",
            "",
            "# Build stage: compilers (the same layer for every server), then the install as the app user.",
            f"FROM {base} AS build",
            "USER 0:0",  # root for apt only; numeric, as hadolint DL3066 asks
            "# hadolint ignore=DL3008",
            "RUN apt-get update \\",
            f"    && apt-get install -y --no-install-recommends {' '.join(BUILD_PACKAGES)} \\",
            "    && rm -rf /var/lib/apt/lists/*",
            f"USER {APP_USER}",
            *([_browser_env()] if browser else []),
            *([f"ENV {contract.CUTOFF_FALLBACK}={contract.CUTOFF_FALLBACK_NONE}"] if newest_fallback else []),
            *_server_values(),
            f'RUN ["{entrypoint}", "install"]',
            "",
            "# Final stage: the unified image plus the installed server only; no compiler reaches it.",
            f"FROM {base}",
            *(_browser_layer() if browser else []),
            *_server_values(),
            f"COPY --from=build {owner} {MCP_HOME} {MCP_HOME}",
            f"COPY --from=build {owner} {APP_HOME} {APP_HOME}",
            "",
        ]
    )


def baked_build(
    *,
    base: str,
    runtime: str,
    package: str,
    launch: list[str] | str,
    resolved_at: str,
    entrypoint: str = ENTRYPOINT_PATH,
    browser: bool | None = False,
    newest_fallback: bool | None = False,
) -> BakedBuild:
    """Validate one server's values and return its Dockerfile, build args and content hash.

    ``browser``: the server drives a browser (detection's ``RuntimeSpec.browser``): its image gets Chromium.
    None (a resource recorded before the field existed) means no browser.
    """
    check_runtime(runtime)
    check_pinned_package(runtime, package)
    launch_text = check_launch(launch)
    check_resolved_at(resolved_at)
    if browser is not None and not isinstance(browser, bool):
        raise BakeError(f"browser: must be true or false, got {browser!r}")
    browser = bool(browser)
    if newest_fallback is not None and not isinstance(newest_fallback, bool):
        raise BakeError(f"newest_fallback: must be true or false, got {newest_fallback!r}")
    dockerfile = render_baked_dockerfile(
        base=base, entrypoint=entrypoint, browser=browser, newest_fallback=bool(newest_fallback)
    )
    args: dict[str, str] = dict(zip(SERVER_ARGS, (runtime, package, launch_text, resolved_at), strict=True))
    digest = hashlib.sha256(b"catwalk-baked-v1\n")
    digest.update(dockerfile.encode())
    digest.update(json.dumps(args, sort_keys=True).encode())
    return BakedBuild(dockerfile=dockerfile, build_args=args, content_hash=digest.hexdigest())
