"""FlyApp: the Fly app of one server. A rename or an org change replaces it.

An app belongs to the stack whose id it carries (`components.providers.ownership`). Create makes the app or
finds the one this stack made in an interrupted run; an app of the same name that this stack did not make
stops `preview` (in `check`) and `up` before any write, unless the config adopts it deliberately. Delete
removes only what we made: it refuses when the app is marked as another stack's, or still holds machines
that are not this stack's.
"""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, DiffResult, ReadResult, UpdateResult
from pydantic import BaseModel, ConfigDict, field_validator

from components import safety
from components.fields import AppName
from components.fly.models import machine_gone
from components.providers import ownership
from components.providers.base import FlyProviderError, Provider, as_dict, contains_unknown, strip_engine_keys


class AppInputs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: AppName
    org: str = "personal"
    stack: str
    owner: str
    adopt: bool = False
    # The name is catwalk's default (no `appPrefix`): an app already in the state keeps the name it has, so a
    # stack deployed before the default changed keeps its apps and URLs instead of moving to new ones.
    keep_name: bool = False

    @field_validator("org", "stack")
    @classmethod
    def _token(cls, v: str, info: Any) -> str:
        safety.check_plain_token(v, info.field_name, limit=64)
        return v

    @field_validator("owner")
    @classmethod
    def _owner(cls, v: str) -> str:
        if not ownership.STACK_ID.match(v):
            raise ValueError(f"{v!r} is not a stack id (8-32 lowercase letters and digits)")
        return v


def _org_of(app: dict[str, Any]) -> str | None:
    """The org slug of an app as the API returns it."""
    org = app.get("organization") or {}
    return org.get("slug") if isinstance(org, dict) else None


def foreign_machines(machines: list[dict[str, Any]], stack: str, owner: str | None = None) -> list[str]:
    """Machines in the app that this stack did not create (pure: used by delete).

    A machine is ours when it carries our stack id; state from before stack ids compares the stack name.
    """
    foreign = []
    for m in machines:
        meta = (m.get("config") or {}).get("metadata") or {}
        ours = meta.get("catwalk_owner") == owner if owner else meta.get("catwalk_stack") == stack
        if not ours and not machine_gone(m.get("state")):
            foreign.append(f"{m.get('name') or '?'} ({m.get('id')})")
    return sorted(foreign)


def _secret_names(client: Any, app: str) -> list[str]:
    return [as_dict(s)["name"] for s in client.list_secrets(app)]


