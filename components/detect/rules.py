"""Detection rules, pure: from registry facts to a decision and the words that explain it.

Nothing here does I/O, so every rule is tested on plain data. The registries' facts come in as
``Candidate`` objects; ``choose`` picks the registry for a name published on both, ``npm_bin`` and
``python_launch`` pick the argv the way npx and a console-script install would.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

from packaging.markers import InvalidMarker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version
from pydantic import BaseModel

from components.detect.errors import DetectError

IMAGE_PYTHON = "3.12"
PYTHON_SDKS = frozenset({"mcp", "fastmcp"})
NPM_SDKS = frozenset({"fastmcp", "mcp-framework", "mcp-handler", "tmcp", "@mastra/mcp"})
NPM_SDK_SCOPE = "@modelcontextprotocol/"  # sdk, server, node, …: the official SDK packages
# Published first on one registry by this much: the other is a later port of the same idea.
FIRST_CLAIM_MARGIN = timedelta(days=180)


class Candidate(BaseModel):
    """What one registry says about a name, reduced to the facts the rules weigh."""

    registry: str  # "pypi" | "npm"
    name: str
    version: str
    sdk: str | None = None  # the MCP SDK it depends on, if any
    says_mcp: bool = False  # keywords/description/name call it an MCP server
    launchable: bool = False  # has a bin / console script / __main__
    runnable: bool = True  # its requirements (Python version) are met by the image
    first_release: datetime | None = None  # None when the registry's answer does not tell
    releases: int = 0

    @property
    def level(self) -> int:
        return 2 if self.sdk else 1 if self.says_mcp else 0

    @property
    def mature(self) -> bool:
        try:
            return Version(self.version).major >= 1
        except InvalidVersion:
            return not self.version.startswith("0.")

    def describe(self) -> str:
        if self.sdk:
            signal = f"depends on {self.sdk}"
        else:
            signal = "describes itself as MCP" if self.says_mcp else "no MCP signal"
        releases = f", {self.releases} release{'s' if self.releases != 1 else ''}" if self.releases else ""
        return f"{self.registry} {self.name} {self.version} ({signal}{releases})"


def mentions_mcp(*texts: str | None) -> bool:
    for text in texts:
        if not text:
            continue
        lowered = text.lower()
        words = set(lowered.replace("_", "-").replace(".", "-").replace("/", "-").replace("@", "-").split("-"))
        if "mcp" in words or "modelcontextprotocol" in lowered or "model context protocol" in lowered:
            return True
        if any(w.startswith("mcp") or w.endswith("mcp") for w in words if len(w) <= 12):
            return True
    return False


def unconditional_requirements(requires_dist: list[str]) -> Iterator[Requirement]:
    """A release's requirements that hold without any extra (an optional extra does not count); unparseable
    lines are skipped, as installers would refuse them anyway."""
    for line in requires_dist:
        try:
            requirement = Requirement(line)
        except (InvalidRequirement, InvalidMarker):
            continue
        if requirement.marker is None or "extra" not in str(requirement.marker):
            yield requirement


def python_sdk(requires_dist: list[str]) -> str | None:
    """The MCP SDK among a project's unconditional requirements."""
    for requirement in unconditional_requirements(requires_dist):
        if canonicalize_name(requirement.name) in PYTHON_SDKS:
            return canonicalize_name(requirement.name)
    return None


def npm_sdk(dependencies: dict | None) -> str | None:
    for name in dependencies or {}:
        if name in NPM_SDKS or (name.startswith(NPM_SDK_SCOPE) and "inspector" not in name):
            return name
    return None


