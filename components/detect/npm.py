"""The npm registry (or the one npm is configured to use): packuments, trimmed to what detection needs, and
which version to run (``pick`` as npm does, ``candidate`` for auto-detection, ``runtime_spec``).

The registry is ``$NPM_CONFIG_REGISTRY`` (or ``$npm_config_registry``), else ``registry=`` (or the
package's ``@scope:registry=``) from ``./.npmrc`` or ``~/.npmrc``, else the public registry. The files
are read once per process, never by running ``npm`` per look-up.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from urllib.parse import quote

import nodesemver
import requests

from components.detect import browser as browser_mod
from components.detect import rules
from components.detect.cache import DiskCache
from components.detect.errors import DetectError, RegistryError
from components.detect.http import get
from components.detect.models import RuntimeSpec, parse_time

NPM_REGISTRY = "https://registry.npmjs.org/"
KEEP = ("name", "version", "bin", "dependencies", "keywords", "engines", "deprecated", "description", "repository")


@functools.lru_cache(maxsize=8)
def _npmrc(paths: tuple[str, ...]) -> dict[str, str]:
    settings: dict[str, str] = {}
    for path in paths:
        try:
            text = Path(path).read_text()
        except OSError:
            continue
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith(("#", ";")) or "=" not in line:
                continue
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), value.strip().strip("\"'"))
    return settings


def registry_url(name: str = "", environ: dict[str, str] | None = None, cwd: str | None = None) -> str:
    """The registry npm would use for ``name``: env first, then project and user ``.npmrc``."""
    env = os.environ if environ is None else environ
    for key in ("NPM_CONFIG_REGISTRY", "npm_config_registry"):
        if env.get(key):
            return env[key].rstrip("/") + "/"
    home = env.get("HOME") or str(Path.home())
    settings = _npmrc((str(Path(cwd or os.getcwd()) / ".npmrc"), env.get("NPM_CONFIG_USERCONFIG") or f"{home}/.npmrc"))
    if name.startswith("@"):
        scoped = settings.get(f"{name.split('/')[0]}:registry")
        if scoped:
            return scoped.rstrip("/") + "/"
    return (settings.get("registry") or NPM_REGISTRY).rstrip("/") + "/"


def _trim(data: dict) -> dict:
    versions = {}
    for number, manifest in (data.get("versions") or {}).items():
        if isinstance(manifest, dict):
            versions[number] = {k: manifest[k] for k in KEEP if k in manifest}
    time = data.get("time") or {}
    return {
        "name": data.get("name"),
        "dist-tags": data.get("dist-tags") or {},
        "versions": versions,
        "time": {k: v for k, v in time.items() if isinstance(v, str)},
        "unpublished": "unpublished" in time,
    }


class Npm:
    """Look-ups against one npm registry, cached on disk; the session is the caller's."""

    def __init__(self, session: requests.Session, cache: DiskCache, registry: str | None = None):
        self.session = session
        self.cache = cache
        self.registry = registry

    def packument(self, name: str) -> dict | None:
        """The package document (all versions); None when the name does not exist or has no versions."""
        registry = self.registry or registry_url(name)
        key = f"npm-packument:{registry}:{name}"
        cached = self.cache.get(key, immutable=False)
        if cached is not None:
            return cached or None
        url = registry + quote(name, safe="@")
        response = get(self.session, url, headers={"Accept": "application/json"})
        if response.status_code == 404:
            doc = None
        elif response.status_code != 200:
            raise RegistryError(
                f"npm registry answered HTTP {response.status_code} for {url}", url=url, status=response.status_code
            )
        else:
            try:
                doc = _trim(response.json())
            except (ValueError, AttributeError) as exc:
                raise RegistryError(
                    f"npm registry's answer for {url} is not a package document: {exc}", url=url
                ) from exc
            doc["source"] = url
            if not doc["versions"]:
                doc = None  # unpublished: the name is held but nothing can be installed
        self.cache.put(key, doc or {})
        return doc


# ------------------------------------------------------------------------------- which version to run


def pick(doc: dict, constraint: str | None, name: str) -> str:
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
        if isinstance(latest, str) and latest in doc["versions"] and nodesemver.satisfies(latest, wanted, loose=True):
            return latest
        chosen = nodesemver.max_satisfying(versions, wanted, loose=True)
    except (ValueError, TypeError):
        raise DetectError(f"{wanted!r} is not an npm version, range or dist-tag of {name}") from None
    if not chosen:
        recent = ", ".join(versions[-5:])
        raise DetectError(f"no version of npm package {name} matches {wanted!r} (published: {recent})")
    return chosen


def candidate(npm: Npm, name: str, constraint: str | None) -> rules.Candidate | None:
    """npm's side of an auto-detection (None when the name has nothing installable that matches)."""
    doc = npm.packument(name)
    if doc is None:
        return None
    try:
        version = pick(doc, constraint, name)
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


def runtime_spec(
    npm: Npm, raw: str, name: str, constraint: str | None, args, evidence, browser: bool | None = None
) -> RuntimeSpec:
    """The pinned version to run for ``name``, its bin as npx chooses it, and why."""
    doc = npm.packument(name)
    registry = npm.registry or registry_url(name)
    if doc is None:
        raise DetectError(f"npm package {name!r} does not exist on {registry} (it may have been unpublished)")
    version = pick(doc, constraint, name)
    manifest = {"name": name, **doc["versions"][version]}
    launch = rules.npm_bin(manifest)
    sdk = rules.npm_sdk(manifest.get("dependencies"))
    engines = manifest.get("engines")
    node = engines.get("node") if isinstance(engines, dict) else None
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
        requires_node=node if isinstance(node, str) else None,
        resolved_at=parse_time(doc["time"].get(version)),
        browser=needs,
        evidence=evidence,
    )
