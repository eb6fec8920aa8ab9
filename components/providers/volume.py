"""FlyVolume: the persistent disk of one machine of a server, per (server, region, index) like the machine.

Data is never deleted by a config slip: `delete` (a volume removed from config, a removed server, a lower
`count`, a region change) refuses unless the stack setting catwalk:deleteVolumes lists the server; a preview
still shows the planned delete. Growing `size_gb` extends the volume in place; shrinking it, or changing its
encryption, is refused at check (Fly can do neither). Snapshot retention updates in place.

Create adopts a live volume of the same name in the region (see `components.storage.volume_name`): after a
lost answer, a failed run or a lost state, the server finds its data again instead of an empty disk.
"""

from __future__ import annotations

import logging
import time
from typing import Any, ClassVar, TypeGuard

import pulumi
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, ReadResult, UpdateResult
from pydantic import BaseModel, ConfigDict, Field, field_validator

from components import safety, storage
from components.fields import AppName, Region, ServerName
from components.fly.models import volume_gone
from components.providers.base import (
    DELETE_VOLUMES_HINT,
    FlyProviderError,
    Provider,
    as_dict,
    check_inputs,
    import_id,
    strip_engine_keys,
)

log = logging.getLogger("catwalk.providers")


class VolumeInputs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    app: AppName
    stack: str
    server: ServerName
    region: Region
    index: int = Field(default=0, ge=0, le=99)
    size_gb: int = Field(default=1, ge=1, le=storage.MAX_VOLUME_GB)
    encrypted: bool = True
    snapshot_retention: int | None = Field(default=None, ge=1, le=60)

    @field_validator("stack")
    @classmethod
    def _stack(cls, v: str) -> str:
        safety.check_plain_token(v, "stack", limit=64)
        return v

    @property
    def name(self) -> str:
        return storage.volume_name(self.region, self.index)


def _number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def shrink_or_reencrypt(olds: dict[str, Any], news: dict[str, Any]) -> list[CheckFailure]:
    """What Fly cannot do to an existing volume (pure: previous inputs against new ones)."""
    failures = []
    old_size, new_size = olds.get("size_gb"), news.get("size_gb")
    # The engine hands numbers over as floats (protobuf Struct).
    if _number(old_size) and _number(new_size) and new_size < old_size:
        failures.append(
            CheckFailure(
                "size_gb", f"size_gb: Fly volumes cannot shrink: it is {int(old_size)} GB, asked for {int(new_size)}"
            )
        )
    if "encrypted" in olds and "encrypted" in news and olds["encrypted"] != news["encrypted"]:
        failures.append(
            CheckFailure(
                "encrypted",
                "encrypted: a volume's encryption is fixed when it is made; keep it, or remove the volume "
                "(with catwalk:deleteVolumes) and add it again",
            )
        )
    return failures


