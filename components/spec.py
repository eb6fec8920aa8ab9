"""Parse and validate a package spec string into a `ParsedSpec`, with no I/O.

Every form a user may write for a server's `package` is recognised here, and everything else is
refused with a ``ValueError`` that says what is wrong. Nothing reaches a registry, an installer's argv or
a Dockerfile before it has passed this parser, so the checks are an allowlist: shell metacharacters,
control characters, option-looking values (``--index-url=…``, ``-e …``), ``..`` segments and overlong
values never get through.

Forms:

- ``NAME`` / ``NAME@RANGE`` — auto-detect (PyPI and npm are both asked); ``@scope/name[@RANGE]`` is npm
- ``NAME==VER`` — PyPI (PEP 440 pin)
- ``npm:NAME[@RANGE]``, ``npx://NAME[@RANGE]`` — npm
- ``pypi:NAME[==VER]``, ``uvx://NAME[==VER|@VER]`` — PyPI
- ``./dir`` or ``/abs/dir`` — a local source directory
- ``github:owner/repo[@ref]`` — a source on GitHub
"""

from __future__ import annotations

import re
from typing import Literal

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import InvalidName, canonicalize_name
from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, ConfigDict

from components import safety

MAX_NPM_NAME = 214
MAX_VERSION = 64

Kind = Literal["auto", "npm", "pypi", "local", "github"]
Registry = Literal["npm", "pypi"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# npm: lowercase, url-safe, no leading dot/underscore (validate-npm-package-name, new-package rules).
_NPM_PART = r"[a-z0-9][a-z0-9._~-]*"
_NPM_NAME = re.compile(rf"^(?:@{_NPM_PART}/)?{_NPM_PART}$")
# npm ranges as written inside a spec (no spaces there): 1.2.3, ^1.2, ~1, 1.x, >=1.2, latest, next.
_NPM_RANGE = re.compile(r"^[0-9A-Za-z^~=<>.*+-]{1,64}$")
_GITHUB_OWNER = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,37}[A-Za-z0-9])?$")
_GITHUB_REPO = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
_GIT_REF = re.compile(r"^[A-Za-z0-9._/-]{1,128}$")
_LOCAL_PATH = re.compile(r"^[A-Za-z0-9._/@+=-]+$")


class ParsedSpec(BaseModel):
    """What a spec string names: where to look (``registries``), which name, which version constraint."""

    model_config = ConfigDict(frozen=True)

    raw: str
    kind: Kind
    name: str | None = None
    version: str | None = None
    registries: tuple[Registry, ...] = ()
    path: str | None = None
    owner: str | None = None
    repo: str | None = None
    ref: str | None = None

    @property
    def pinned(self) -> bool:
        """True when the version names exactly one release (``==1.2.3`` or ``1.2.3``)."""
        return self.version is not None and _exact(self.version)

    def for_registry(self, registry: Registry) -> ParsedSpec:
        """The same spec, restricted to one registry (after detection or an explicit runtime)."""
        if registry not in self.registries:
            raise ValueError(f"{self.raw!r} cannot be a {registry} package: {why_not(self.name or '', registry)}")
        return self.model_copy(update={"kind": registry, "registries": (registry,)})


def _exact(version: str) -> bool:
    v = version.removeprefix("==").removeprefix("=").removeprefix("v")
    try:
        Version(v)
    except InvalidVersion:
        return False
    return not v.endswith((".*", ".x"))


def _refuse_unsafe(value: str, what: str = "package spec") -> None:
    safety.check_package_text(value, what)


def npm_name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid npm package name, or None."""
    if len(name) > MAX_NPM_NAME:
        return f"npm names are at most {MAX_NPM_NAME} characters"
    if name != name.lower():
        return "npm names are lowercase"
    if not _NPM_NAME.match(name):
        return (
            "npm names are [@scope/]name of lowercase letters, digits, '-', '.', '_', '~', not starting with '.' or '_'"
        )
    if name.split("/")[-1] in {"node_modules", "favicon.ico"}:
        return "that name is reserved on npm"
    return None


def pypi_name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid PEP 508 distribution name, or None."""
    if len(name) > MAX_NPM_NAME:
        return f"names are at most {MAX_NPM_NAME} characters here"
    try:
        canonicalize_name(name, validate=True)  # the PEP 508 name grammar, as packaging implements it
    except InvalidName:
        return "PEP 508 names are letters, digits, '-', '_', '.', starting and ending with a letter or digit"
    return None


