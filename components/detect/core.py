"""``detect(spec)``: from what a user typed to a ``RuntimeSpec``, using registry facts, not name shape.

Order of work: the spec is parsed and validated first (invalid specs never touch the network); an
auto-detected name is looked up on PyPI and npm concurrently; the rules in ``rules`` choose; the
version is resolved and pinned; the launch argv comes from the release's own metadata (wheel
``entry_points.txt``, npm ``bin``); a release needing a newer Python than the image's is refused.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import nodesemver
import requests
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from components import spec as specs
from components.detect import browser as browser_mod
from components.detect import pypi as pypi_mod
from components.detect import rules, sources
from components.detect.cache import DiskCache
from components.detect.http import RegistryError, make_session, scrub
from components.detect.models import DetectError, RuntimeSpec, custom_spec, parse_time
from components.detect.npm import Npm, registry_url
from components.detect.pypi import PyPI

MAX_WORKERS = 8


@dataclass
class Clients:
    """The registries detection talks to, sharing one session and one cache."""

    session: requests.Session
    cache: DiskCache
    pypi: PyPI
    npm: Npm

    @classmethod
    def make(cls, session: requests.Session | None = None, cache: DiskCache | None = None) -> Clients:
        session = session or make_session()
        cache = cache or DiskCache()
        return cls(session=session, cache=cache, pypi=PyPI(session, cache), npm=Npm(session, cache))


# ---------------------------------------------------------------------------------------------- PyPI


def _pypi_pick(project: dict, constraint: str | None, name: str) -> tuple[Version, list[dict]]:
    """The newest release matching ``constraint`` (exact pins may be prereleases or yanked)."""
    exact = None
    if constraint:
        text = constraint.strip()
        try:
            exact = Version(text.removeprefix("==")) if not any(c in text.lstrip("=") for c in "<>!~,*") else None
        except InvalidVersion:
            exact = None
    releases = pypi_mod.versions(project, include_yanked=exact is not None)
    if not releases:
        raise DetectError(f"PyPI project {name} has no installable release")
    if exact is not None:
        match = [v for v in releases if v == exact]
        if not match:
            recent = ", ".join(str(v) for v in sorted(releases)[-5:])
            raise DetectError(f"PyPI project {name} has no release {exact} (latest: {recent})")
        return match[0], releases[match[0]]
    try:
        wanted = SpecifierSet(constraint or "")
    except InvalidSpecifier:
        raise DetectError(f"{constraint!r} is not a PEP 440 version specifier") from None
    matching = sorted((v for v in releases if v in wanted), reverse=True)
    stable = [v for v in matching if not v.is_prerelease]
    chosen = (stable or matching or [None])[0]
    if chosen is None:
        raise DetectError(f"no release of PyPI project {name} matches {constraint!r}")
    return chosen, releases[chosen]


def _requires_python(files: list[dict]) -> str | None:
    return next((f["requires_python"] for f in files if f.get("requires_python")), None)


def _refuse_python(name: str, version: Version, requires: str, project: dict, python: str) -> DetectError:
    older = [
        v
        for v, files in pypi_mod.versions(project).items()
        if not v.is_prerelease and rules.python_supported(_requires_python(files), python)
    ]
    hint = (
        f"; the newest release that supports Python {python} is {max(older)}: write pypi:{name}=={max(older)}"
        if older
        else f"; no release supports Python {python}"
    )
    return DetectError(
        f"PyPI project {name} {version} requires Python {requires}, but the image runs Python {python}{hint}"
    )


def _pypi_candidate(
    clients: Clients, name: str, constraint: str | None, with_facts: bool = False
) -> rules.Candidate | None:
    """PyPI's side of an auto-detection; ``with_facts`` reads the release's wheel too (for a shared name)."""
    project = clients.pypi.project(name)
    if project is None:
        return None
    try:
        version, files = _pypi_pick(project, constraint, name)
    except DetectError:
        return None
    info = project.get("info") or {}
    facts: dict | None = None
    if with_facts or info.get("version") != str(version):  # the JSON API describes only the latest release
        try:
            facts = clients.pypi.facts(project, str(version))
        except RegistryError:
            facts = {}
    requires_dist = (facts or {}).get("metadata", {}).get("requires_dist")
    if requires_dist is None and info.get("version") == str(version):
        requires_dist = info.get("requires_dist")
    first = min((parse_time(f["upload_time"]) for f in project["files"] if f.get("upload_time")), default=None)
    return rules.Candidate(
        registry="pypi",
        name=project["name"],
        version=str(version),
        sdk=rules.python_sdk(requires_dist or []),
        says_mcp=rules.mentions_mcp(name, info.get("keywords"), info.get("summary"), *info.get("classifiers", [])),
        launchable=True if facts is None else bool(facts.get("scripts") or facts.get("main_modules")),
        runnable=rules.python_supported(_requires_python(files)),
        first_release=first,
        releases=len(pypi_mod.versions(project, include_yanked=True)),
    )


def _pypi_spec(
    clients: Clients, raw: str, name: str, constraint: str | None, args, evidence, browser: bool | None = None
) -> RuntimeSpec:
    project = clients.pypi.project(name)
    if project is None:
        raise DetectError(f"PyPI project {name!r} does not exist on {clients.pypi.index} (it may have been removed)")
    python = rules.IMAGE_PYTHON
    version, files = _pypi_pick(project, constraint, name)
    requires = _requires_python(files)
    if not rules.python_supported(requires, python):
        raise _refuse_python(project["name"], version, requires, project, python)
    facts = clients.pypi.facts(project, str(version))
    requires = requires or facts.get("metadata", {}).get("requires_python")
    if not rules.python_supported(requires, python):
        raise _refuse_python(project["name"], version, requires, project, python)
    launch, why = rules.python_launch(project["name"], facts.get("scripts", {}), facts.get("main_modules", []))
    uploaded = [t for t in (parse_time(f.get("upload_time")) for f in files) if t]
    sdk = rules.python_sdk(facts.get("metadata", {}).get("requires_dist", []))
    evidence = [*evidence, f"PyPI {project['name']} {version} from {clients.pypi.index}"]
    if sdk:
        evidence.append(f"depends on {sdk}")
    evidence.append(f"launch: {why} (from {facts.get('file')})")
    driver = browser_mod.python_driver(facts.get("metadata", {}).get("requires_dist", []))
    needs, said = browser_mod.decide(driver, browser)
    evidence += [said] if said else []
    return RuntimeSpec(
        spec=raw,
        runtime="python",
        registry=clients.pypi.index,
        package=project["name"],
        version=str(version),
        pinned=f"{project['name']}=={version}",
        launch=launch,
        args=list(args or []),
        requires_python=requires,
        resolved_at=max(uploaded) if uploaded else None,
        browser=needs,
        evidence=evidence,
    )


# ----------------------------------------------------------------------------------------------- npm


def _npm_pick(doc: dict, constraint: str | None, name: str) -> str:
    """The version npm would install: a dist-tag, else ``latest`` when it satisfies, else the max satisfying."""
    tags = doc.get("dist-tags") or {}
    versions = list(doc["versions"])
    wanted = (constraint or "latest").strip()
    if wanted in tags:
        return tags[wanted]
    if wanted in doc["versions"]:
        return wanted
    latest = tags.get("latest")
    try:
        if latest in doc["versions"] and nodesemver.satisfies(latest, wanted, loose=True):
            return latest
        chosen = nodesemver.max_satisfying(versions, wanted, loose=True)
    except (ValueError, TypeError):
        raise DetectError(f"{wanted!r} is not an npm version, range or dist-tag of {name}") from None
    if not chosen:
        recent = ", ".join(versions[-5:])
        raise DetectError(f"no version of npm package {name} matches {wanted!r} (published: {recent})")
    return chosen


def _npm_candidate(clients: Clients, name: str, constraint: str | None) -> rules.Candidate | None:
    doc = clients.npm.packument(name)
    if doc is None:
        return None
    try:
        version = _npm_pick(doc, constraint, name)
    except DetectError:
        return None
    manifest = doc["versions"][version]
    keywords = manifest.get("keywords") if isinstance(manifest.get("keywords"), list) else []
    created = parse_time(doc["time"].get("created"))
    return rules.Candidate(
        registry="npm",
        name=name,
        version=version,
        sdk=rules.npm_sdk(manifest.get("dependencies")),
        says_mcp=rules.mentions_mcp(name, str(manifest.get("description") or ""), *[str(k) for k in keywords]),
        launchable=bool(rules.npm_bins(manifest)),
        first_release=created,  # only a full document's `created` tells when the name was first claimed
        releases=len(doc["versions"]),
    )


def _npm_spec(
    clients: Clients, raw: str, name: str, constraint: str | None, args, evidence, browser: bool | None = None
) -> RuntimeSpec:
    doc = clients.npm.packument(name)
    registry = clients.npm.registry or registry_url(name)
    if doc is None:
        raise DetectError(f"npm package {name!r} does not exist on {registry} (it may have been unpublished)")
    version = _npm_pick(doc, constraint, name)
    manifest = {"name": name, **doc["versions"][version]}
    launch = rules.npm_bin(manifest)
    sdk = rules.npm_sdk(manifest.get("dependencies"))
    engines = manifest.get("engines") if isinstance(manifest.get("engines"), dict) else {}
    evidence = [*evidence, f"npm {name}@{version} from {registry}"]
    evidence.append(f"depends on {sdk}" if sdk else "no MCP SDK dependency (bundled or vendored)")
    evidence.append(f"launch: bin {launch!r}, as npx chooses it")
    if manifest.get("deprecated"):
        evidence.append(f"deprecated: {manifest['deprecated']}")
    needs, said = browser_mod.decide(browser_mod.npm_driver(name, manifest), browser)
    evidence += [said] if said else []
    return RuntimeSpec(
        spec=raw,
        runtime="npm",
        registry=registry,
        package=name,
        version=version,
        pinned=f"{name}@{version}",
        launch=[launch],
        args=list(args or []),
        requires_node=engines.get("node") if isinstance(engines.get("node"), str) else None,
        resolved_at=parse_time(doc["time"].get(version)),
        browser=needs,
        evidence=evidence,
    )


# ------------------------------------------------------------------------------------------ dispatch


def _combine_version(parsed: specs.ParsedSpec, version: str | None) -> str | None:
    if version is None:
        return parsed.version
    if parsed.version is not None and parsed.version.removeprefix("==") != version.removeprefix("=="):
        raise DetectError(f"{parsed.raw!r} pins {parsed.version} but version is {version!r}: give it once")
    return version


def _auto(clients: Clients, parsed: specs.ParsedSpec, version: str | None, args, browser=None) -> RuntimeSpec:
    name = parsed.name or ""
    lookups = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        if "pypi" in parsed.registries:
            lookups["pypi"] = pool.submit(_pypi_candidate, clients, name, _as_pep440(version))
        if "npm" in parsed.registries:
            lookups["npm"] = pool.submit(_npm_candidate, clients, name, version)
        found = {registry: future.result() for registry, future in lookups.items()}
    if found.get("pypi") and found.get("npm"):  # a shared name: weigh PyPI's release by its own wheel too
        found["pypi"] = _pypi_candidate(clients, name, _as_pep440(version), with_facts=True)
    registry, reason = rules.choose(found.get("pypi"), found.get("npm"), name)
    if registry == "pypi":
        return _pypi_spec(clients, parsed.raw, name, _as_pep440(version), args, [reason], browser)
    return _npm_spec(clients, parsed.raw, name, version, args, [reason], browser)


def _as_pep440(version: str | None) -> str | None:
    """A bare ``1.2.3`` typed for an auto-detected name means ``==1.2.3`` on PyPI."""
    if version is None:
        return None
    try:
        return f"=={Version(version)}"
    except InvalidVersion:
        return version


def _valid(check, value: str) -> bool:
    try:
        check(value)
    except ValueError:
        return False
    return True


def detect(
    spec: str,
    *,
    session: requests.Session | None = None,
    version: str | None = None,
    runtime: str | None = None,
    args: Iterable[str] | None = None,
    cache: DiskCache | None = None,
    clients: Clients | None = None,
    browser: bool | None = None,
) -> RuntimeSpec:
    """Resolve one spec to a ``RuntimeSpec``; raise ``DetectError`` (a ``ValueError``) saying why not.

    ``runtime`` forces ``npm``/``python`` (or ``custom``, where ``spec`` is the command); ``version`` is a
    version or range as in the stack config; ``browser`` overrides whether the server needs
    a browser (None: decided from the release's dependencies). Invalid input is refused before any request is made.
    """
    args = list(args or [])
    if runtime == "custom":
        return custom_spec(spec, args)
    if runtime not in (None, "npm", "python"):
        raise DetectError(f"runtime {runtime!r} is not one of npm, python, custom")
    try:
        parsed = specs.parse_spec(spec)
        if version is not None:
            if parsed.registries == ("npm",) or runtime == "npm":
                specs.check_npm_range(version)
            elif parsed.registries == ("pypi",) or runtime == "python":
                specs.check_pep440(version)
            elif not (_valid(specs.check_npm_range, version) or _valid(specs.check_pep440, version)):
                raise ValueError(f"version {version!r} is neither an npm range nor a PEP 440 specifier")
        if runtime is not None and parsed.kind in ("auto", "npm", "pypi"):
            parsed = parsed.for_registry("npm" if runtime == "npm" else "pypi")
        version = _combine_version(parsed, version)
    except ValueError as exc:
        raise DetectError(str(exc)) from None
    clients = clients or Clients.make(session, cache)
    try:
        result = _detect_parsed(clients, spec, parsed, runtime, version, args, browser)
    except RegistryError as exc:
        raise DetectError(scrub(f"{spec}: {exc}")) from exc
    except DetectError as exc:
        raise DetectError(scrub(str(exc))) from None
    return result.model_copy(
        update={"registry": scrub(result.registry or "") or None, "evidence": [scrub(e) for e in result.evidence]}
    )


def _detect_parsed(
    clients: Clients, spec: str, parsed: specs.ParsedSpec, runtime, version, args, browser=None
) -> RuntimeSpec:
    if parsed.kind == "local":
        return sources.detect_local(parsed, runtime=runtime, args=args)
    if parsed.kind == "github":
        return sources.detect_github(parsed, clients.session, runtime=runtime, args=args)
    if parsed.kind == "pypi":
        return _pypi_spec(clients, spec, parsed.name, _as_pep440(version), args, ["PyPI named by the spec"], browser)
    if parsed.kind == "npm":
        why = "npm named by the spec" if not spec.startswith("@") else "a scoped @name exists only on npm"
        return _npm_spec(clients, spec, parsed.name, version, args, [why], browser)
    return _auto(clients, parsed, version, args, browser)


def detect_server(server, *, clients: Clients | None = None, session=None, cache=None) -> RuntimeSpec:
    """Detect one server of the stack config (anything with package/command/runtime/version/args)."""
    command = getattr(server, "command", None)
    args = list(getattr(server, "args", None) or [])
    if command is not None:
        return custom_spec(command, args)
    return detect(
        server.package,
        runtime=getattr(server, "runtime", None),
        version=getattr(server, "version", None),
        args=args,
        session=session,
        cache=cache,
        clients=clients,
        browser=getattr(server, "browser", None),
    )


def detect_many(
    specs_: Iterable,
    *,
    session: requests.Session | None = None,
    cache: DiskCache | None = None,
    max_workers: int | None = None,
) -> list[RuntimeSpec | DetectError]:
    """Detect several specs with bounded concurrency; each item is a result or the error for that spec.

    An item is a spec string, or a server config (``ServerConfig`` or any object with ``package``,
    ``command``, ``runtime``, ``version``, ``args``), so the Pulumi program can detect a whole stack at once.
    """
    items = list(specs_)
    clients = Clients.make(session, cache)
    workers = max(1, min(max_workers or int(os.environ.get("CATWALK_DETECT_WORKERS", MAX_WORKERS)), len(items) or 1))

    def one(item) -> RuntimeSpec | DetectError:
        try:
            if isinstance(item, str):
                return detect(item, clients=clients)
            return detect_server(item, clients=clients)
        except DetectError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, items))


__all__ = ["Clients", "DetectError", "RuntimeSpec", "detect", "detect_many", "detect_server"]
