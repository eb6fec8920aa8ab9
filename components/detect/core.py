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

import requests
from packaging.version import InvalidVersion, Version

from components import spec as specs
from components.detect import npm as npm_mod
from components.detect import pypi as pypi_mod
from components.detect import rules, sources
from components.detect.cache import DiskCache
from components.detect.errors import DetectError, RegistryError
from components.detect.http import make_session, scrub
from components.detect.models import RuntimeSpec, custom_spec
from components.detect.npm import Npm
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
            lookups["pypi"] = pool.submit(pypi_mod.candidate, clients.pypi, name, _as_pep440(version))
        if "npm" in parsed.registries:
            lookups["npm"] = pool.submit(npm_mod.candidate, clients.npm, name, version)
        found = {registry: future.result() for registry, future in lookups.items()}
    if found.get("pypi") and found.get("npm"):  # a shared name: weigh PyPI's release by its own wheel too
        found["pypi"] = pypi_mod.candidate(clients.pypi, name, _as_pep440(version), with_facts=True)
    registry, reason = rules.choose(found.get("pypi"), found.get("npm"), name)
    if registry == "pypi":
        result = pypi_mod.runtime_spec(clients.pypi, parsed.raw, name, _as_pep440(version), args, [reason], browser)
    else:
        result = npm_mod.runtime_spec(clients.npm, parsed.raw, name, version, args, [reason], browser)
    if found.get("pypi") and found.get("npm"):
        said = f"a stack needs `npm:{name}` or `pypi:{name}` for a name on both registries"
        return result.model_copy(update={"both_registries": True, "evidence": [*result.evidence, said]})
    return result


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
        return pypi_mod.runtime_spec(
            clients.pypi, spec, parsed.name or "", _as_pep440(version), args, ["PyPI named by the spec"], browser
        )
    if parsed.kind == "npm":
        why = "npm named by the spec" if not spec.startswith("@") else "a scoped @name exists only on npm"
        return npm_mod.runtime_spec(clients.npm, spec, parsed.name or "", version, args, [why], browser)
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
    if not items:
        return []
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
