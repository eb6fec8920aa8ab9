"""Whether a server drives a browser, from the pinned release's own metadata (pure: no I/O).

A server whose release depends directly on a browser driver (Playwright, Puppeteer…) needs Chromium at
run time; catwalk gives it Debian's (signed, with its system libraries) in the baked image. Only direct
dependencies count, as the registry states them for the pinned version: a driver deep in the tree is
usually a test helper, and reading the whole tree would mean resolving it. A few servers bundle their
driver into their own build (no dependency to read); they are named in ``BUNDLES_A_DRIVER`` with why.
The stack config's ``browser: true|false`` overrides the decision either way.
"""

from __future__ import annotations

from typing import Literal

from packaging.utils import canonicalize_name

from components.detect.rules import unconditional_requirements

Browser = Literal["chromium"]
BROWSER: Browser = "chromium"
# How detection results show the need: what the baked image installs for it.
SHOWN = "chromium (Debian)"
# npm packages that launch Chromium (directly, or by downloading one at install).
NPM_DRIVERS = frozenset(
    {
        "playwright",
        "playwright-core",
        "@playwright/test",
        "@playwright/browser-chromium",
        "playwright-chromium",
        "playwright-extra",
        "patchright",
        "patchright-core",
        "puppeteer",
        "puppeteer-core",
        "puppeteer-extra",
        "rebrowser-puppeteer",
        "rebrowser-puppeteer-core",
    }
)
# PyPI projects whose browser lookup catwalk can satisfy (Playwright's registry, pyppeteer's PYPPETEER_HOME).
PYTHON_DRIVERS = frozenset({"playwright", "patchright", "pyppeteer"})
# Servers that bundle a driver into their published build, so no dependency names it.
BUNDLES_A_DRIVER = {
    "chrome-devtools-mcp": "bundles puppeteer-core into its build: a devDependency, rolled up",
}
_NPM_FIELDS = ("dependencies", "optionalDependencies", "peerDependencies")


def npm_driver(name: str, manifest: dict) -> str | None:
    """Why an npm release needs a browser (``depends on playwright ^1.52.0``), or None."""
    if name in BUNDLES_A_DRIVER:
        return BUNDLES_A_DRIVER[name]
    for field in _NPM_FIELDS:
        deps = manifest.get(field)
        if not isinstance(deps, dict):
            continue
        for dep in sorted(deps):
            if dep in NPM_DRIVERS:
                kind = {"dependencies": "depends on", "optionalDependencies": "optionally depends on"}.get(
                    field, "has the peer dependency"
                )
                return f"{kind} {dep} {deps[dep]}".rstrip()
    return None


def python_driver(requires_dist: list[str]) -> str | None:
    """Why a PyPI release needs a browser, from its unconditional requirements (an extra does not count)."""
    for requirement in unconditional_requirements(requires_dist):
        if canonicalize_name(requirement.name) in PYTHON_DRIVERS:
            return f"depends on {requirement.name}{requirement.specifier}"
    return None


def decide(detected: str | None, override: bool | None) -> tuple[Browser | None, str | None]:
    """The browser a server gets (``chromium`` or None) and the evidence line that says why."""
    if override is True:
        why = f"; detection: {detected}" if detected else ""
        return BROWSER, f"needs a browser: {SHOWN} (browser: true in the stack config{why})"
    if override is False:
        if detected:
            return None, f"no browser: browser: false in the stack config (detection: {detected})"
        return None, None
    if detected:
        return BROWSER, f"needs a browser: {SHOWN} ({detected})"
    return None, None