class FlyVolumeProvider(Provider):
    inputs_model = VolumeInputs
    replace_keys = ("app", "server", "region", "index", "encrypted")
    stable_outputs = ("volume_id", "name", "app", "region")
    kind = "Fly volume"
    detach_deadline_s: ClassVar[float] = 60.0
    poll_interval_s: ClassVar[float] = 1.0

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        result = check_inputs(VolumeInputs, news)
        if olds:
            result.failures = [*(result.failures or []), *shrink_or_reencrypt(strip_engine_keys(olds), result.inputs)]
        return result

    def create(self, props: dict[str, Any]) -> CreateResult:
        inp = VolumeInputs.model_validate(self.inputs_of(props))
        try:
            with self.client() as client:
                listed = client.list_volumes(inp.app)
                found = next((v for v in listed if v.name == inp.name and v.region == inp.region), None)
                if found is None:
                    volume = as_dict(
                        client.create_volume(
                            inp.app,
                            inp.name,
                            inp.region,
                            inp.size_gb,
                            encrypted=inp.encrypted,
                            snapshot_retention=inp.snapshot_retention,
                            known=[v.id for v in listed],
                        )
                    )
                else:
                    log.info("fly volume %s in %s already exists (%s): adopting it", inp.name, inp.app, found.id)
                    if found.encrypted is not None and found.encrypted != inp.encrypted:
                        raise FlyProviderError(
                            f"Fly volume {inp.name!r} ({found.id}) in app {inp.app!r} exists with "
                            f"encrypted={found.encrypted}, not {inp.encrypted}: set `encrypted` to match it"
                        )
                    volume = self._converge(client, inp, as_dict(found))
        except FlyProviderError:
            raise
        except Exception as exc:
            raise self.fail(f"create in app {inp.app!r}", inp.name, exc) from exc
        return CreateResult(volume["id"], self._outputs(inp, volume))

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """Grow the volume and set its snapshot retention, in place (the same volume, the same data)."""
        inp = VolumeInputs.model_validate(self.inputs_of(news))
        try:
            with self.client() as client:
                volume = self._converge(client, inp, as_dict(client.get_volume(inp.app, id_)))
        except Exception as exc:
            raise self.fail(f"update in app {inp.app!r}", inp.name, exc) from exc
        return UpdateResult(self._outputs(inp, volume))

    def _converge(self, client: Any, inp: VolumeInputs, volume: dict[str, Any]) -> dict[str, Any]:
        """Bring a live volume to the inputs: extend when smaller, set snapshot retention when it differs."""
        if (volume.get("size_gb") or 0) < inp.size_gb:
            extended = client.extend_volume(inp.app, volume["id"], inp.size_gb)
            volume = as_dict(extended.volume) or {**volume, "size_gb": inp.size_gb}
            if extended.needs_restart:
                log.warning(
                    "Fly volume %s (%s) grew to %d GB; its machine %s sees the new size after a restart",
                    inp.name,
                    volume["id"],
                    inp.size_gb,
                    volume.get("attached_machine_id") or "-",
                )
        if inp.snapshot_retention is not None and volume.get("snapshot_retention") != inp.snapshot_retention:
            volume = as_dict(client.update_volume(inp.app, volume["id"], snapshot_retention=inp.snapshot_retention))
        return volume

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """Refresh; import by `<app>/<volume_id>`."""
        from components.fly import FlyNotFound

        props = strip_engine_keys(props)
        app, volume_id = import_id("volume", id_, props)
        try:
            with self.client() as client:
                volume = as_dict(client.get_volume(app, volume_id))
        except FlyNotFound:
            return ReadResult(None, {})
        except Exception as exc:
            raise self.fail(f"read in app {app!r}", volume_id, exc) from exc
        if volume_gone(volume.get("state")):
            return ReadResult(None, {})
        region, _, index = str(volume.get("name") or "").removeprefix("data_").rpartition("_")
        inputs = {
            "app": app,
            "stack": props.get("stack") or "",
            "server": props.get("server") or "",
            "region": volume.get("region") or region,
            "index": int(index) if index.isdigit() else int(props.get("index") or 0),
            "size_gb": volume.get("size_gb") or 1,
            "encrypted": bool(volume.get("encrypted", True)),
        }
        if props.get("snapshot_retention") is not None:
            inputs["snapshot_retention"] = volume.get("snapshot_retention")
        outs = {**inputs, "volume_id": volume_id, "name": volume.get("name")}
        return ReadResult(volume_id, outs, inputs=inputs)

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        """Destroy the volume and its data, only when catwalk:deleteVolumes lists the server."""
        from components.fly import FlyConflict, FlyNotFound

        props = strip_engine_keys(props)
        app, server = props.get("app"), str(props.get("server") or "")
        name = props.get("name") or id_
        if not self.volume_delete_allowed(server):
            raise FlyProviderError(
                f"Fly volume {name!r} ({id_}) of server {server!r} in app {app!r}: not deleting it, it holds the "
                "server's data; " + DELETE_VOLUMES_HINT.format(server=server)
            )
        deadline = time.monotonic() + self.detach_deadline_s
        try:
            with self.client() as client:
                while True:
                    try:
                        client.delete_volume(str(app), id_)
                        return
                    except FlyConflict:  # its machine was just destroyed: Fly releases the volume shortly
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(self.poll_interval_s)
        except FlyNotFound:
            return
        except Exception as exc:
            raise self.fail(f"delete in app {app!r}", str(name), exc) from exc

    def _outputs(self, inp: VolumeInputs, volume: dict[str, Any]) -> dict[str, Any]:
        return {**inp.model_dump(mode="json"), "volume_id": volume.get("id"), "name": volume.get("name") or inp.name}


class FlyVolume(pulumi.dynamic.Resource, module="catwalk", name="FlyVolume"):
    """A Fly volume for one machine of a server; its id is the Fly volume id (`volume_id`, for the mount)."""

    volume_id: pulumi.Output[str]
    name: pulumi.Output[str]
    app: pulumi.Output[str]
    region: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        *,
        app: pulumi.Input[str],
        stack: str,
        server: str,
        region: str,
        index: int = 0,
        size_gb: int = 1,
        encrypted: bool = True,
        snapshot_retention: int | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props: dict[str, Any] = {
            "app": app,
            "stack": stack,
            "server": server,
            "region": region,
            "index": index,
            "size_gb": size_gb,
            "encrypted": encrypted,
            "snapshot_retention": snapshot_retention,
            "volume_id": None,
            "name": None,
        }
        super().__init__(FlyVolumeProvider(), resource_name, props, opts)
