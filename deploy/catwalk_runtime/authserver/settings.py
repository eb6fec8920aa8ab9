"""The authorization server's settings, read from the machine's environment (names: ``contract``).

Every problem is reported at once, each naming its variable, before anything listens; secret values are
never quoted back.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field

from .. import contract

LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
SCOPE_TOKEN = frozenset("!#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[]^_`abcdefghijklmnopqrstuvwxyz{|}~")


class SettingsError(ValueError):
    """The environment cannot run the server; the message lists every problem, one a line."""


def secure_url(value: str) -> bool:
    """https with a host, or plain http to loopback (a local run and the tests)."""
    try:
        parts = urllib.parse.urlsplit(value)
    except ValueError:
        return False
    if parts.scheme == "https":
        return bool(parts.hostname)
    return parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS


@dataclass(frozen=True)
class Settings:
    issuer: str
    signing_seed: str = field(repr=False)
    passphrase: str = field(repr=False)
    resources: tuple[str, ...]
    scopes: tuple[str, ...] = (contract.AS_SCOPES_DEFAULT,)
    state_dir: str | None = None
    loopback_clients: bool = False


def _issuer(value: str, problems: list[str]) -> str:
    parts = urllib.parse.urlsplit(value) if value else None
    if parts is None or not secure_url(value):
        problems.append(f"{contract.AS_ISSUER} must be an https URL (its own public origin), got {value[:200]!r}")
    elif parts.path not in ("", "/") or parts.query or parts.fragment:
        problems.append(f"{contract.AS_ISSUER} must be an origin (no path, query or fragment), got {value[:200]!r}")
    return value.rstrip("/")


def _resources(value: str, problems: list[str]) -> tuple[str, ...]:
    name = contract.AS_RESOURCES
    try:
        parsed = json.loads(value) if value else None
    except ValueError as exc:
        problems.append(f"{name} is not JSON: {exc}")
        return ()
    if not isinstance(parsed, list) or not parsed or not all(isinstance(item, str) for item in parsed):
        problems.append(f"{name} must be a non-empty JSON list of URLs (each server's https://<app>.fly.dev/mcp)")
        return ()
    for item in parsed:
        if not secure_url(item) or urllib.parse.urlsplit(item).fragment:
            problems.append(f"{name}: {item[:200]!r} is not an https URL without a fragment")
    return tuple(parsed)


def _scopes(value: str, problems: list[str]) -> tuple[str, ...]:
    scopes = tuple(value.split()) if value.strip() else (contract.AS_SCOPES_DEFAULT,)
    for scope in scopes:
        if not set(scope) <= SCOPE_TOKEN or '"' in scope or "\\" in scope:
            problems.append(f"{contract.AS_SCOPES}: {scope[:60]!r} is not a valid scope token (RFC 6749 3.3)")
    return scopes


def from_environ(environ: Mapping[str, str]) -> Settings:
    """The settings of ``environ``; a :class:`SettingsError` lists every problem."""
    problems: list[str] = []
    missing = [name for name in contract.AS_REQUIRED if not environ.get(name)]
    if missing:
        problems.append(f"missing setting(s): {', '.join(missing)} (the stack sets them; secrets as Fly secrets)")
    issuer = _issuer(environ.get(contract.AS_ISSUER, ""), problems) if contract.AS_ISSUER not in missing else ""
    seed = environ.get(contract.AS_SIGNING_SEED, "")
    if seed and len(seed) < contract.AS_SEED_MIN:
        problems.append(f"{contract.AS_SIGNING_SEED} must be at least {contract.AS_SEED_MIN} characters")
    passphrase = environ.get(contract.AS_PASSPHRASE, "")
    if passphrase and len(passphrase) < contract.AS_PASSPHRASE_MIN:
        problems.append(f"{contract.AS_PASSPHRASE} must be at least {contract.AS_PASSPHRASE_MIN} characters")
    raw_resources = environ.get(contract.AS_RESOURCES, "")
    resources = _resources(raw_resources, problems) if raw_resources else ()
    scopes = _scopes(environ.get(contract.AS_SCOPES, ""), problems)
    state_dir = environ.get(contract.AS_STATE) or None
    if state_dir is not None and not state_dir.startswith("/"):
        problems.append(f"{contract.AS_STATE} must be an absolute path, got {state_dir[:200]!r}")
    loopback = environ.get(contract.AS_CIMD_LOOPBACK, "")
    if loopback not in ("", "0", "1"):
        problems.append(f"{contract.AS_CIMD_LOOPBACK} must be 1 or unset, got {loopback[:20]!r}")
    if problems:
        raise SettingsError("\n".join(problems))
    return Settings(issuer, seed, passphrase, resources, scopes, state_dir, loopback == "1")
