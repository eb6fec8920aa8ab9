"""FlyMachine: one machine per (server, region, index).

One resource per machine, not one per group, because then the engine does the bookkeeping: a preview
lists exactly which machine is updated or replaced, a failure mid-rollout leaves every finished machine
recorded in the state (a group resource that fails half-way records nothing, and leaks what it made),
and count or region changes add or remove single resources. A region change replaces the machine:
the engine creates the new one (our create waits until it is started and its checks pass) before it
deletes the old one. Everything else (image, env, size, services, secrets version) updates the same
machine in place with `current_version`.

A server's machines roll: each depends on the one `rolling_batch` places before it (`McpServer` sets
`depends_on`), so the engine updates at most a batch at once and each waits, started with its checks passing,
before the next begins; a delete stops the machine gracefully before destroying it. Why: docs/rolling-updates.md.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any, ClassVar

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, UpdateResult

from components.fly.models import machine_gone
from components.providers.base import (
    DELETE_VOLUMES_HINT,
    FlyProviderError,
    Provider,
    as_dict,
    contains_unknown,
    diff_result,
    import_id,
    strip_engine_keys,
)
from components.providers.machine_config import (
    MachineInputs,
    config_drift,
    inputs_from_machine,
    owned_view,
    render_config,
)

log = logging.getLogger("catwalk.providers")

COMPUTED = ("machine_id", "name", "version", "instance_id", "state", "private_ip", "config")


def rolling_batch(total: int) -> int:
    """How many of a server's ``total`` machines change at once: one up to four machines, then a quarter
    (rounded up), so an update takes at most four waves and never stops more than about a quarter."""
    return max(1, -(-total // 4))


def rolling_predecessor(position: int, total: int) -> int | None:
    """The machine (by position in the server's list) that must finish before the one at ``position``."""
    before = position - rolling_batch(total)
    return before if before >= 0 else None


def _events_text(machine: dict[str, Any], limit: int = 6) -> str:
    """The machine's last events, oldest first: what Fly says happened when it did not start."""
    events = sorted(machine.get("events") or [], key=lambda e: e.get("timestamp") or 0)[-limit:]
    parts = []
    for e in events:
        exit_event = ((e.get("request") or {}).get("exit_event")) or {}
        code = f" exit_code={exit_event['exit_code']}" if "exit_code" in exit_event else ""
        parts.append(f"{e.get('type', '?')}/{e.get('status', '?')}{code}")
    return ", ".join(parts) or "no events"


class FlyMachineProvider(Provider):
    inputs_model = MachineInputs
    replace_keys = ("app", "server", "region", "index")
    stable_outputs = ("machine_id", "name", "app", "region")
    kind = "Fly machine"
    start_deadline_s: ClassVar[float] = 300.0
    health_deadline_s: ClassVar[float] = 120.0
    poll_interval_s: ClassVar[float] = 1.0
    lease_ttl_s: ClassVar[int] = 120
    stop_deadline_s: ClassVar[float] = 30.0  # a delete's graceful stop, before it destroys the machine anyway

    # -- diff ---------------------------------------------------------------------------------------

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        olds, news = strip_engine_keys(olds), strip_engine_keys(news)
        olds = {"cmd": [], **olds}  # state from before `cmd` existed: the image's own CMD, as now
        extra = []
        if not contains_unknown(news):
            desired = render_config(MachineInputs.model_validate(self.inputs_of(news)))
            if olds.get("config") != owned_view(desired, desired):
                extra.append("config")
        return diff_result(
            olds,
            news,
            keys=MachineInputs.model_fields,
            replace_keys=self.replace_keys,
            stable_outputs=self.stable_outputs,
            extra_changes=extra,
        )

    # -- create -------------------------------------------------------------------------------------

    def create(self, props: dict[str, Any]) -> CreateResult:
        inp = MachineInputs.model_validate(self.inputs_of(props))
        name = inp.machine_name
        with self.client() as client:
            try:
                created = as_dict(
                    client.create_machine(
                        inp.app, name, inp.region, render_config(inp), min_secrets_version=inp.secrets_version
                    )
                )
            except Exception as exc:
                raise self._create_failed(client, inp, exc) from exc
            machine_id = created["id"]
            if config_drift(created.get("config") or {}, inp):
                # The client adopted a machine an earlier, failed run made with other inputs: bring it up to date.
                return CreateResult(machine_id, self._outputs(inp, self._update_in_place(client, inp, machine_id)))
            try:
                if created.get("state") in ("stopped", "suspended"):  # adopted, and autostop had stopped it
                    client.start_machine(inp.app, machine_id)
                machine = self._wait_healthy(client, inp.app, machine_id, created.get("instance_id"))
            except Exception as exc:
                # A create must leave nothing behind when it fails: destroy the machine that did not start.
                events = self._events(client, inp.app, machine_id)
                try:
                    client.delete_machine(inp.app, machine_id, force=True)
                except Exception as cleanup:  # report both; the first cause matters more
                    events += f"; cleanup failed: {cleanup}"
                raise FlyProviderError(
                    f"Fly machine {name!r} ({machine_id}) in app {inp.app!r} did not start: {exc}; events: {events}"
                ) from exc
            return CreateResult(machine_id, self._outputs(inp, machine))

    def _create_failed(self, client: Any, inp: MachineInputs, exc: Exception) -> FlyProviderError:
        """A name held by a machine this stack did not make (in an adopted app) is named, with its way out."""
        from components.fly import FlyConflict

        if isinstance(exc, FlyConflict):
            try:
                other = client.find_machine(inp.app, inp.machine_name)
            except Exception:
                other = None
            if other is not None:
                return FlyProviderError(
                    f"Fly machine {inp.machine_name!r}: app {inp.app!r} already holds a machine of that name that "
                    f"this stack did not create ({other.id}); nothing was changed. Remove it "
                    f"(`fly machine destroy {other.id} --app {inp.app} --force`) and run again"
                )
        return self.fail(f"create in app {inp.app!r}", inp.machine_name, exc)

    # -- read ---------------------------------------------------------------------------------------

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """Refresh from Fly; `pulumi import` passes `<app>/<machine_id>` with no props."""
        props = strip_engine_keys(props)
        app, machine_id = import_id("machine", id_, props)
        from components.fly import FlyNotFound

        try:
            with self.client() as client:
                machine = as_dict(client.get_machine(app, machine_id))
        except FlyNotFound:
            return ReadResult(None, {})
        except Exception as exc:
            raise self.fail(f"read in app {app!r}", machine_id, exc) from exc
        if machine_gone(machine.get("state")):
            return ReadResult(None, {})
        live = inputs_from_machine(machine, app)
        if props.get("secrets_version") is not None:
            live["secrets_version"] = props["secrets_version"]  # Fly does not report it per machine
        try:
            # Project onto what our stored inputs render (refresh) or what the live inputs render (import).
            basis = MachineInputs.model_validate(self.inputs_of(props) or live)
        except ValueError:
            basis = None
        outs = {**live, **self._computed(machine, basis)}
        return ReadResult(machine_id, outs, inputs=live)

    # -- update -------------------------------------------------------------------------------------

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """In place: the same machine id, a new version (see `_update_in_place`).

        An update that unmounts a volume is refused, before any Fly call, unless catwalk:deleteVolumes lists
        the server: the volume's delete follows it, and the server would meanwhile run without its data.
        """
        inp = MachineInputs.model_validate(self.inputs_of(news))
        unmounted = sorted(
            {str(m.get("volume")) for m in strip_engine_keys(olds).get("mounts") or []} - {m.volume for m in inp.mounts}
        )
        if unmounted and not self.volume_delete_allowed(inp.server):
            raise FlyProviderError(
                f"Fly machine {inp.machine_name!r} ({id_}) in app {inp.app!r}: not unmounting volume "
                f"{', '.join(unmounted)}, which holds server {inp.server!r}'s data; "
                + DELETE_VOLUMES_HINT.format(server=inp.server)
            )
        with self.client() as client:
            return UpdateResult(self._outputs(inp, self._update_in_place(client, inp, id_)))

    def _update_in_place(self, client: Any, inp: MachineInputs, id_: str) -> dict[str, Any]:
        """Write our config under a lease and with `current_version`, then wait until it runs healthy.

        The lease keeps a concurrent `fly deploy` (or another catwalk run) out while we read the version
        and write the config; a machine leased by someone else fails with a clear error instead.
        """
        from components.fly import FlyApiError

        name = inp.machine_name
        nonce = None
        try:
            try:
                lease = client.acquire_lease(
                    inp.app, id_, ttl=self.lease_ttl_s, description=f"catwalk update {name} {uuid.uuid4().hex[:8]}"
                )
                nonce = lease.nonce
                live = as_dict(client.get_machine(inp.app, id_))
                machine = as_dict(
                    client.update_machine(
                        inp.app,
                        id_,
                        render_config(inp),
                        current_version=live.get("version") or live.get("instance_id"),
                        min_secrets_version=inp.secrets_version,
                        lease_nonce=nonce,
                    )
                )
            except FlyApiError as exc:
                raise self.fail(f"update in app {inp.app!r}", name, exc) from exc
            try:
                return self._wait_healthy(client, inp.app, id_, machine.get("instance_id"))
            except Exception as exc:
                events = self._events(client, inp.app, id_)
                raise FlyProviderError(
                    f"Fly machine {name!r} ({id_}) in app {inp.app!r} did not restart after the update: {exc}; "
                    f"events: {events}"
                ) from exc
        finally:
            if nonce:
                try:
                    client.release_lease(inp.app, id_, nonce)
                except Exception as exc:  # it expires after lease_ttl_s anyway
                    log.warning("Fly machine %s: releasing the update lease failed: %s", name, exc)

    # -- delete -------------------------------------------------------------------------------------

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        """Stop gracefully (the machine's stop signal: its gateway answers the requests in flight and Fly's
        proxy sends the next ones elsewhere), then force-destroy; a machine (or app) already gone counts as
        deleted. A stop that fails or does not finish in time is logged and the destroy goes ahead.

        Kept to `app` + id on purpose: the engine runs the delete of the provider version stored in
        the state (pulumi/pulumi#6238), so its contract must not change between versions.
        """
        from components.fly import FlyNotFound

        app = str(strip_engine_keys(props).get("app"))
        try:
            with self.client() as client:
                self._stop_gracefully(client, app, id_)
                client.delete_machine(app, id_, force=True)
        except FlyNotFound:
            return
        except Exception as exc:
            raise self.fail(f"delete in app {app!r}", id_, exc) from exc

    def _stop_gracefully(self, client: Any, app: str, machine_id: str) -> None:
        from components.fly import FlyApiError, FlyNotFound

        try:
            client.stop_machine(app, machine_id)
            client.wait_machine(app, machine_id, "stopped", deadline_s=self.stop_deadline_s)
        except FlyNotFound:
            raise
        except (FlyApiError, TimeoutError) as exc:
            log.warning("Fly machine %s in app %s: graceful stop failed (%s); destroying it", machine_id, app, exc)

    # -- helpers ------------------------------------------------------------------------------------

    def _wait_healthy(self, client: Any, app: str, machine_id: str, instance_id: str | None) -> dict[str, Any]:
        """Started (this version) and every check passing, within the deadlines."""
        client.wait_machine(app, machine_id, "started", instance_id=instance_id, deadline_s=self.start_deadline_s)
        deadline = time.monotonic() + self.health_deadline_s
        while True:
            machine = as_dict(client.get_machine(app, machine_id))
            checks = machine.get("checks") or []
            failing = [c.get("name", "?") for c in checks if c.get("status") != "passing"]
            if machine.get("state") == "started" and not failing:
                return machine
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"state {machine.get('state')!r}, checks not passing: {', '.join(failing) or '-'} "
                    f"after {self.health_deadline_s:.0f} s"
                )
            time.sleep(self.poll_interval_s)

    def _events(self, client: Any, app: str, machine_id: str) -> str:
        try:
            return _events_text(as_dict(client.get_machine(app, machine_id)))
        except Exception as exc:
            return f"(events unavailable: {exc})"

    def _computed(self, machine: dict[str, Any], basis: MachineInputs | None) -> dict[str, Any]:
        config = machine.get("config") or {}
        desired = render_config(basis) if basis is not None else config
        return {
            "machine_id": machine.get("id"),
            "name": machine.get("name"),
            "version": machine.get("version") or machine.get("instance_id"),
            "instance_id": machine.get("instance_id"),
            "state": machine.get("state"),
            "private_ip": machine.get("private_ip"),
            "config": owned_view(config, desired),
        }

    def _outputs(self, inp: MachineInputs, machine: dict[str, Any]) -> dict[str, Any]:
        return {**inp.model_dump(mode="json"), **self._computed(machine, inp)}


