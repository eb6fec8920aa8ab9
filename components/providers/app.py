"""FlyApp: the Fly app of one server. A rename or an org change replaces it.

Delete removes only what we made: it refuses, naming the machines, when the app still holds machines
that are not this stack's (a `catwalk_stack` other than ours, or none at all).
"""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, UpdateResult
from pydantic import BaseModel, ConfigDict, field_validator

from components import safety
from components.fields import AppName
from components.fly.models import machine_gone
from components.providers.base import FlyProviderError, Provider, as_dict, strip_engine_keys


class AppInputs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: AppName
    org: str = "personal"
    stack: str

    @field_validator("org", "stack")
    @classmethod
    def _token(cls, v: str, info: Any) -> str:
        safety.check_plain_token(v, info.field_name, limit=64)
        return v


def _org_of(app: dict[str, Any]) -> str | None:
    """The org slug of an app as the API returns it."""
    org = app.get("organization") or {}
    return org.get("slug") if isinstance(org, dict) else None


def foreign_machines(machines: list[dict[str, Any]], stack: str) -> list[str]:
    """Machines in the app that this stack did not create (pure: used by delete)."""
    foreign = []
    for m in machines:
        meta = (m.get("config") or {}).get("metadata") or {}
        if meta.get("catwalk_stack") != stack and not machine_gone(m.get("state")):
            foreign.append(f"{m.get('name') or '?'} ({m.get('id')})")
    return sorted(foreign)


class FlyAppProvider(Provider):
    inputs_model = AppInputs
    replace_keys = ("name", "org")
    stable_outputs = ("name", "org", "app_id")
    kind = "Fly app"

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        """App names are global: moving an app to another org under the same name must delete the old app
        (and, through dependencies, its machines) before creating the new one."""
        result = super().diff(_id, olds, news)
        if "org" in (result.replaces or []) and "name" not in (result.replaces or []):
            result.delete_before_replace = True
        return result

    def create(self, props: dict[str, Any]) -> CreateResult:
        """Create the app. The client adopts one that exists in the same org (a lost create, a re-run)
        and refuses a name held by another org, so this never makes a second app."""
        inp = AppInputs.model_validate(self.inputs_of(props))
        try:
            with self.client() as client:
                app = as_dict(client.create_app(inp.name, inp.org))
        except Exception as exc:
            raise self.fail("create", inp.name, exc) from exc
        return CreateResult(inp.name, self._outputs(inp, app))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """Refresh, or import by app name."""
        from components.fly import FlyNotFound

        props = strip_engine_keys(props)
        name = props.get("name") or id_
        try:
            with self.client() as client:
                app = as_dict(client.get_app(name))
        except FlyNotFound:
            return ReadResult(None, {})
        except Exception as exc:
            raise self.fail("read", name, exc) from exc
        inputs = {
            "name": name,
            "org": _org_of(app) or props.get("org") or "personal",
            "stack": props.get("stack") or "",
        }
        outs = {**inputs, "app_id": name, "fly_id": app.get("id"), "status": app.get("status")}
        return ReadResult(name, outs, inputs=inputs)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """Only `stack` can change in place; Fly holds nothing for it."""
        inp = AppInputs.model_validate(self.inputs_of(news))
        olds = strip_engine_keys(olds)
        return UpdateResult(
            {**inp.model_dump(), "app_id": inp.name, "fly_id": olds.get("fly_id"), "status": olds.get("status")}
        )

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        from components.fly import FlyNotFound

        props = strip_engine_keys(props)
        name = props.get("name") or id_
        stack = props.get("stack") or ""
        try:
            with self.client() as client:
                foreign = foreign_machines([as_dict(m) for m in client.list_machines(name)], stack)
                if foreign:
                    raise FlyProviderError(
                        f"Fly app {name!r}: not deleting it, it holds machines this stack ({stack!r}) did not "
                        f"create: {', '.join(foreign)}. Remove them or the app yourself (`fly apps destroy {name}`)."
                    )
                client.delete_app(name)
        except FlyNotFound:
            return
        except FlyProviderError:
            raise
        except Exception as exc:
            raise self.fail("delete", name, exc) from exc

    def _outputs(self, inp: AppInputs, app: dict[str, Any]) -> dict[str, Any]:
        return {**inp.model_dump(), "app_id": inp.name, "fly_id": app.get("id"), "status": app.get("status")}


class FlyApp(pulumi.dynamic.Resource, module="catwalk", name="FlyApp"):
    """A Fly app; its id is the app name.

    Pass `app_id` (the name the Machines API addresses the app by, known only once the app exists) as
    `app=` to FlySecrets, FlyIp and FlyMachine so they depend on it. `fly_id` is Fly's internal id.
    """

    app_id: pulumi.Output[str]
    fly_id: pulumi.Output[str]
    status: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        *,
        name: pulumi.Input[str],
        stack: str,
        org: pulumi.Input[str] = "personal",
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {"name": name, "org": org, "stack": stack, "app_id": None, "fly_id": None, "status": None}
        super().__init__(FlyAppProvider(), resource_name, props, opts)
