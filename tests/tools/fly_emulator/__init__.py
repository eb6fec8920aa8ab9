"""A local emulator of the Fly Machines API, for tests and for running catwalk without Fly.

Run it::

    python -m tests.tools.fly_emulator --port 4280 [--fault-rate 0.3 --seed 7] [--run-machines [--entrypoint PATH]
        [--proxy-port 4281 [--proxy-region iad] [--autostop-after 5]]]
    FLY_API_URL=http://127.0.0.1:4280 FLY_API_TOKEN=anything  # then point the client (or catwalk) at it

or in a test::

    from tests.tools.fly_emulator.fixture import running_emulator
    with running_emulator(fault_rate=0.3, seed=1) as emu:   # thread on a free loopback port
        client = FlyClient(emu.base_url, emu.token, mutation_rate=0, backoff=0.001)
        emu.calls(), emu.mutating_calls(), emu.machines(), emu.reset(), emu.set_faults(rate=0)

It implements the ``/v1`` paths catwalk uses, with the bodies and status codes of tests/fixtures/fly/machines-
openapi.json: apps (list, create → 201 / 422 ``name_taken``, honouring ``idempotency_key``; get; delete →
202), machines (list with ``metadata.KEY=VALUE``, ``region``, ``state``, ``include_deleted``; create with
unique names → 409 ``name_taken`` on a live duplicate; get; update with ``current_version`` → 409 when stale,
new ``version``/``instance_id`` each time; start; stop; delete, 412 for a running machine without ``force``;
wait → 200, or 408 at its ≤60 s timeout; events), leases (``fly-machine-lease-nonce``; mutations of a leased
machine without its nonce → 409), app secrets (a version per update, null unsets, ``min_secrets_version``
checked on create/update → 400 when ahead), IP assignments and volumes (list, create — also from a
``snapshot_id`` —, get, update snapshot settings, extend: only larger, destroy: 409 while a live machine
mounts it; snapshots: list, create; the organization-wide list, filtered and paged). A machine's ``mounts``
take at most one volume of its app, in its region, not held by another live machine; its ``files`` need an
absolute ``guest_path`` and base64 contents in ``raw_value`` or in the app secret ``secret_name``. Every
``/v1`` request needs ``Authorization: Bearer <token>`` (or ``FlyV1 <token>``), any non-empty token unless
``--token`` fixes one; else 401. Machines move created → starting → started → stopping → stopped → destroying
→ destroyed, each step after ``--transition-s`` seconds; a machine whose process fails to launch is
``failed``. As Fly does, answers fill in config defaults (``guest``, ``restart``, ``init``) and spell a
service's ``autostop`` "off"/"stop" as false/true; events come newest first. A machine's ``checks`` are empty,
unless ``--checks`` (with ``--run-machines``): then each check of its config (http: GET its path, 2xx passes;
tcp: connect) runs against its process when the machine is read, and fails while it is not started.

Fault injection (``--fault-rate R --seed S``, ``--retry-after N``): see ``server.Faults``; 429 with
Retry-After, 500/502/503 before acting, and ``lost``/``drop`` (mutations only): the request is carried out
and then the answer is a 504, or no answer at all. ``slow`` (only with ``--faults ...,slow``; mutations)
carries it out and answers after ``--slow-s`` seconds, past a client's read timeout.

Test-only endpoints (no auth, never faulted, not in the call log):

- ``GET /_emulator/calls`` → ``{"calls": [{"method", "path", "query", "status", "fault", "time"}]}``,
  every ``/v1`` request in order (``status`` null for a dropped connection); ``DELETE`` clears it.
- ``POST /_emulator/reset`` → forget all apps, machines and calls (and stop machine processes).
- ``GET /_emulator/machines`` → ``{"machines": [{"app", "id", "name", "state", "version", "region",
  "process"}]}``; with ``--run-machines``, ``process`` is ``{"pid", "host", "port", "url", "log", "argv",
  "running", "exit_code"?}``: where that machine's process listens (``PORT``) and logs. Else null.
- ``GET /_emulator/proxy`` → ``{"requests": [{"app", "machine", "status", "replayed_from", "fallback"}],
  "actions": [{"app", "machine", "action", "time"}]}``: every request Fly's proxy (``--proxy-port``) answered
  (which machine answered it, the machine it was replayed from, whether a failed replay came back to its
  source), and the machines it started (``autostart``) or stopped (``autostop``, ``--autostop-after S``).
- ``GET /_emulator/proxy/apps/NAME`` → ``{"app", "url"}``: a loopback URL of the proxy's own for that app (any
  ``Host``), as the harness's ``local_url`` uses; 404 unless the proxy serves.
- ``GET``/``POST /_emulator/faults`` → read or set ``{"rate", "seed", "kinds", "retry_after", "slow_s"}``.
- ``POST /_emulator/apps/NAME/reserve`` → NAME becomes taken by an organization the token cannot see.

``--run-machines`` is described in ``tests.tools.fly_emulator.processes``; ``--proxy-port`` (Fly's proxy in front
of those machines: ``Host: <app>.fly.dev``, per-request balancing, ``fly-replay`` with its timeout and fallback,
``fly-force-instance-id``, autostart and autostop, the nearest region) in ``tests.tools.fly_emulator.proxy``.
"""