class FlyMachine(pulumi.dynamic.Resource, module="catwalk", name="FlyMachine"):
    """A Fly Machine running one replica of an MCP server. Its id is the Fly machine id."""

    machine_id: pulumi.Output[str]
    name: pulumi.Output[str]
    app: pulumi.Output[str]
    region: pulumi.Output[str]
    version: pulumi.Output[str]
    instance_id: pulumi.Output[str]
    state: pulumi.Output[str]
    private_ip: pulumi.Output[str]
    config: pulumi.Output[dict]

    def __init__(
        self,
        resource_name: str,
        *,
        app: pulumi.Input[str],
        stack: str,
        server: str,
        owner: pulumi.Input[str] = "",
        region: str,
        image: pulumi.Input[str],
        index: int = 0,
        env: pulumi.Input[dict[str, str]] | None = None,
        size: str = "shared-cpu-1x",
        memory: int = 512,
        autostop: str = "stop",
        autostart: bool = True,
        min_machines_running: int = 0,
        restart_policy: str = "on-failure",
        secrets_version: pulumi.Input[int] | None = None,
        mounts: pulumi.Input[list[dict[str, Any]]] | None = None,
        files: list[dict[str, Any]] | None = None,
        cmd: list[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props: dict[str, Any] = {
            "app": app,
            "stack": stack,
            "owner": owner,
            "server": server,
            "region": region,
            "index": index,
            "image": image,
            "env": env or {},
            "size": size,
            "memory": memory,
            "autostop": autostop,
            "autostart": autostart,
            "min_machines_running": min_machines_running,
            "restart_policy": restart_policy,
            "secrets_version": secrets_version,
            "mounts": mounts or [],
            "files": files or [],
        }
        if cmd:  # absent otherwise, so machines of MCP servers keep the inputs (and the diff) they had
            props["cmd"] = cmd
        props.update({k: None for k in COMPUTED if k != "name"})
        super().__init__(FlyMachineProvider(), resource_name, props, opts)
