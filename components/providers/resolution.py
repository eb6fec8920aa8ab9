"""Resolution: one server's locked resolution, kept in the stack's state (components.resolution).

The program detects every server and registers a Resolution with what it found (`resolved`), the package
config it follows (`request`) and whether `catwalk:upgrade` names the server (`upgrade`). `check`, which
sees the state's previous inputs, keeps the previous resolution unless the request changed or an upgrade
is asked for, refuses a bare name on both registries whose choice the state does not hold, fails a server
whose registry did not answer (`unreachable`) unless it keeps the held one, and says what it moves from
(`moved_from`, for the preview). The program then uses the resource's `resolved` output, so
what runs is what the state holds. No Fly call and no registry call, but for re-resolving a bare name on
the registry the state holds.
"""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, ReadResult, UpdateResult
from pydantic import BaseModel, ConfigDict

from components import resolution
from components.fields import ServerName
from components.providers.base import Provider, check_inputs, strip_engine_keys


class ResolutionInputs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    server: ServerName
    request: dict[str, Any]
    resolved: dict[str, Any]  # today's detection, as `components.resolution.stored` writes it
    upgrade: bool = False
    unreachable: str | None = None  # the registry did not answer today: only a held resolution will do
    moved_from: str | None = None


class ResolutionProvider(Provider):
    inputs_model = ResolutionInputs
    kind = "resolution"
    diff_keys = ("request", "resolved")

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        valid = check_inputs(ResolutionInputs, news)
        if valid.failures:
            return valid
        new, old = strip_engine_keys(news), strip_engine_keys(olds)
        server, request = str(new.get("server") or ""), dict(new.get("request") or {})
        kept = resolution.held(old.get("request"), old.get("resolved"), request, bool(new.get("upgrade")))
        if new.get("unreachable") and not kept:
            why = f"server {server!r}: package: {new['unreachable']} (and the state holds no resolution to run on)"
            return CheckResult(news, [CheckFailure("package", why)])
        decision = resolution.decide(
            server,
            old.get("request"),
            old.get("resolved"),
            request,
            dict(new.get("resolved") or {}),
            bool(new.get("upgrade")),
        )
        resolved = decision.resolved
        if decision.redetect:
            try:
                resolved = self._detect_on(decision.redetect, request)
            except ValueError as exc:
                return CheckResult(news, [CheckFailure("package", f"server {server!r}: package: {exc}")])
        if decision.refusal or resolved is None:
            return CheckResult(news, [CheckFailure("package", decision.refusal or "nothing resolved")])
        checked: dict[str, Any] = {"server": server, "request": request, "resolved": resolved}
        moved = resolution.moved_from(old.get("resolved"), resolved)
        if moved:  # for the program's preview message only; never part of the state's outputs
            checked["moved_from"] = moved
        return CheckResult(checked, [])

    @staticmethod
    def _detect_on(runtime: str, request: dict[str, Any]) -> dict[str, Any]:
        """The bare name resolved again on the registry the state holds for it."""
        from components.detect import detect

        spec = detect(
            str(request.get("package")), runtime=runtime, version=request.get("version"), browser=request.get("browser")
        )
        return resolution.stored(spec)

    @staticmethod
    def _outputs(props: dict[str, Any]) -> dict[str, Any]:
        props = strip_engine_keys(props)
        return {k: props[k] for k in ("server", "request", "resolved") if k in props}

    def create(self, props: dict[str, Any]) -> CreateResult:
        outs = self._outputs(props)
        return CreateResult(str(outs.get("server") or "resolution"), outs)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(self._outputs(news))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """Nothing outside the state holds a resolution: a refresh keeps it as it is."""
        return ReadResult(id_, self._outputs(props))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        return None


class Resolution(pulumi.dynamic.Resource, module="catwalk", name="Resolution"):
    """A server's resolution; `resolved` (a `RuntimeSpec` as JSON, `components.resolution.restored`) is what
    it runs. The id is the server name."""

    resolved: pulumi.Output[dict]
    moved_from: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        *,
        server: str,
        request: dict[str, Any],
        resolved: dict[str, Any],
        upgrade: bool,
        unreachable: str | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "server": server,
            "request": request,
            "resolved": resolved,
            "upgrade": upgrade,
            "unreachable": unreachable,
            "moved_from": None,
        }
        super().__init__(ResolutionProvider(), resource_name, props, opts)
