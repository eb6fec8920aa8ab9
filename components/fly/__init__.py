"""Fly Machines API client: the only code in catwalk that talks HTTP to Fly.

Public interface (paths, bodies and status codes follow tests/fixtures/fly/machines-openapi.json)::

    from components.fly import FlyClient, FlyApiError, FlyNotFound, FlyConflict

    client = FlyClient(base_url=None, token=None, *, timeout=(5, 30), max_attempts=8, backoff=0.5,
                       mutation_rate=None, mutation_burst=3, session=None)
        # base_url: FLY_API_URL, else https://api.machines.dev; token: FLY_API_TOKEN, read at call time.
        # mutation_rate: token bucket for writes, requests/s (None → env CATWALK_FLY_RATE → 1.0; 0 = off).

    client.create_app(name, org_slug, network=None) -> App        # idempotency_key; adopts our own app on 422
    client.get_app(name) -> App ; client.list_apps(org_slug) -> list[App]
    client.delete_app(name)                                        # already gone → no error
    client.list_machines(app, metadata=None, include_deleted=False, *, region=None, state=None) -> list[Machine]
    client.find_machine(app, name, metadata=None) -> Machine | None
    client.create_machine(app, name, region, config, *, min_secrets_version=None, lease_ttl=None,
                          skip_launch=False) -> Machine            # never duplicates: looks up by name on doubt
    client.get_machine(app, id) -> Machine
    client.update_machine(app, id, config, *, current_version, min_secrets_version=None,
                          skip_launch=False, lease_nonce=None) -> Machine   # stale version → FlyConflict
    client.start_machine(app, id) ; client.stop_machine(app, id, *, signal=None, timeout=None)
    client.delete_machine(app, id, force=False)                    # already gone → no error
    client.wait_machine(app, id, state="started", *, instance_id=None, deadline_s=120) -> WaitResult
                                                                   # FlyWaitTimeout names state + recent events
    client.get_lease(app, id) -> Lease | None
    client.acquire_lease(app, id, ttl=30, *, description=None, nonce=None) -> Lease
    client.release_lease(app, id, nonce)
    client.list_secrets(app) -> list[Secret]
    client.set_secrets(app, {name: value}) -> int                  # secrets version, for min_secrets_version
    client.unset_secrets(app, [name, ...]) -> int
    client.list_volumes(app) -> list[Volume] ; client.get_volume(app, id) -> Volume   # live volumes only
    client.find_volume(app, name, region) -> Volume | None
    client.create_volume(app, name, region, size_gb, *, encrypted=True, snapshot_retention=None,
                         require_unique_zone=None, known=None) -> Volume   # never duplicates: looks up on doubt
    client.update_volume(app, id, *, snapshot_retention=None, auto_backup_enabled=None) -> Volume
    client.extend_volume(app, id, size_gb) -> ExtendedVolume        # .volume, .needs_restart
    client.delete_volume(app, id)                                  # already gone → no error
    client.list_snapshots(app, id) -> list[VolumeSnapshot] ; client.create_snapshot(app, id)
    client.list_ips(app) -> list[IPAssignment]
    client.allocate_ip(app, type="shared_v4", *, region=None, network=None, service_name=None) -> IPAssignment
    client.release_ip(app, ip)                                     # already gone → no error

Errors: every failure is a ``FlyApiError`` (``.method``, ``.path``, ``.status`` — None when no answer
came —, ``.message`` from Fly, ``.request_id`` from ``fly-request-id``, ``.code`` such as
``name_taken``), subclassed by status: ``FlyUnauthorized`` (401/403 or no token), ``FlyNotFound`` (404),
``FlyConflict`` (409, 422 name_taken), ``FlyRateLimited`` (429 after retries), ``FlyWaitTimeout``.
The token never appears in ``repr``, logs, pickles or exception text.

Retries and rate limits are described in ``components.fly.client``; models in ``components.fly.models``.
"""

from components.fly.client import FlyClient, TokenBucket
from components.fly.errors import (
    FlyApiError,
    FlyConflict,
    FlyNotFound,
    FlyRateLimited,
    FlyUnauthorized,
    FlyWaitTimeout,
)
from components.fly.models import (
    App,
    ExtendedVolume,
    IPAssignment,
    Lease,
    Machine,
    MachineConfig,
    MachineEvent,
    MachineFile,
    MachineGuest,
    MachineInit,
    MachineMount,
    MachineRestart,
    MachineService,
    Organization,
    Secret,
    Volume,
    VolumeSnapshot,
    WaitResult,
)

__all__ = [
    "App",
    "ExtendedVolume",
    "FlyApiError",
    "FlyClient",
    "FlyConflict",
    "FlyNotFound",
    "FlyRateLimited",
    "FlyUnauthorized",
    "FlyWaitTimeout",
    "IPAssignment",
    "Lease",
    "Machine",
    "MachineConfig",
    "MachineEvent",
    "MachineFile",
    "MachineGuest",
    "MachineInit",
    "MachineMount",
    "MachineRestart",
    "MachineService",
    "Organization",
    "Secret",
    "TokenBucket",
    "Volume",
    "VolumeSnapshot",
    "WaitResult",
]
