"""Sources instead of registry packages: a local directory or ``github:owner/repo[@ref]``.

The runtime comes from the build files a source carries (``package.json``; ``pyproject.toml``,
``setup.cfg``, ``setup.py``); the launch from their ``bin`` / console scripts. GitHub is read through the
caller's HTTP session (raw files and the commits API), so tests hand in a local fake; the ref is pinned
to the commit it names at detection time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal
from urllib.parse import quote

import requests

from components.detect import rules
from components.detect.errors import DetectError, RegistryError
from components.detect.http import get
from components.detect.models import RuntimeSpec, parse_time
from components.detect.wheel import load_toml as _toml
from components.detect.wheel import source_scripts
from components.spec import ParsedSpec

BUILD_FILES = ("package.json", "pyproject.toml", "setup.cfg", "setup.py")
GITHUB_RAW = "https://raw.githubusercontent.com/"
GITHUB_API = "https://api.github.com/"


def decide(files: dict[str, str], runtime: str | None, where: str) -> tuple[Literal["npm", "python"], str]:
    """(runtime, reason) from a source tree's build files."""
    python = any(f in files for f in ("pyproject.toml", "setup.cfg", "setup.py"))
    node = "package.json" in files
    if runtime in ("npm", "python"):
        if (runtime == "npm" and not node) or (runtime == "python" and not python):
            need = "package.json" if runtime == "npm" else "pyproject.toml or setup.py"
            raise DetectError(f"{where} has no {need} for runtime {runtime}")
        return ("npm" if runtime == "npm" else "python"), f"runtime {runtime} as configured"
    if python and not node:
        return "python", "Python build files (pyproject.toml/setup.py), no package.json"
    if node and not python:
        return "npm", "package.json, no Python build files"
    if not python and not node:
        raise DetectError(f"{where} has none of {', '.join(BUILD_FILES)}: cannot tell how to run it")
    package = _json(files["package.json"])
    npm_sdk = rules.npm_sdk(package.get("dependencies"))
    project = _toml(files.get("pyproject.toml", "")).get("project", {})
    py_sdk = rules.python_sdk(project.get("dependencies") or [])
    if bool(npm_sdk) != bool(py_sdk):
        return (
            ("npm", f"package.json depends on {npm_sdk}")
            if npm_sdk
            else ("python", f"pyproject.toml depends on {py_sdk}")
        )
    raise DetectError(f"{where} has both package.json and Python build files: set runtime: npm or python")


def _json(text: str) -> dict:
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _launch(runtime: str, files: dict[str, str], modules: list[str], where: str) -> tuple[str, str | None, list, str]:
    """(name, version, launch argv, why) of a source tree."""
    if runtime == "npm":
        package = _json(files["package.json"])
        name = str(package.get("name") or where)
        return name, package.get("version"), [rules.npm_bin({**package, "name": name})], "bin from package.json"
    project = _toml(files.get("pyproject.toml", "")).get("project", {})
    name = str(project.get("name") or where.rstrip("/").rsplit("/", 1)[-1])
    launch, why = rules.python_launch(name, source_scripts(files), modules)
    return name, project.get("version"), launch, why


def detect_local(parsed: ParsedSpec, *, runtime: str | None, args: list[str]) -> RuntimeSpec:
    root = Path(parsed.path or ".").resolve()
    if not root.is_dir():
        raise DetectError(f"{parsed.raw!r} is not a directory")
    files = {}
    for name in BUILD_FILES:
        try:
            files[name] = (root / name).read_text()
        except (OSError, UnicodeDecodeError):
            continue
    chosen, reason = decide(files, runtime, parsed.raw)
    modules = sorted(
        str(p.parent.relative_to(root)).replace("/", ".").removeprefix("src.")
        for p in list(root.glob("*/__main__.py")) + list(root.glob("src/*/__main__.py"))
    )
    name, version, launch, why = _launch(chosen, files, modules, parsed.raw)
    return RuntimeSpec(
        spec=parsed.raw,
        runtime=chosen,
        registry="local",
        package=str(root),
        version=version,
        pinned=str(root),
        launch=launch,
        args=args,
        evidence=[f"local directory {root}: {reason}", f"launch: {why}"],
    )


def detect_github(
    parsed: ParsedSpec, session: requests.Session, *, runtime: str | None, args: list[str]
) -> RuntimeSpec:
    owner, repo, ref = parsed.owner, parsed.repo, parsed.ref or "HEAD"
    url = f"{GITHUB_API}repos/{owner}/{repo}/commits/{quote(ref, safe='')}"
    response = get(session, url, headers={"Accept": "application/vnd.github+json"})
    if response.status_code == 404:
        raise DetectError(f"github:{owner}/{repo} has no ref {ref!r} (or the repository does not exist)")
    if response.status_code != 200:
        raise RegistryError(
            f"GitHub answered HTTP {response.status_code} for {url}", url=url, status=response.status_code
        )
    commit = response.json()
    sha = str(commit.get("sha") or "")
    if len(sha) != 40:
        raise DetectError(f"GitHub did not name a commit for github:{owner}/{repo}@{ref}")
    when = parse_time(((commit.get("commit") or {}).get("committer") or {}).get("date"))
    files = {}
    for name in BUILD_FILES:
        raw = get(session, f"{GITHUB_RAW}{owner}/{repo}/{sha}/{name}")
        if raw.status_code == 200:
            files[name] = raw.text
        elif raw.status_code != 404:
            raise RegistryError(
                f"GitHub answered HTTP {raw.status_code} for {name}", url=raw.url, status=raw.status_code
            )
    where = f"github:{owner}/{repo}@{sha[:12]}"
    chosen, reason = decide(files, runtime, where)
    name, _, launch, why = _launch(chosen, files, [], where)
    pinned = f"git+https://github.com/{owner}/{repo}@{sha}" if chosen == "python" else f"github:{owner}/{repo}#{sha}"
    return RuntimeSpec(
        spec=parsed.raw,
        runtime=chosen,
        registry="github",
        package=name,
        version=sha,
        pinned=pinned,
        launch=launch,
        args=args,
        resolved_at=when,
        evidence=[f"{where} ({ref}): {reason}", f"launch: {why}"],
    )
