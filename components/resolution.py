"""Locked resolution: what a preview resolved for a server is kept in the stack's state and reused.

Detection picks a registry, a version, a launch argv and a release time from what the registries say today;
re-deciding at every preview would roll an unpinned server to a new release (or a bare name to the other
registry) without anyone asking. So the state holds the last resolution, and it moves only when the
server's package config (`request_of`) changes or `catwalk:upgrade` asks. Why this shape:
docs/locked-resolution.md. Pure functions here; `components.providers.resolution` applies them in `check`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from components.detect.models import RuntimeSpec


def request_of(server: Any) -> dict[str, Any]:
    """The server config a resolution follows: a change to any of these resolves the server again.

    `args` is not among them: it is the server's own argv, applied to whatever is resolved.
    """
    request = {
        "package": server.package,
        "runtime": server.runtime,
        "version": server.version,
        "browser": server.browser,
    }
    return {k: v for k, v in request.items() if v is not None}


def stored(spec: RuntimeSpec) -> dict[str, Any]:
    """A resolution as the state keeps it (JSON; without `args`, which follow the config)."""
    return spec.model_dump(mode="json", exclude={"args"}, exclude_none=True)


def restored(data: Mapping[str, Any], args: list[str]) -> RuntimeSpec:
    """The state's resolution with the config's current `args`."""
    fields = {k: v for k, v in data.items() if k in RuntimeSpec.model_fields and k != "args"}
    return RuntimeSpec.model_validate({**fields, "args": list(args)})


def shown(data: Mapping[str, Any] | None) -> str:
    """How a resolution reads in a message: the pinned package, with its registry when it is a bare name's."""
    if not data:
        return "nothing"
    return str(data.get("pinned") or data.get("package") or data.get("spec") or "?")


@dataclass(frozen=True)
class Decision:
    """What a run does with one server's resolution.

    `resolved` is what the state will hold (None when the run must resolve again with `redetect`, or is
    refused); `moved_from` the previous pin when it changes; `refusal` says why nothing may be chosen.
    """

    resolved: dict[str, Any] | None = None
    moved_from: str | None = None
    redetect: str | None = None  # "npm" | "python": resolve the bare name on the registry the state holds
    refusal: str | None = None


def held(
    old_request: Mapping[str, Any] | None,
    old_resolved: Mapping[str, Any] | None,
    request: Mapping[str, Any],
    upgrade: bool,
) -> dict[str, Any] | None:
    """The state's resolution when this run keeps it: same request, no upgrade asked for."""
    if old_resolved and dict(old_request or {}) == dict(request) and not upgrade:
        return dict(old_resolved)
    return None


def both_registries_refusal(server: str, fresh: Mapping[str, Any]) -> str:
    name = fresh.get("spec") or fresh.get("package")
    chosen = "npm" if fresh.get("runtime") == "npm" else "PyPI"
    return (
        f"server {server!r}: package: {name!r} is published on both PyPI and npm, and which one runs must not "
        f"depend on what either publisher does next: write `npm:{name}` or `pypi:{name}` (or set `runtime`). "
        f"Detection alone would pick {chosen} ({'; '.join(fresh.get('evidence') or [])})"
    )


def decide(
    server: str,
    old_request: Mapping[str, Any] | None,
    old_resolved: Mapping[str, Any] | None,
    request: Mapping[str, Any],
    fresh: Mapping[str, Any],
    upgrade: bool,
) -> Decision:
    """Reuse the state's resolution unless the request changed or an upgrade is asked for; else take `fresh`.

    A bare name found on both registries is taken only when the state already holds the choice for that
    name (resolving on that registry again if today's detection would pick the other one).
    """
    kept = held(old_request, old_resolved, request, upgrade)
    if kept:
        return Decision(resolved=kept)
    if fresh.get("both_registries"):
        same_name = old_resolved and (old_request or {}).get("package") == request.get("package")
        registry = old_resolved.get("runtime") if same_name and old_resolved else None
        if registry not in ("npm", "python"):
            return Decision(refusal=both_registries_refusal(server, fresh))
        if registry != fresh.get("runtime"):
            return Decision(redetect=registry)
    return Decision(resolved=dict(fresh), moved_from=moved_from(old_resolved, fresh))


def moved_from(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> str | None:
    """The old pin when a resolution moves (None for a first resolution or one that stays)."""
    return shown(old) if old and shown(old) != shown(new) else None
