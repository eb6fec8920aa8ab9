"""PyPI (or a configured mirror): which releases exist, their files, and one release's launch facts.

The index is ``$PIP_INDEX_URL``, else ``$UV_INDEX_URL`` / ``$UV_DEFAULT_INDEX``, else PyPI. On PyPI the JSON
API answers with metadata and upload times in one request; on any other index the Simple API (PEP 691
JSON, or PEP 503 HTML) is read instead. File URLs may be relative: they are resolved against the
response's own URL.
"""

from __future__ import annotations

import os
from html.parser import HTMLParser
from urllib.parse import quote, urljoin, urlsplit

import requests
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from components.detect import wheel
from components.detect.cache import DiskCache
from components.detect.http import RegistryError, get

PYPI_SIMPLE = "https://pypi.org/simple/"
SIMPLE_ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1"


def index_url(environ: dict[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    url = env.get("PIP_INDEX_URL") or env.get("UV_INDEX_URL") or env.get("UV_DEFAULT_INDEX") or PYPI_SIMPLE
    return url.split()[0].rstrip("/") + "/"


def _json_api(index: str) -> str | None:
    """PyPI's JSON API base for the default index (``…/simple/`` → ``…/pypi/``); None for other indexes."""
    parts = urlsplit(index)
    if parts.hostname in {"pypi.org", "test.pypi.org"} and parts.path.rstrip("/").endswith("/simple"):
        return index[: -len("simple/")] + "pypi/"
    return None


def _version_of(filename: str) -> tuple[str, str] | None:
    """(version, "wheel"|"sdist") from a distribution file name, or None for other files."""
    try:
        if filename.endswith(".whl"):
            return str(parse_wheel_filename(filename)[1]), "wheel"
        if filename.endswith((".tar.gz", ".zip")):
            return str(parse_sdist_filename(filename)[1]), "sdist"
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
        return None
    return None


class _Links(HTMLParser):
    """Anchors of a PEP 503 page with their ``data-*`` attributes."""

    def __init__(self):
        super().__init__()
        self.links: list[dict] = []
        self._current: dict | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self._current = dict(attrs)
            self._current["_text"] = ""

    def handle_data(self, data):
        if self._current is not None:
            self._current["_text"] += data

    def handle_endtag(self, tag):
        if tag == "a" and self._current is not None:
            self.links.append(self._current)
            self._current = None


def _file(filename: str, url: str, requires_python, upload_time, yanked) -> dict | None:
    parsed = _version_of(filename)
    if parsed is None:
        return None
    version, kind = parsed
    return {
        "filename": filename,
        "url": url,
        "version": version,
        "kind": kind,
        "requires_python": requires_python or None,
        "upload_time": upload_time or None,
        "yanked": bool(yanked),
    }


class PyPI:
    """Look-ups against one Python index, cached on disk; the session is the caller's."""

    def __init__(self, session: requests.Session, cache: DiskCache, index: str | None = None):
        self.session = session
        self.cache = cache
        self.index = index or index_url()
        self.json_api = _json_api(self.index)

    def project(self, name: str) -> dict | None:
        """All releases of a project as {"name", "files": [...], "info": {...}}; None when it does not exist."""
        canon = canonicalize_name(name)
        key = f"pypi-project:{self.index}:{canon}"
        cached = self.cache.get(key, immutable=False)
        if cached is not None:
            return cached or None
        project = self._project_json(canon) if self.json_api else self._project_simple(canon)
        self.cache.put(key, project or {})
        return project

    def _project_json(self, canon: str) -> dict | None:
        url = f"{self.json_api}{quote(canon)}/json"
        response = get(self.session, url, headers={"Accept": "application/json"})
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise RegistryError(
                f"PyPI answered HTTP {response.status_code} for {url}", url=url, status=response.status_code
            )
        try:
            data = response.json()
            info = data["info"]
        except (ValueError, KeyError, TypeError) as exc:
            raise RegistryError(f"PyPI's answer for {url} is not the JSON API: {exc}", url=url) from exc
        files = []
        for entries in (data.get("releases") or {}).values():
            for entry in entries or []:
                item = _file(
                    entry.get("filename", ""),
                    urljoin(response.url, entry.get("url", "")),
                    entry.get("requires_python"),
                    entry.get("upload_time_iso_8601") or entry.get("upload_time"),
                    entry.get("yanked"),
                )
                if item:
                    files.append(item)
        return {
            "name": info.get("name") or canon,
            "files": files,
            "info": {
                "version": info.get("version"),
                "requires_dist": info.get("requires_dist") or [],
                "requires_python": info.get("requires_python"),
                "keywords": info.get("keywords"),
                "summary": info.get("summary"),
                "classifiers": [c for c in info.get("classifiers") or [] if "mcp" in c.lower()],
            },
            "source": url,
        }

    def _project_simple(self, canon: str) -> dict | None:
        url = f"{self.index}{quote(canon)}/"
        response = get(self.session, url, headers={"Accept": SIMPLE_ACCEPT})
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise RegistryError(
                f"the index answered HTTP {response.status_code} for {url}", url=url, status=response.status_code
            )
        base = response.url
        files = []
        if "json" in response.headers.get("Content-Type", ""):
            try:
                data = response.json()
            except ValueError as exc:
                raise RegistryError(f"the index's answer for {url} is not JSON: {exc}", url=url) from exc
            name = data.get("name") or canon
            for entry in data.get("files") or []:
                item = _file(
                    entry.get("filename", ""),
                    urljoin(base, entry.get("url", "")),
                    entry.get("requires-python"),
                    entry.get("upload-time"),
                    entry.get("yanked"),
                )
                if item:
                    files.append(item)
        else:
            parser = _Links()
            parser.feed(response.text)
            name = canon
            for link in parser.links:
                href = link.get("href") or ""
                filename = (link.get("_text") or "").strip() or href.split("#")[0].rsplit("/", 1)[-1]
                item = _file(
                    filename,
                    urljoin(base, href.split("#")[0]),
                    link.get("data-requires-python"),
                    None,
                    "data-yanked" in link,
                )
                if item:
                    files.append(item)
        return {"name": name, "files": files, "info": {}, "source": url}

    def facts(self, project: dict, version: str) -> dict:
        """Console scripts, ``__main__`` modules and METADATA of one release (immutable, cached forever)."""
        canon = canonicalize_name(project["name"])
        key = f"pypi-facts:{self.index}:{canon}:{version}"
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        files = [f for f in project["files"] if f["version"] == version]
        wheels = sorted((f for f in files if f["kind"] == "wheel"), key=_wheel_preference)
        sdists = [f for f in files if f["kind"] == "sdist"]
        if wheels:
            facts = wheel.wheel_facts(self.session, wheels[0]["url"])
            facts["file"] = wheels[0]["filename"]
        elif sdists:
            facts = wheel.sdist_facts(self.session, sdists[0]["url"])
            facts["file"] = sdists[0]["filename"]
        else:
            raise RegistryError(
                f"{project['name']} {version} has no wheel or sdist on {self.index}",
                url=project.get("source", self.index),
            )
        facts.pop("requests", None)
        self.cache.put(key, facts)
        return facts


def _wheel_preference(file: dict) -> tuple[int, str]:
    """Pure-Python wheels first, then Linux ones: any wheel holds the same entry points."""
    name = file["filename"]
    if name.endswith("-none-any.whl"):
        return 0, name
    if "manylinux" in name and "x86_64" in name:
        return 1, name
    return 2, name


def versions(project: dict, *, include_yanked: bool = False) -> dict[Version, list[dict]]:
    """Releases by version, with their files."""
    releases: dict[Version, list[dict]] = {}
    for file in project["files"]:
        if file["yanked"] and not include_yanked:
            continue
        try:
            releases.setdefault(Version(file["version"]), []).append(file)
        except InvalidVersion:
            continue
    return releases
