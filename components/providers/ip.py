"""FlyIp: a public address for a server's app (shared v4 and/or a dedicated v6).

An app needs at most one address of each of these types, so create first looks for one that is
already assigned (a lost create, a re-run) and adopts it instead of allocating a second.
"""

from __future__ import annotations

from typing import Any, Literal

import pulumi
from pulumi.dynamic import CreateResult, ReadResult, UpdateResult
from pydantic import BaseModel, ConfigDict

from components.fields import AppName
from components.providers.base import FlyProviderError, Provider, as_dict, strip_engine_keys

IpType = Literal["shared_v4", "v6"]


class IpInputs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    app: AppName
    type: IpType = "shared_v4"


def ip_type(assignment: dict[str, Any]) -> str:
    """Fly lists assignments without their type: a shared one is shared_v4, a ':' address is v6."""
    if assignment.get("shared"):
        return "shared_v4"
    if ":" not in str(assignment.get("ip") or ""):
        return "v4"
    return "private_v6" if assignment.get("network") else "v6"


def find(assignments: list[dict[str, Any]], wanted: str) -> dict[str, Any] | None:
    return next((a for a in assignments if ip_type(a) == wanted), None)


class FlyIpProvider(Provider):
    inputs_model = IpInputs
    replace_keys = ("app", "type")
    stable_outputs = ("address", "app", "type")
    kind = "Fly IP of app"

    def _list(self, client: Any, app: str) -> list[dict[str, Any]]:
        listed = client.list_ips(app)
        items = listed if isinstance(listed, list) else as_dict(listed).get("ips") or []
        return [as_dict(a) for a in items]

    def create(self, props: dict[str, Any]) -> CreateResult:
        inp = IpInputs.model_validate(self.inputs_of(props))
        try:
            with self.client() as client:
                listed = self._list(client, inp.app)
                found = find(listed, inp.type)
                if found is None:
                    known = [ip["ip"] for ip in listed if ip.get("ip")]
                    found = as_dict(client.allocate_ip(inp.app, inp.type, known=known))
                    if not found.get("ip"):  # the response was lost or empty: the assignment tells the truth
                        found = find(self._list(client, inp.app), inp.type) or found
        except Exception as exc:
            raise self.fail(f"allocate {inp.type}", inp.app, exc) from exc
        if not found.get("ip"):
            raise self.fail(f"allocate {inp.type}", inp.app, RuntimeError("Fly returned no address"))
        return CreateResult(found["ip"], {**inp.model_dump(), "address": found["ip"]})

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """Refresh; import by `<app>/<address>`."""
        from components.fly import FlyNotFound

        props = strip_engine_keys(props)
        app, address = props.get("app"), id_
        if "/" in id_ and not app:
            app, address = id_.split("/", 1)
        if not app:
            raise FlyProviderError(f"Fly IP {id_!r}: import it by '<app>/<address>'")
        try:
            with self.client() as client:
                assignments = self._list(client, app)
        except FlyNotFound:
            return ReadResult(None, {})
        except Exception as exc:
            raise self.fail("read", str(app), exc) from exc
        found = next((a for a in assignments if a.get("ip") == address), None)
        if found is None:
            return ReadResult(None, {})
        inputs = {"app": app, "type": ip_type(found)}
        return ReadResult(address, {**inputs, "address": address}, inputs=inputs)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """Every input is a replace key, so nothing changes in place; keep the outputs whole regardless."""
        inp = IpInputs.model_validate(self.inputs_of(news))
        return UpdateResult({**inp.model_dump(), "address": strip_engine_keys(olds).get("address") or id_})

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        from components.fly import FlyNotFound

        app = strip_engine_keys(props).get("app")
        try:
            with self.client() as client:
                client.release_ip(str(app), id_)
        except FlyNotFound:
            return
        except Exception as exc:
            raise self.fail(f"release {id_}", str(app), exc) from exc


class FlyIp(pulumi.dynamic.Resource, module="catwalk", name="FlyIp"):
    """A public IP assignment; its id is the address."""

    address: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        *,
        app: pulumi.Input[str],
        type: str = "shared_v4",
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {"app": app, "type": type, "address": None}
        super().__init__(FlyIpProvider(), resource_name, props, opts)