class FlyAppProvider(Provider):
    inputs_model = AppInputs
    replace_keys = ("name", "org")
    stable_outputs = ("name", "org", "app_id")
    diff_keys = ("name", "org", "stack", "owner", "adopt")
    kind = "Fly app"

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        """App names are global: moving an app to another org under the same name must delete the old app
        (and, through dependencies, its machines) before creating the new one."""
        result = super().diff(_id, olds, news)
        if "org" in (result.replaces or []) and "name" not in (result.replaces or []):
            result.delete_before_replace = True
        return result

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        """Validate, and when this is about to create the app, stop on a name held by an app not ours.

        The one Fly read a preview makes (a GET, and the secret names of an app found): only for an app
        not yet in the state, so an unchanged stack still previews without calling Fly.
        """
        old = strip_engine_keys(olds)
        if news.get("keep_name") and old.get("name"):
            news = {**news, "name": old["name"]}
        result = super().check(olds, news)
        props = result.inputs or {}
        if result.failures or contains_unknown(props.get("name")):
            return result
        if old.get("name") == props.get("name") and old.get("org") == props.get("org"):
            return result
        owner = None if contains_unknown(props.get("owner")) else props.get("owner")
        try:
            with self.client() as client:
                problem = self._not_ours(client, props["name"], owner, bool(props.get("adopt")))
        except Exception as exc:
            problem = f"cannot tell whether Fly app {props['name']!r} is this stack's: {exc}"
        if problem:
            return CheckResult(result.inputs, [CheckFailure("name", problem)])
        return result

    def create(self, props: dict[str, Any]) -> CreateResult:
        """Create the app, or take the one this stack made in an interrupted run (it carries our mark) or one
        the config adopts; anything else of that name is refused before any write."""
        from components.fly import FlyConflict, FlyNotFound

        inp = AppInputs.model_validate(self.inputs_of(props))
        try:
            with self.client() as client:
                try:
                    app = as_dict(client.create_app(inp.name, inp.org, adopt=False))
                except FlyConflict as conflict:
                    try:
                        app = as_dict(client.get_app(inp.name))
                    except FlyNotFound:  # taken by an organization this token cannot see
                        raise self.fail("create", inp.name, conflict) from conflict
                    if _org_of(app) not in (None, inp.org):
                        raise FlyProviderError(
                            f"Fly app {inp.name!r} exists in organization {_org_of(app)!r}, not {inp.org!r}"
                        ) from None
                    problem = self._not_ours(client, inp.name, inp.owner, inp.adopt)
                    if problem:
                        raise FlyProviderError(problem) from None
                self._mark(client, inp, previous=None)
        except FlyProviderError:
            raise
        except Exception as exc:
            raise self.fail("create", inp.name, exc) from exc
        return CreateResult(inp.name, self._outputs(inp, app))

    @staticmethod
    def _not_ours(client: Any, name: str, owner: str | None, adopt: bool) -> str | None:
        """None when creating `name` may go ahead: no such app, one this stack marked, or an adopted one."""
        from components.fly import FlyNotFound

        try:
            client.get_app(name)
        except FlyNotFound:
            return None  # free (or held by an org this token cannot see: create names that)
        if adopt:
            return None
        found = ownership.owners(_secret_names(client, name))
        if owner is not None and owner in found:
            return None
        return ownership.not_ours(name, found, owner or "not created yet")

    @staticmethod
    def _mark(client: Any, inp: AppInputs, previous: str | None) -> None:
        """Put our mark on the app; an adopted app (or one of our previous id) loses the other marks."""
        names = _secret_names(client, inp.name)
        marks = [n for n in names if ownership.is_marker(n)]
        others = [n for n in marks if n != ownership.marker(inp.owner)]
        if others and not inp.adopt and previous is None:
            raise FlyProviderError(ownership.not_ours(inp.name, ownership.owners(others), inp.owner))
        if ownership.marker(inp.owner) not in names:
            client.set_secrets(inp.name, {ownership.marker(inp.owner): inp.owner})
        if others and (inp.adopt or previous is not None):
            client.unset_secrets(inp.name, others if inp.adopt or previous is None else [ownership.marker(previous)])

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
        try:
            with self.client() as client:
                found = ownership.owners(_secret_names(client, name))
        except Exception as exc:
            raise self.fail("read", name, exc) from exc
        owner = props.get("owner") if props.get("owner") in found else (found[0] if found else props.get("owner"))
        inputs = {
            "name": name,
            "org": _org_of(app) or props.get("org") or "personal",
            "stack": props.get("stack") or "",
            "owner": owner or "",
            "adopt": bool(props.get("adopt")),
            "keep_name": bool(props.get("keep_name")),
        }
        outs = {**inputs, "app_id": name, "fly_id": app.get("id"), "status": app.get("status")}
        return ReadResult(name, outs, inputs=inputs)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """`stack` changes in place (Fly holds nothing for it); a new owner or adoption re-marks the app.

        State from before stack ids has no owner: its first `up` marks the app, unless another stack did.
        """
        inp = AppInputs.model_validate(self.inputs_of(news))
        olds = strip_engine_keys(olds)
        if olds.get("owner") != inp.owner or (inp.adopt and not olds.get("adopt")):
            try:
                with self.client() as client:
                    self._mark(client, inp, previous=olds.get("owner") or None)
            except FlyProviderError:
                raise
            except Exception as exc:
                raise self.fail("mark", inp.name, exc) from exc
        return UpdateResult(
            {**inp.model_dump(), "app_id": inp.name, "fly_id": olds.get("fly_id"), "status": olds.get("status")}
        )

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        from components.fly import FlyNotFound

        props = strip_engine_keys(props)
        name = props.get("name") or id_
        stack = props.get("stack") or ""
        owner = props.get("owner") or None
        try:
            with self.client() as client:
                found = ownership.owners(_secret_names(client, name))
                if owner and found and owner not in found:
                    raise FlyProviderError(
                        f"Fly app {name!r}: not deleting it, it is marked as another stack's (id "
                        f"{', '.join(found)}), not this one's ({owner}). Drop it from this stack's state "
                        f"(`pulumi state delete <urn>`) or delete it yourself (`fly apps destroy {name}`)."
                    )
                foreign = foreign_machines([as_dict(m) for m in client.list_machines(name)], stack, owner)
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
    name: pulumi.Output[str]  # known in a preview (`app_id` only once the app exists)
    fly_id: pulumi.Output[str]
    status: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        *,
        name: pulumi.Input[str],
        stack: str,
        owner: pulumi.Input[str],
        org: pulumi.Input[str] = "personal",
        adopt: pulumi.Input[bool] = False,
        keep_name: bool = False,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "name": name,
            "org": org,
            "stack": stack,
            "owner": owner,
            "adopt": adopt,
            "keep_name": keep_name,
            "app_id": None,
            "fly_id": None,
            "status": None,
        }
        super().__init__(FlyAppProvider(), resource_name, props, opts)
