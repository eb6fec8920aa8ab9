"""PyPI (or a configured mirror): which releases exist, their files, one release's launch facts, and which
release to run (``pick``, ``candidate`` for auto-detection, ``runtime_spec``).

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
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from components.detect import browser as browser_mod
from components.detect import rules, wheel
from components.detect.cache import DiskCache
from components.detect.errors import DetectError, RegistryError
from components.detect.http import get
from components.detect.models import RuntimeSpec, parse_time

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


# ------------------------------------------------------------------------------- which release to run


def pick(project: dict, constraint: str | None, name: str) -> tuple[Version, list[dict]]:
    """The newest release matching ``constraint`` (exact pins may be prereleases or yanked)."""
    exact = None
    if constraint:
        text = constraint.strip()
        try:
            exact = Version(text.removeprefix("==")) if not any(c in text.lstrip("=") for c in "<>!~,*") else None
        except InvalidVersion:
            exact = None
    releases = versions(project, include_yanked=exact is not None)
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


def requires_python(files: list[dict]) -> str | None:
    return next((f["requires_python"] for f in files if f.get("requires_python")), None)


def refuse_python(name: str, version: Version, requires: str | None, project: dict, python: str) -> DetectError:
    older = [
        v
        for v, files in versions(project).items()
        if not v.is_prerelease and rules.python_supported(requires_python(files), python)
    ]
    hint = (
        f"; the newest release that supports Python {python} is {max(older)}: write pypi:{name}=={max(older)}"
        if older
        else f"; no release supports Python {python}"
    )
    return DetectError(
        f"PyPI project {name} {version} requires Python {requires}, but the image runs Python {python}{hint}"
    )


def candidate(pypi: PyPI, name: str, constraint: str | None, with_facts: bool = False) -> rules.Candidate | None:
    """PyPI's side of an auto-detection; ``with_facts`` reads the release's wheel too (for a shared name)."""
    project = pypi.project(name)
    if project is None:
        return None
    try:
        version, files = pick(project, constraint, name)
    except DetectError:
        return None
    info = project.get("info") or {}
    facts: dict | None = None
    if with_facts or info.get("version") != str(version):  # the JSON API describes only the latest release
        try:
            facts = pypi.facts(project, str(version))
        except RegistryError:
            facts = {}
    requires_dist = (facts or {}).get("metadata", {}).get("requires_dist")
    if requires_dist is None and info.get("version") == str(version):
        requires_dist = info.get("requires_dist")
    first = min((t for f in project["files"] if (t := parse_time(f.get("upload_time")))), default=None)
    return rules.Candidate(
        registry="pypi",
        name=project["name"],
        version=str(version),
        sdk=rules.python_sdk(requires_dist or []),
        says_mcp=rules.mentions_mcp(name, info.get("keywords"), info.get("summary"), *info.get("classifiers", [])),
        launchable=True if facts is None else bool(facts.get("scripts") or facts.get("main_modules")),
        runnable=rules.python_supported(requires_python(files)),
        first_release=first,
        releases=len(versions(project, include_yanked=True)),
    )


def runtime_spec(
    pypi: PyPI, raw: str, name: str, constraint: str | None, args, evidence, browser: bool | None = None
) -> RuntimeSpec:
    """The pinned release to run for ``name``; refused when it needs a newer Python than the image's."""
    project = pypi.project(name)
    if project is None:
        raise DetectError(f"PyPI project {name!r} does not exist on {pypi.index} (it may have been removed)")
    python = rules.IMAGE_PYTHON
    version, files = pick(project, constraint, name)
    requires = requires_python(files)
    if not rules.python_supported(requires, python):
        raise refuse_python(project["name"], version, requires, project, python)
    facts = pypi.facts(project, str(version))
    requires = requires or facts.get("metadata", {}).get("requires_python")
    if not rules.python_supported(requires, python):
        raise refuse_python(project["name"], version, requires, project, python)
    launch, why = rules.python_launch(project["name"], facts.get("scripts", {}), facts.get("main_modules", []))
    uploaded = [t for t in (parse_time(f.get("upload_time")) for f in files) if t]
    sdk = rules.python_sdk(facts.get("metadata", {}).get("requires_dist", []))
    evidence = [*evidence, f"PyPI {project['name']} {version} from {pypi.index}"]
    if sdk:
        evidence.append(f"depends on {sdk}")
    evidence.append(f"launch: {why} (from {facts.get('file')})")
    driver = browser_mod.python_driver(facts.get("metadata", {}).get("requires_dist", []))
    needs, said = browser_mod.decide(driver, browser)
    evidence += [said] if said else []
    return RuntimeSpec(
        spec=raw,
        runtime="python",
        registry=pypi.index,
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