def why_not(name: str, registry: Registry) -> str:
    problem = npm_name_problem(name) if registry == "npm" else pypi_name_problem(name)
    return problem or "ok"


def check_npm_range(version: str) -> str:
    """Validate an npm version or range (``1.2.3``, ``^1.2``, ``>=1 <2``, ``latest``)."""
    _check_version_text(version)
    import nodesemver

    if re.fullmatch(r"[A-Za-z][A-Za-z0-9._-]*", version):  # a dist-tag such as latest or next
        return version
    if nodesemver.valid_range(version, loose=True) is None:
        raise ValueError(f"{version!r} is not an npm version or range (e.g. 1.2.3, ^1.2, ~1.4, >=1 <2)")
    return version


def check_pep440(version: str) -> str:
    """Validate a PEP 440 version (``1.2.3``) or specifier (``==1.2.3``, ``>=1,<2``)."""
    _check_version_text(version)
    try:
        Version(version)
        return version
    except InvalidVersion:
        pass
    try:
        SpecifierSet(version)
    except InvalidSpecifier:
        raise ValueError(f"{version!r} is not a PEP 440 version or specifier (e.g. 1.2.3, ==1.2.3, >=1,<2)") from None
    return version


def _check_version_text(version: str) -> None:
    if not version:
        raise ValueError("version is empty")
    if _CONTROL.search(version):
        raise ValueError(f"version contains a control character: {version!r}")
    if len(version) > MAX_VERSION:
        raise ValueError(f"version is {len(version)} characters long; the limit is {MAX_VERSION}")
    if version.startswith("-"):
        raise ValueError(f"version starts with '-' and would be read as an option: {version!r}")
    if not re.fullmatch(r"[0-9A-Za-z*^~<>=!.,+| -]+", version):
        raise ValueError(f"{version!r} is not a version or version range")


def _npm(raw: str, body: str) -> ParsedSpec:
    """``NAME`` or ``NAME@RANGE``; the name may be scoped (``@scope/name``)."""
    scoped = body.startswith("@")
    name, sep, version = body[1:].partition("@") if scoped else body.partition("@")
    name = ("@" + name) if scoped else name
    if sep and not version:
        raise ValueError(f"{raw!r} ends with '@' but gives no version")
    problem = npm_name_problem(name)
    if problem:
        raise ValueError(f"{name!r} is not a valid npm package name: {problem}")
    if version and not _NPM_RANGE.match(version):
        raise ValueError(f"{version!r} is not an npm version or range")
    if version:
        check_npm_range(version)
    return ParsedSpec(raw=raw, kind="npm", name=name, version=version or None, registries=("npm",))


def _pypi(raw: str, body: str, *, at_version: bool = False) -> ParsedSpec:
    """``NAME`` or ``NAME==VER`` (``NAME@VER`` too for uvx://, as uvx accepts it)."""
    if "==" in body:
        name, _, version = body.partition("==")
    elif at_version and "@" in body:
        name, _, version = body.partition("@")
    else:
        name, version = body, ""
    if "=" in name or "@" in name:
        raise ValueError(f"{raw!r}: write a PyPI version as NAME==VERSION")
    problem = pypi_name_problem(name)
    if problem:
        raise ValueError(f"{name!r} is not a valid PyPI project name: {problem}")
    if body.endswith(("==", "@")) or (("==" in body or (at_version and "@" in body)) and not version):
        raise ValueError(f"{raw!r} gives no version after the separator")
    if version:
        try:
            Version(version)
        except InvalidVersion:
            raise ValueError(f"{version!r} is not a PEP 440 version (e.g. 1.2.3)") from None
        version = f"=={version}"
    return ParsedSpec(raw=raw, kind="pypi", name=name, version=version or None, registries=("pypi",))


