"""Fly Machines API client: the only code in catwalk that talks HTTP to Fly.

    from components.fly import FlyClient, FlyApiError, FlyNotFound, FlyConflict

    with FlyClient() as client:          # base URL: FLY_API_URL, else https://api.machines.dev
        client.create_app("catwalk-dev-memory", "personal")
        machine = client.create_machine("catwalk-dev-memory", "memory-iad-0", "iad", config)
        client.wait_machine("catwalk-dev-memory", machine.id, "started")

The interface is ``FlyClient``'s public methods, one per API call (apps, machines, leases, secrets, IPs,
volumes), each documented where it is defined: ``help(FlyClient)`` lists them with their signatures.
Paths, bodies and status codes follow tests/fixtures/fly/machines-openapi.json. The token is
``FLY_API_TOKEN``, read at call time, unless one is passed.

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
