"""The npm registry (or the one npm is configured to use): packuments, trimmed to what detection needs.

The registry is ``$NPM_CONFIG_REGISTRY`` (or ``$npm_config_registry``), else ``registry=`` (or the
package's ``@scope:registry=``) from ``./.npmrc`` or ``~/.npmrc``, else the public registry. The files
are read once per process, never by running ``npm`` per look-up.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from urllib.parse import quote

import requests

from components.detect.cache import DiskCache
from components.detect.http import RegistryError, get

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