def _github(raw: str, body: str) -> ParsedSpec:
    repo_part, sep, ref = body.partition("@")
    if sep and not ref:
        raise ValueError(f"{raw!r} ends with '@' but names no git ref")
    owner, slash, repo = repo_part.partition("/")
    if not slash or "/" in repo:
        raise ValueError(f"{raw!r}: write a GitHub source as github:OWNER/REPO[@REF]")
    if not _GITHUB_OWNER.match(owner):
        raise ValueError(f"{owner!r} is not a GitHub user or organisation name")
    repo = repo.removesuffix(".git")
    if not _GITHUB_REPO.match(repo) or repo in {".", ".."}:
        raise ValueError(f"{repo!r} is not a GitHub repository name")
    if ref and (not _GIT_REF.match(ref) or ref.startswith(("/", ".", "-")) or ref.endswith((".lock", "/", "."))):
        raise ValueError(f"{ref!r} is not a git branch, tag or commit")
    return ParsedSpec(raw=raw, kind="github", owner=owner, repo=repo, ref=ref or None, name=f"{owner}/{repo}")


def _local(raw: str) -> ParsedSpec:
    if not _LOCAL_PATH.match(raw):
        raise ValueError(f"{raw!r}: a local directory path may hold letters, digits and . _ - / @ + = only")
    return ParsedSpec(raw=raw, kind="local", path=raw.rstrip("/") or "/")


def _bare(raw: str) -> ParsedSpec:
    if raw.startswith("@"):
        return _npm(raw, raw)
    if "==" in raw:
        return _pypi(raw, raw)
    if "/" in raw:
        raise ValueError(
            f"{raw!r} is not a package name: use @scope/name for npm, github:owner/repo for GitHub, "
            "or ./dir for a local directory"
        )
    name, sep, version = raw.partition("@")
    if sep and not version:
        raise ValueError(f"{raw!r} ends with '@' but gives no version")
    if "=" in name:
        raise ValueError(f"{raw!r}: write a PyPI version as NAME==VERSION")
    npm_problem = npm_name_problem(name)
    pypi_problem = pypi_name_problem(name)
    registries: list[Registry] = []
    if pypi_problem is None:
        registries.append("pypi")
    if npm_problem is None:
        registries.append("npm")
    if not registries:
        raise ValueError(f"{name!r} is not a valid package name: {pypi_problem}; {npm_problem}")
    if version:
        if not _NPM_RANGE.match(version):
            raise ValueError(f"{version!r} is not a version")
        ok_npm = _valid_or_none(check_npm_range, version)
        ok_pypi = _valid_or_none(check_pep440, version)
        if not (ok_npm or ok_pypi):
            raise ValueError(f"{version!r} is neither an npm range nor a PEP 440 version")
    return ParsedSpec(raw=raw, kind="auto", name=name, version=version or None, registries=tuple(registries))


def _valid_or_none(check, value: str) -> str | None:
    try:
        return check(value)
    except ValueError:
        return None


def parse_spec(spec: str) -> ParsedSpec:
    """Parse one package spec; raise ``ValueError`` naming the problem. Pure: no network, no filesystem."""
    if not isinstance(spec, str):
        raise ValueError(f"package spec must be a string, not {type(spec).__name__}")
    _refuse_unsafe(spec)
    for prefix in ("npm:", "npx://"):
        if spec.startswith(prefix):
            return _npm(spec, _rest(spec, prefix))
    if spec.startswith("pypi:"):
        return _pypi(spec, _rest(spec, "pypi:"))
    if spec.startswith("uvx://"):
        return _pypi(spec, _rest(spec, "uvx://"), at_version=True)
    if spec.startswith("github:"):
        return _github(spec, _rest(spec, "github:"))
    if spec.startswith(("./", "/")) or spec == ".":
        return _local(spec)
    if ":" in spec:
        scheme = spec.split(":", 1)[0]
        raise ValueError(
            f"unknown spec scheme {scheme + ':'!r} in {spec!r}: use npm:, pypi:, npx://, uvx://, github: or a bare name"
        )
    return _bare(spec)


def _rest(spec: str, prefix: str) -> str:
    rest = spec[len(prefix) :]
    if not rest:
        raise ValueError(f"{spec!r} names no package after {prefix!r}")
    if rest.startswith("-"):
        raise ValueError(f"{spec!r}: the name starts with '-' and would be read as an installer option")
    return rest


def pypi_canonical(name: str) -> str:
    """PEP 503 normalised name (``Office_Word.MCP`` → ``office-word-mcp``)."""
    return canonicalize_name(name)
