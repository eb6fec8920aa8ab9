"""Typed shapes of the Fly Machines API parts catwalk uses (see tests/fixtures/fly/machines-openapi.json).

Every model allows extra fields: Fly fills in defaults and adds fields over time, and a value we do not
model must survive a read-modify-write (``get_machine`` → change → ``update_machine``) untouched. Only
fields catwalk reads or writes are declared; all are optional because Fly omits empty ones.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class FlyModel(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    def to_api(self) -> dict[str, Any]:
        """The JSON body Fly expects: unset fields left out rather than sent as null."""
        return self.model_dump(mode="json", exclude_none=True, by_alias=True)


# -- apps ------------------------------------------------------------------------------------------


class Organization(FlyModel):
    slug: str | None = None
    name: str | None = None
    internal_numeric_id: int | None = None


class App(FlyModel):
    name: str
    id: str | None = None
    organization: Organization | None = None
    status: str | None = None
    network: str | None = None
    machine_count: int | None = None


# -- machines --------------------------------------------------------------------------------------


class MachineGuest(FlyModel):
    cpu_kind: str | None = None
    cpus: int | None = None
    memory_mb: int | None = None


class MachineRestart(FlyModel):
    policy: str | None = None  # "no" | "always" | "on-failure"
    max_retries: int | None = None


class MachineInit(FlyModel):
    exec: list[str] | None = None
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None


class StopConfig(FlyModel):
    signal: str | None = None
    timeout: str | None = None


class MachinePort(FlyModel):
    port: int | None = None
    handlers: list[str] | None = None
    force_https: bool | None = None


class MachineService(FlyModel):
    protocol: str | None = None
    internal_port: int | None = None
    ports: list[MachinePort] | None = None
    autostart: bool | None = None
    autostop: str | bool | None = None  # Fly answers booleans for "off"/"stop" (spec: backward compatibility)
    min_machines_running: int | None = None


class MachineMount(FlyModel):
    """A volume mounted into the machine: ``volume`` is the volume id, ``path`` the guest directory."""

    volume: str | None = None
    path: str | None = None
    name: str | None = None
    size_gb: int | None = None
    encrypted: bool | None = None


class MachineFile(FlyModel):
    """A file Fly writes before the machine starts: ``raw_value`` (base64) or the app secret ``secret_name``."""

    guest_path: str | None = None
    raw_value: str | None = Field(default=None, repr=False)
    secret_name: str | None = None
    mode: int | None = None


class MachineConfig(FlyModel):
    image: str | None = None
    env: dict[str, str] | None = None
    metadata: dict[str, str] | None = None
    guest: MachineGuest | None = None
    restart: MachineRestart | None = None
    init: MachineInit | None = None
    services: list[MachineService] | None = None
    checks: dict[str, Any] | None = None
    stop_config: StopConfig | None = None
    auto_destroy: bool | None = None
    mounts: list[MachineMount] | None = None
    files: list[MachineFile] | None = None


class MachineEvent(FlyModel):
    id: str | None = None
    type: str | None = None
    status: str | None = None
    source: str | None = None
    timestamp: int | None = None  # unix milliseconds
    request: dict[str, Any] | None = None

    def describe(self) -> str:
        """``type/status`` plus an exit code when the event carries one, e.g. ``exit/stopped exit_code=1``."""
        exit_event: dict[str, Any] = (self.request or {}).get("exit_event") or {}
        code = f" exit_code={exit_event['exit_code']}" if "exit_code" in exit_event else ""
        return f"{self.type or '?'}/{self.status or '?'}{code}"


# A machine in one of these states is gone or going: it serves nothing and Fly will not start it again.
MACHINE_GONE_STATES = frozenset({"destroying", "destroyed"})


def machine_gone(state: str | None) -> bool:
    """Whether a machine in ``state`` is destroyed or being destroyed (listings still show such machines)."""
    return state in MACHINE_GONE_STATES


# A volume in one of these states is destroyed or on its way there (Fly lists such volumes too).
VOLUME_GONE_STATES = frozenset({"destroyed", "destroying", "scheduling_destroy", "pending_destroy"})


def volume_gone(state: str | None) -> bool:
    """Whether a volume in ``state`` is destroyed or being destroyed."""
    return state in VOLUME_GONE_STATES


class Machine(FlyModel):
    id: str
    name: str | None = None
    state: str | None = None
    region: str | None = None
    instance_id: str | None = None
    version: str | None = None
    private_ip: str | None = None
    config: MachineConfig | None = None
    image_ref: dict[str, Any] | None = None
    created_at: str | None = None
    updated_at: str | None = None
    events: list[MachineEvent] = Field(default_factory=list[MachineEvent])
    checks: list[dict[str, Any]] | None = None
    nonce: str | None = None

    @property
    def gone(self) -> bool:
        """Destroyed or being destroyed."""
        return machine_gone(self.state)

    @property
    def current_version(self) -> str | None:
        """The value to pass as ``current_version`` on update (``instance_id`` is its deprecated twin)."""
        return self.version or self.instance_id

    def recent_events(self, limit: int = 6) -> list[MachineEvent]:
        """The last ``limit`` events, oldest first (Fly lists newest first; equal timestamps keep that order)."""
        ordered = sorted(enumerate(self.events), key=lambda ie: (ie[1].timestamp or 0, -ie[0]))
        return [e for _, e in ordered][-limit:]


class WaitResult(FlyModel):
    ok: bool | None = None
    state: str | None = None
    version: str | None = None
    event_id: str | None = None


class Lease(FlyModel):
    nonce: str | None = None
    expires_at: int | None = None
    owner: str | None = None
    description: str | None = None
    version: str | None = None


# -- volumes -------------------------------------------------------------------------------------


class Volume(FlyModel):
    id: str
    name: str | None = None
    app_name: str | None = None  # only in the organization-wide list
    region: str | None = None
    state: str | None = None
    size_gb: int | None = None
    encrypted: bool | None = None
    snapshot_retention: int | None = None
    auto_backup_enabled: bool | None = None
    attached_machine_id: str | None = None
    attached_alloc_id: str | None = None
    zone: str | None = None
    created_at: str | None = None

    @property
    def live(self) -> bool:
        """Not destroyed nor on its way there."""
        return not volume_gone(self.state)


class ExtendedVolume(FlyModel):
    """The answer to an extend: the volume at its new size, and whether its machine must restart to see it."""

    volume: Volume | None = None
    needs_restart: bool | None = None


class VolumeSnapshot(FlyModel):
    id: str | None = None
    created_at: str | None = None
    digest: str | None = None
    retention_days: int | None = None
    size: int | None = None
    status: str | None = None
    volume_size: int | None = None


# -- secrets and IPs -------------------------------------------------------------------------------


class Secret(FlyModel):
    """An app secret as listed: name and digest; ``value`` only when asked for with ``show_secrets``."""

    name: str
    digest: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    value: str | None = Field(default=None, repr=False)


class IPAssignment(FlyModel):
    ip: str | None = None
    region: str | None = None
    service_name: str | None = None
    shared: bool | None = None
    egress: bool | None = None
    created_at: str | None = None
    network: dict[str, Any] | None = None
    ip_pair: dict[str, Any] | None = None  # only for "egress_pair" allocations, where ip is null