def choose(pypi: Candidate | None, npm: Candidate | None, name: str) -> tuple[str, str]:
    """Pick the registry for an auto-detected name; returns (registry, reason) or raises ``DetectError``."""
    if npm is None:
        if pypi is None:
            raise DetectError(f"{name!r} is published neither on PyPI nor on npm (it may have been removed)")
        return "pypi", f"only on PyPI: {pypi.describe()}"
    if pypi is None:
        return "npm", f"only on npm: {npm.describe()}"
    both = f"{pypi.describe()} and {npm.describe()}"

    def pick(winner: Candidate, why: str) -> tuple[str, str]:
        return winner.registry, f"on both registries ({both}); {why}"

    if bool(pypi.level) != bool(npm.level):
        winner = max((pypi, npm), key=lambda c: c.level)
        return pick(winner, f"only {winner.registry}'s is an MCP server by its dependencies/keywords")
    if pypi.runnable != npm.runnable:
        return pick(npm, f"PyPI's needs a newer Python than the image's {IMAGE_PYTHON}")
    if pypi.launchable != npm.launchable:
        winner = pypi if pypi.launchable else npm
        return pick(winner, f"only {winner.registry}'s has an executable to launch")
    if pypi.first_release and npm.first_release:
        (older, first), (newer, then) = sorted(
            ((pypi, pypi.first_release), (npm, npm.first_release)), key=lambda pair: pair[1]
        )
        if then - first > FIRST_CLAIM_MARGIN:
            return pick(
                older,
                f"{older.registry}'s was published first ({first:%Y-%m-%d}, "
                f"{newer.registry}'s only on {then:%Y-%m-%d})",
            )
    busier, quieter = sorted((pypi, npm), key=lambda c: c.releases, reverse=True)
    if busier.releases >= 2 * quieter.releases and busier.releases - quieter.releases >= 3:
        return pick(
            busier,
            f"{busier.registry}'s has a release history ({busier.releases} releases against "
            f"{quieter.releases}); the other looks like a port",
        )
    if pypi.mature != npm.mature:
        winner = pypi if pypi.mature else npm
        return pick(winner, f"{winner.registry}'s is the established one (version {winner.version} against 0.x)")
    raise DetectError(
        f"{name!r} is ambiguous: it exists on both registries ({both}). "
        f"Write pypi:{name} or npm:{name} (or set runtime: python / npm)"
    )


def npm_bins(manifest: dict) -> dict[str, str]:
    """``bin`` normalised as npm does: a string means one bin named after the unscoped package name."""
    raw = manifest.get("bin")
    name = str(manifest.get("name") or "")
    if isinstance(raw, str):
        return {name.split("/")[-1]: raw}
    if isinstance(raw, dict):
        return {str(k).split("/")[-1]: str(v) for k, v in raw.items() if isinstance(v, str)}
    return {}


def npm_bin(manifest: dict) -> str:
    """The executable ``npx PACKAGE`` runs (libnpmexec's getBinFromManifest)."""
    bins = npm_bins(manifest)
    name = str(manifest.get("name") or "")
    if not bins:
        raise DetectError(f"npm package {name} {manifest.get('version')} has no 'bin': there is nothing for npx to run")
    if len(set(bins.values())) == 1:
        return next(iter(bins))
    unscoped = name.split("/")[-1]
    if unscoped in bins:
        return unscoped
    raise DetectError(
        f"npm package {name} has several executables ({', '.join(sorted(bins))}) and none is named {unscoped!r}: "
        "npx cannot choose either; use a custom command"
    )


def python_launch(project: str, scripts: dict[str, str], modules: list[str]) -> tuple[list[str], str]:
    """The argv that starts a Python server, and why: a console script, else ``python -m module``."""
    canon = canonicalize_name(project)
    if scripts:
        by_canon = {canonicalize_name(s): s for s in scripts}
        if canon in by_canon:
            return [by_canon[canon]], f"console script {by_canon[canon]!r} matches the project name"
        if len(scripts) == 1:
            script = next(iter(scripts))
            return [script], f"its only console script is {script!r}"
        mcp_scripts = sorted(s for s in scripts if "mcp" in s.lower())
        if len(mcp_scripts) == 1:
            return [mcp_scripts[0]], f"{mcp_scripts[0]!r} is its one MCP console script of {len(scripts)}"
        pool = mcp_scripts or sorted(scripts)
        best = max(pool, key=lambda s: (_overlap(canon, canonicalize_name(s)), -len(s)))
        return [best], f"{best!r} is the console script closest to the project name (of {', '.join(sorted(scripts))})"
    if modules:
        module_canon = {canonicalize_name(m): m for m in modules}
        module = module_canon.get(canon, modules[0])
        return ["python", "-m", module], f"no console script; package {module!r} has a __main__"
    raise DetectError(f"PyPI project {project} declares no console script and has no __main__ module to run")


def _overlap(a: str, b: str) -> int:
    return len(set(a.split("-")) & set(b.split("-")))


def python_supported(requires_python: str | None, python: str = IMAGE_PYTHON) -> bool:
    if not requires_python:
        return True
    try:
        return Version(python) in SpecifierSet(requires_python)
    except (InvalidSpecifier, InvalidVersion):
        return True  # an unparseable constraint is not a reason to refuse; the installer will judge
