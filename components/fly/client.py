"""The one Fly Machines API client: base URL, auth, timeouts, retries, rate limit and errors live here.

A request is repeated only when that cannot do harm: reads, deletes and 429s are retried; a write that may
have taken effect is retried only where it was made safe (an idempotency key, absolute values, or a
look-up for its own effect first). Why, and why not urllib3's ``Retry``: docs/fly-client-retries.md.
Writes pass a token bucket (``mutation_rate`` or ``CATWALK_FLY_RATE``, requests/s; ``0``/``off``: none).

The token is read from ``FLY_API_TOKEN`` at call time unless passed in. It is sent only in the
``Authorization`` header, never logged, left out of ``repr`` and pickles, and redacted from any text
Fly sends back before that text reaches an exception.
"""

from __future__ import annotations

import json as jsonlib
import logging
import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast
from urllib.parse import quote

import requests
from urllib3.exceptions import NewConnectionError
from urllib3.util.retry import Retry

from components.fly.errors import FlyApiError, FlyConflict, FlyNotFound, FlyUnauthorized, FlyWaitTimeout, error_class
from components.fly.models import (
    App,
    ExtendedVolume,
    IPAssignment,
    Lease,
    Machine,
    MachineConfig,
    Secret,
    Volume,
    VolumeSnapshot,
    WaitResult,
    machine_gone,
)
from components.safety import check_api_url

log = logging.getLogger("catwalk.fly")

DEFAULT_API_URL = "https://api.machines.dev"
USER_AGENT = "catwalk/0.1 (+fly-machines-client)"
RETRY_STATUSES = frozenset({500, 502, 503, 504})
WAIT_MAX_S = 60  # the API's own bound on one wait request
LEASE_HEADER = "fly-machine-lease-nonce"

Recover = Callable[[], Any]


class _Secret:
    """Holds the token so that ``repr``, ``vars()`` dumps and debuggers show ``[redacted]`` instead."""

    __slots__ = ("_value",)

    def __init__(self, value: str | None) -> None:
        self._value = value

    def get(self) -> str | None:
        return self._value

    def __repr__(self) -> str:
        return "[redacted]" if self._value else "None"

    def __reduce__(self):  # a pickled client never carries the token
        return (_Secret, (None,))


class TokenBucket:
    """Thread-safe token bucket: ``rate`` tokens per second, at most ``burst`` saved up."""

    def __init__(self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self._clock = rate, burst, clock
        self._tokens = float(burst)
        self._stamp = clock()
        self._lock = threading.Lock()

    def delay(self) -> float:
        """Take one token; return how long the caller must sleep before using it."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= 1
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate


def _rate_from_env() -> float:
    raw = os.environ.get("CATWALK_FLY_RATE", "").strip().lower()
    if not raw:
        return 1.0
    if raw in ("0", "off", "none", "inf", "unlimited"):
        return 0.0
    try:
        return max(0.0, float(raw))
    except ValueError as exc:
        raise ValueError(f"CATWALK_FLY_RATE={raw!r}: expected requests per second, or 'off'") from exc


def _never_sent(exc: requests.RequestException) -> bool:
    """True when the request cannot have reached Fly (no connection was made), so repeating it is safe."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(exc, requests.exceptions.ConnectionError) and isinstance(reason, NewConnectionError)


def _fields(**values: Any) -> dict[str, Any]:
    """A request body of the fields that are set: None and False are left out, as Fly's own clients do."""
    return {k: v for k, v in values.items() if v is not None and v is not False}


def _seg(value: str) -> str:
    """One URL path segment: app names, ids and IPs are quoted so they cannot add path parts."""
    return quote(str(value), safe="")


EXACT_KEYS = frozenset({"env", "metadata"})  # maps where a key we left out is a difference, not a default


def _items(data: Mapping[str, Any], key: str) -> list[Any]:
    """The array under ``key`` of a JSON object from Fly (empty when absent or null)."""
    items: list[Any] = data.get(key) or []
    return items


def _is_subset(want: Any, have: Any) -> bool:
    """``have`` carries everything we sent; Fly may add defaults around it, except in ``EXACT_KEYS`` maps."""
    if isinstance(want, Mapping):
        if not isinstance(have, Mapping):
            return False
        wanted, had = cast(Mapping[str, Any], want), cast(Mapping[str, Any], have)
        return all(
            dict(v or {}) == dict(had.get(k) or {}) if k in EXACT_KEYS else _is_subset(v, had.get(k))
            for k, v in wanted.items()
        )
    if isinstance(want, list):
        wanted_items, had_items = cast(list[Any], want), cast(list[Any], have)
        return (
            isinstance(have, list)
            and len(wanted_items) == len(had_items)
            and all(map(_is_subset, wanted_items, had_items))
        )
    if isinstance(want, str) and isinstance(have, bool) and want in ("off", "stop"):
        return have == (want == "stop")  # Fly answers service autostop "off"/"stop" as false/true
    return want == have


class FlyClient:
    """Typed client for the Fly Machines REST API (``/v1``). See the package docstring for the calls."""

    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        *,
        timeout: tuple[float, float] | float = (5.0, 30.0),
        max_attempts: int = 8,
        backoff: float = 0.5,
        backoff_max: float = 10.0,
        max_retry_after: float = 60.0,
        mutation_rate: float | None = None,
        mutation_burst: int = 3,
        session: requests.Session | None = None,
    ) -> None:
        self._base_url = base_url.rstrip("/") if base_url else None
        self.__token = _Secret(token or None)
        self.timeout = timeout
        self.max_attempts = max(1, max_attempts)
        self.backoff, self.backoff_max, self.max_retry_after = backoff, backoff_max, max_retry_after
        self.mutation_rate = _rate_from_env() if mutation_rate is None else mutation_rate
        self.mutation_burst = mutation_burst
        self._own_session = session is None
        self._session: requests.Session = session if session is not None else requests.Session()
        self._setup()

    def _setup(self) -> None:
        self._bucket = TokenBucket(self.mutation_rate, self.mutation_burst) if self.mutation_rate > 0 else None
        self._sleep: Callable[[float], None] = time.sleep

    # The token and the live session stay out of pickles (Pulumi stores pickled providers in its state).
    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_session", "_bucket", "_sleep")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._session = requests.Session()
        self._own_session = True
        self._setup()

    def __repr__(self) -> str:
        return f"FlyClient(base_url={self.base_url!r})"

    def close(self) -> None:
        if self._own_session:
            self._session.close()

    def __enter__(self) -> FlyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def base_url(self) -> str:
        return self._base_url or os.environ.get("FLY_API_URL", "").rstrip("/") or DEFAULT_API_URL

    def _checked_base_url(self, method: str, path: str) -> str:
        """The base URL, refused before any request unless https (or http to loopback): it gets the token."""
        url = self.base_url
        try:
            check_api_url(url)
        except ValueError as exc:
            raise FlyApiError(f"Fly API URL {exc}", method=method, path=path) from None
        return url

    def _token(self) -> str | None:
        return self.__token.get() or os.environ.get("FLY_API_TOKEN") or None

    def _redact(self, text: str, secrets: Iterable[str] = ()) -> str:
        """The text without the token or any secret value the request carried (longest first)."""
        for value in sorted({self._token() or "", *secrets}, key=len, reverse=True):
            if value:
                text = text.replace(value, "[redacted]")
        return text

    # -- the one send path ---------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: tuple[float, float] | float | None = None,
        idempotent: bool | None = None,
        recover: Recover | None = None,
        secrets: Iterable[str] = (),
    ) -> Any:
        """Send one API call with retries; return its decoded JSON body (None when empty).

        ``idempotent`` (default: GET/HEAD/PUT/DELETE) lets any failure be retried. Otherwise an uncertain
        failure (5xx, timeout or dropped connection after sending) calls ``recover``: a non-None result
        means the call did take effect and is returned as is; None means it did not, and the call repeats.
        Without ``recover`` an uncertain failure is raised. ``secrets``: values in the body that no error
        may repeat, as Fly's answer might (they are redacted like the token).
        """
        secrets = [v for v in secrets if v]
        token = self._token()
        if not token:
            raise FlyUnauthorized("no Fly API token: set FLY_API_TOKEN", method=method, path=path)
        if idempotent is None:
            idempotent = method in ("GET", "HEAD", "PUT", "DELETE")
        mutation = method not in ("GET", "HEAD")
        auth = token if token.startswith("FlyV1 ") else f"Bearer {token}"
        hdrs = {"User-Agent": USER_AGENT, "Authorization": auth, **(headers or {})}
        data = None if body is None else jsonlib.dumps(body)
        if data is not None:
            hdrs["Content-Type"] = "application/json"
        url = self._checked_base_url(method, path) + path
        attempt = 0
        while True:
            attempt += 1
            if mutation and self._bucket is not None:
                wait = self._bucket.delay()
                if wait > 0:
                    self._sleep(wait)
            try:
                resp = self._session.request(
                    method, url, params=params, data=data, headers=hdrs, timeout=timeout or self.timeout
                )
            except requests.RequestException as exc:
                err = FlyApiError(self._redact(f"{type(exc).__name__}: {exc}", secrets), method=method, path=path)
                err.__cause__ = exc
                uncertain = not _never_sent(exc)  # it may have reached Fly and been carried out
                delay = self._backoff(attempt)
            else:
                log.debug(
                    "fly %s %s -> %s (fly-request-id %s, attempt %d)",
                    method,
                    path,
                    resp.status_code,
                    resp.headers.get("fly-request-id"),
                    attempt,
                )
                if resp.status_code < 400:
                    return self._decode(resp)
                err = self._error(resp, method, path, secrets)
                if resp.status_code != 429 and resp.status_code not in RETRY_STATUSES:
                    raise err
                uncertain = resp.status_code != 429  # a 429 was not executed; a 5xx may have been
                delay = self._retry_after(resp) or self._backoff(attempt)
            if uncertain and not idempotent:
                if recover is None:
                    raise err
                found = recover()
                if found is not None:
                    log.info("fly %s %s: %s, but the call had taken effect", method, path, err.message)
                    return found
            if attempt >= self.max_attempts:
                raise err
            log.info("fly %s %s: %s; retry %d in %.2fs", method, path, err.message, attempt, delay)
            self._sleep(delay)

    def _backoff(self, attempt: int) -> float:
        return min(self.backoff_max, self.backoff * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)

    def _retry_after(self, resp: requests.Response) -> float:
        value = resp.headers.get("Retry-After")
        if not value:
            return 0.0
        try:
            seconds = Retry().parse_retry_after(value)
        except Exception:  # a malformed header falls back to our own backoff
            return 0.0
        return min(max(0.0, float(seconds)), self.max_retry_after)

    @staticmethod
    def _decode(resp: requests.Response) -> Any:
        if not resp.content:
            return None
        try:
            return resp.json()
        except ValueError:
            return None

    def _error(self, resp: requests.Response, method: str, path: str, secrets: Iterable[str] = ()) -> FlyApiError:
        message, code = "", None
        try:
            data = resp.json()
        except ValueError:
            data = None
        if isinstance(data, Mapping):
            fields = cast(Mapping[str, Any], data)
            message = str(fields.get("error") or fields.get("message") or "")
            status = fields.get("status")
            code = status if isinstance(status, str) else None
        if not message:
            message = resp.text.strip()[:500] or resp.reason or "error"
        cls = error_class(resp.status_code, code)
        return cls(
            self._redact(message, secrets),
            method=method,
            path=path,
            status=resp.status_code,
            request_id=resp.headers.get("fly-request-id"),
            code=code,
            body=self._redact(resp.text[:2000], secrets),
        )

    # -- apps ----------------------------------------------------------------------------------------

    def create_app(self, name: str, org_slug: str, network: str | None = None, *, adopt: bool = True) -> App:
        """Create the app, or adopt it when it already exists and this token can read it.

        The request carries a fresh ``idempotency_key``, so a retry after a lost response returns the app
        the first attempt made instead of failing on its own name. A 422 ``name_taken`` for an app we can
        read in the same organization (made by an earlier run) adopts it, unless ``adopt`` is false: then
        the conflict is raised, for a caller that decides itself whose the app is.
        """
        body = _fields(name=name, org_slug=org_slug, network=network or None, idempotency_key=uuid.uuid4().hex)
        try:
            self._request("POST", "/v1/apps", body=body, idempotent=True)
        except FlyConflict as exc:
            if not adopt:
                raise
            try:
                app = self.get_app(name)
            except FlyNotFound:
                raise exc.restated(
                    f"app name {name!r} is taken by an app this token cannot see: {exc.message}"
                ) from exc
            slug = app.organization.slug if app.organization else None
            if slug and slug != org_slug:
                raise exc.restated(f"app {name!r} already exists in organization {slug!r}, not {org_slug!r}") from exc
            log.info("fly app %s already exists in %s: adopting it", name, org_slug)
            return app
        return self.get_app(name)

    def get_app(self, name: str) -> App:
        return App.model_validate(self._request("GET", f"/v1/apps/{_seg(name)}"))

    def list_apps(self, org_slug: str) -> list[App]:
        data: dict[str, Any] = self._request("GET", "/v1/apps", params={"org_slug": org_slug}) or {}
        return [App.model_validate(a) for a in _items(data, "apps")]

    def delete_app(self, name: str) -> None:
        """Destroy the app and everything in it; an app that is already gone is not an error."""
        try:
            self._request("DELETE", f"/v1/apps/{_seg(name)}")
        except FlyNotFound:
            log.info("fly app %s was already gone", name)

    # -- machines ------------------------------------------------------------------------------------

    def _machines(
        self,
        app: str,
        metadata: Mapping[str, str] | None,
        include_deleted: bool,
        region: str | None = None,
        state: str | None = None,
    ) -> list[dict[str, Any]]:
        params: dict[str, str] = {f"metadata.{k}": v for k, v in (metadata or {}).items()}
        if include_deleted:
            params["include_deleted"] = "true"
        if region:
            params["region"] = region
        if state:
            params["state"] = state
        return self._request("GET", f"/v1/apps/{_seg(app)}/machines", params=params) or []

    def list_machines(
        self,
        app: str,
        metadata: Mapping[str, str] | None = None,
        include_deleted: bool = False,
        *,
        region: str | None = None,
        state: str | None = None,
    ) -> list[Machine]:
        """Machines of the app; ``metadata`` keeps those whose config metadata has every given key=value."""
        return [Machine.model_validate(m) for m in self._machines(app, metadata, include_deleted, region, state)]

    def find_machine(self, app: str, name: str, metadata: Mapping[str, str] | None = None) -> Machine | None:
        """The live (not destroyed) machine called ``name``, if any."""
        found = self._find_machine(app, name, metadata)
        return Machine.model_validate(found) if found is not None else None

    def _find_machine(self, app: str, name: str, metadata: Mapping[str, str] | None) -> dict[str, Any] | None:
        for m in self._machines(app, metadata, False):
            if m.get("name") == name and not machine_gone(m.get("state")):
                return m
        return None

    def create_machine(
        self,
        app: str,
        name: str,
        region: str,
        config: MachineConfig | Mapping[str, Any],
        *,
        min_secrets_version: int | None = None,
        lease_ttl: int | None = None,
        skip_launch: bool = False,
    ) -> Machine:
        """Create one machine, exactly once, even when responses are lost.

        ``name`` must be unique in the app and deterministic for the caller (e.g. server-region-index):
        after a 5xx, a timeout or a dropped connection the client looks the machine up by name (and by
        the config's metadata, e.g. ``catwalk_server``) and returns it rather than creating a second one.
        A "name taken" conflict for a machine carrying the same metadata adopts that machine too.
        """
        cfg = config if isinstance(config, MachineConfig) else MachineConfig.model_validate(dict(config))
        body = _fields(
            name=name,
            region=region,
            config=cfg.to_api(),
            min_secrets_version=min_secrets_version,
            lease_ttl=lease_ttl,
            skip_launch=skip_launch,
        )
        metadata = cfg.metadata or None
        path = f"/v1/apps/{_seg(app)}/machines"
        try:
            data = self._request("POST", path, body=body, recover=lambda: self._find_machine(app, name, metadata))
        except FlyConflict:
            found = self._find_machine(app, name, metadata)
            if found is None:
                raise
            log.info("fly machine %s in %s already exists (%s): adopting it", name, app, found.get("id"))
            data = found
        return Machine.model_validate(data)

    def get_machine(self, app: str, machine_id: str) -> Machine:
        return Machine.model_validate(self._request("GET", f"/v1/apps/{_seg(app)}/machines/{_seg(machine_id)}"))

    def update_machine(
        self,
        app: str,
        machine_id: str,
        config: MachineConfig | Mapping[str, Any],
        *,
        current_version: str | None,
        min_secrets_version: int | None = None,
        skip_launch: bool = False,
        lease_nonce: str | None = None,
    ) -> Machine:
        """Replace the machine's config in place; a stale ``current_version`` raises ``FlyConflict``.

        After an uncertain failure (or a 409 on a retry) the machine is read back: if it already runs
        exactly the config we sent, under a new version, the update took effect and that machine is returned.
        """
        cfg = config if isinstance(config, MachineConfig) else MachineConfig.model_validate(dict(config))
        sent = cfg.to_api()
        body = _fields(
            config=sent,
            current_version=current_version,
            min_secrets_version=min_secrets_version,
            skip_launch=skip_launch,
        )
        path = f"/v1/apps/{_seg(app)}/machines/{_seg(machine_id)}"

        def applied() -> dict[str, Any] | None:
            live = self._request("GET", path)
            moved = current_version is None or (live.get("version") or live.get("instance_id")) != current_version
            return live if moved and _is_subset(sent, live.get("config") or {}) else None

        headers = {LEASE_HEADER: lease_nonce} if lease_nonce else None
        try:
            data = self._request("POST", path, body=body, headers=headers, recover=applied)
        except FlyConflict:
            data = applied()
            if data is None:
                raise
        return Machine.model_validate(data)

    def _state_recover(self, app: str, machine_id: str, states: Iterable[str]) -> Recover:
        wanted = frozenset(states)

        def check() -> dict[str, Any] | None:
            live = self._request("GET", f"/v1/apps/{_seg(app)}/machines/{_seg(machine_id)}")
            return live if live.get("state") in wanted else None

        return check

    def start_machine(self, app: str, machine_id: str, *, lease_nonce: str | None = None) -> None:
        self._request(
            "POST",
            f"/v1/apps/{_seg(app)}/machines/{_seg(machine_id)}/start",
            headers={LEASE_HEADER: lease_nonce} if lease_nonce else None,
            recover=self._state_recover(app, machine_id, ("starting", "started")),
        )

    def stop_machine(
        self,
        app: str,
        machine_id: str,
        *,
        signal: str | None = None,
        timeout: str | None = None,
        lease_nonce: str | None = None,
    ) -> None:
        body = _fields(signal=signal, timeout=timeout)
        self._request(
            "POST",
            f"/v1/apps/{_seg(app)}/machines/{_seg(machine_id)}/stop",
            body=body or None,
            headers={LEASE_HEADER: lease_nonce} if lease_nonce else None,
            recover=self._state_recover(app, machine_id, ("stopping", "stopped")),
        )

    def delete_machine(self, app: str, machine_id: str, force: bool = False, *, lease_nonce: str | None = None) -> None:
        """Destroy the machine (``force`` kills a running one); a machine already gone is not an error."""
        try:
            self._request(
                "DELETE",
                f"/v1/apps/{_seg(app)}/machines/{_seg(machine_id)}",
                params={"force": "true"} if force else None,
                headers={LEASE_HEADER: lease_nonce} if lease_nonce else None,
            )
        except FlyNotFound:
            log.info("fly machine %s in %s was already gone", machine_id, app)

    def wait_machine(
        self,
        app: str,
        machine_id: str,
        state: str = "started",
        *,
        instance_id: str | None = None,
        deadline_s: float = 120.0,
    ) -> WaitResult:
        """Block until the machine is in ``state``, looping the API's ≤60 s wait within ``deadline_s``.

        Each wait request asks for at most what is left of the deadline (clamped to 1–60 s, as fly-go
        does); a 408 means "not yet". At the deadline, ``FlyWaitTimeout`` names the app, the machine, the
        awaited and the current state, and the machine's recent events.
        """
        path = f"/v1/apps/{_seg(app)}/machines/{_seg(machine_id)}/wait"
        end = time.monotonic() + deadline_s
        connect = self.timeout[0] if isinstance(self.timeout, tuple) else self.timeout
        last: FlyApiError | None = None
        while (remaining := end - time.monotonic()) > 0:
            seconds = int(min(WAIT_MAX_S, max(1, remaining)))
            params = {"state": state, "timeout": str(seconds)}
            if instance_id:
                params["version"] = instance_id
            try:
                data = self._request("GET", path, params=params, timeout=(connect, seconds + 15))
                return WaitResult.model_validate(data or {})
            except FlyApiError as exc:
                if exc.status != 408:
                    raise
                last = exc
        raise self._wait_timeout(app, machine_id, state, deadline_s, last)

    def _wait_timeout(
        self, app: str, machine_id: str, state: str, deadline_s: float, last: FlyApiError | None
    ) -> FlyWaitTimeout:
        try:
            machine = self.get_machine(app, machine_id)
            now = f"it is {machine.state!r}"
            events = ", ".join(e.describe() for e in machine.recent_events()) or "none"
        except FlyApiError as exc:
            now, events = "its state is unknown", f"unavailable ({exc.message})"
        return FlyWaitTimeout(
            f"machine {machine_id} in app {app!r} did not reach state {state!r} within {deadline_s:g}s; "
            f"{now}; recent events: {events}",
            method="GET",
            path=f"/v1/apps/{app}/machines/{machine_id}/wait",
            status=408,
            request_id=last.request_id if last else None,
        )

    # -- leases --------------------------------------------------------------------------------------

    @staticmethod
    def _lease(data: Any) -> Lease:
        if isinstance(data, Mapping) and isinstance(cast(Mapping[str, Any], data).get("data"), Mapping):
            data = cast(Mapping[str, Any], data)["data"]  # flaps' older envelope
        return Lease.model_validate(data or {})

    def get_lease(self, app: str, machine_id: str) -> Lease | None:
        try:
            return self._lease(self._request("GET", f"/v1/apps/{_seg(app)}/machines/{_seg(machine_id)}/lease"))
        except FlyNotFound:
            return None

    def acquire_lease(
        self,
        app: str,
        machine_id: str,
        ttl: int = 30,
        *,
        description: str | None = None,
        nonce: str | None = None,
    ) -> Lease:
        """Take (or, with ``nonce``, refresh) the machine's lease; a lease held by someone else is a 409."""
        description = description or f"catwalk {uuid.uuid4().hex[:12]}"
        path = f"/v1/apps/{_seg(app)}/machines/{_seg(machine_id)}/lease"

        def ours() -> dict[str, Any] | None:
            lease = self.get_lease(app, machine_id)
            return lease.to_api() if lease is not None and lease.description == description else None

        data = self._request(
            "POST",
            path,
            body={"ttl": ttl, "description": description},
            headers={LEASE_HEADER: nonce} if nonce else None,
            recover=ours,
        )
        return self._lease(data)

    def release_lease(self, app: str, machine_id: str, nonce: str) -> None:
        """Release our lease; one that expired or was already released is not an error."""
        try:
            self._request(
                "DELETE", f"/v1/apps/{_seg(app)}/machines/{_seg(machine_id)}/lease", headers={LEASE_HEADER: nonce}
            )
        except FlyNotFound:
            log.info("fly lease on machine %s in %s was already gone", machine_id, app)

    # -- secrets -------------------------------------------------------------------------------------

    def list_secrets(self, app: str) -> list[Secret]:
        """The app's secrets: names and digests, never values."""
        data: dict[str, Any] = self._request("GET", f"/v1/apps/{_seg(app)}/secrets") or {}
        return [Secret.model_validate(s) for s in _items(data, "secrets")]

    def _update_secrets(self, app: str, values: Mapping[str, str | None]) -> int:
        # Setting absolute values is idempotent: repeating it after a lost response changes nothing.
        answer = self._request(
            "POST",
            f"/v1/apps/{_seg(app)}/secrets",
            body={"values": dict(values)},
            idempotent=True,
            secrets=[v for v in values.values() if v],
        )
        data: dict[str, Any] = answer or {}
        version = data.get("version", data.get("Version"))
        if not isinstance(version, int):
            raise FlyApiError("Fly did not return a secrets version", method="POST", path=f"/v1/apps/{app}/secrets")
        return version

    def set_secrets(self, app: str, values: Mapping[str, str]) -> int:
        """Set app secrets; returns the secrets version to pass machines as ``min_secrets_version``."""
        # Callers across the engine boundary are not type-checked: refuse anything but text.
        bad = sorted(k for k, v in values.items() if not isinstance(v, str))  # pyright: ignore[reportUnnecessaryIsInstance]
        if bad:
            raise TypeError(f"secret values must be strings: {', '.join(bad)}")
        return self._update_secrets(app, values)

    def unset_secrets(self, app: str, names: Iterable[str]) -> int:
        """Remove app secrets (Fly: a null value unsets); returns the new secrets version."""
        return self._update_secrets(app, dict.fromkeys(names))

    # -- volumes -------------------------------------------------------------------------------------

    def list_volumes(self, app: str) -> list[Volume]:
        """The app's volumes that are not destroyed (Fly lists volumes on their way out too)."""
        data: list[Any] = self._request("GET", f"/v1/apps/{_seg(app)}/volumes") or []
        return [v for v in (Volume.model_validate(d) for d in data) if v.live]

    def list_org_volumes(self, org_slug: str, *, region: str | None = None, page_size: int = 1000) -> list[Volume]:
        """Every live volume of the organization's apps (``app_name`` set on each), following Fly's pages."""
        params: dict[str, Any] = {"limit": page_size, **({"region": region} if region else {})}
        found: list[Volume] = []
        for _ in range(1000):  # bounded: Fly's pages end with no next_cursor
            data: dict[str, Any] = self._request("GET", f"/v1/orgs/{_seg(org_slug)}/volumes", params=params) or {}
            found += [v for v in (Volume.model_validate(d) for d in _items(data, "volumes")) if v.live]
            if not data.get("next_cursor"):
                break
            params["cursor"] = data["next_cursor"]
        return found

    def find_volume(self, app: str, name: str, region: str) -> Volume | None:
        """The live volume called ``name`` in ``region``, if any (the oldest when Fly holds several)."""
        found = [v for v in self.list_volumes(app) if v.name == name and v.region == region]
        return min(found, key=lambda v: v.created_at or "") if found else None

    def get_volume(self, app: str, volume_id: str) -> Volume:
        return Volume.model_validate(self._request("GET", f"/v1/apps/{_seg(app)}/volumes/{_seg(volume_id)}"))

    def create_volume(
        self,
        app: str,
        name: str,
        region: str,
        size_gb: int,
        *,
        encrypted: bool = True,
        snapshot_retention: int | None = None,
        require_unique_zone: bool | None = None,
        known: Iterable[str] | None = None,
    ) -> Volume:
        """Create one volume, exactly once, even when responses are lost.

        Fly does not keep volume names unique, so after an uncertain failure the app's volumes are listed
        again: one called ``name`` in ``region`` that was not there before (``known``: the ids the caller
        just listed) is the one this call made.
        """
        before = set(known) if known is not None else {v.id for v in self.list_volumes(app)}
        body = _fields(
            name=name,
            region=region,
            size_gb=size_gb,
            encrypted=encrypted,
            snapshot_retention=snapshot_retention,
            require_unique_zone=require_unique_zone,
        )
        if not encrypted:
            body["encrypted"] = False  # _fields leaves False out; Fly's default is encrypted

        def made() -> dict[str, Any] | None:
            for v in self.list_volumes(app):
                if v.id not in before and v.name == name and v.region == region:
                    return v.to_api()
            return None

        return Volume.model_validate(self._request("POST", f"/v1/apps/{_seg(app)}/volumes", body=body, recover=made))

    def update_volume(
        self,
        app: str,
        volume_id: str,
        *,
        snapshot_retention: int | None = None,
        auto_backup_enabled: bool | None = None,
    ) -> Volume:
        """Set the snapshot settings (absolute values: repeating the call changes nothing)."""
        body = _fields(snapshot_retention=snapshot_retention)
        if auto_backup_enabled is not None:
            body["auto_backup_enabled"] = auto_backup_enabled
        return Volume.model_validate(self._request("PUT", f"/v1/apps/{_seg(app)}/volumes/{_seg(volume_id)}", body=body))

    def extend_volume(self, app: str, volume_id: str, size_gb: int) -> ExtendedVolume:
        """Grow the volume to ``size_gb`` (Fly cannot shrink one). After an uncertain failure the volume is read
        back: at ``size_gb`` or more, the extend took effect."""
        path = f"/v1/apps/{_seg(app)}/volumes/{_seg(volume_id)}"

        def grown() -> dict[str, Any] | None:
            live: dict[str, Any] = self._request("GET", path) or {}
            return {"volume": live, "needs_restart": False} if (live.get("size_gb") or 0) >= size_gb else None

        data = self._request("PUT", path + "/extend", body={"size_gb": size_gb}, idempotent=False, recover=grown)
        return ExtendedVolume.model_validate(data or {})

    def delete_volume(self, app: str, volume_id: str) -> None:
        """Destroy the volume and its data; one that is already gone is not an error."""
        try:
            self._request("DELETE", f"/v1/apps/{_seg(app)}/volumes/{_seg(volume_id)}")
        except FlyNotFound:
            log.info("fly volume %s of %s was already gone", volume_id, app)

    def list_snapshots(self, app: str, volume_id: str) -> list[VolumeSnapshot]:
        data: list[Any] = self._request("GET", f"/v1/apps/{_seg(app)}/volumes/{_seg(volume_id)}/snapshots") or []
        return [VolumeSnapshot.model_validate(s) for s in data]

    def create_snapshot(self, app: str, volume_id: str) -> None:
        """Take a snapshot now (on top of Fly's daily ones). Not retried after an uncertain failure: a
        second snapshot would be harmless but is not what was asked for."""
        self._request("POST", f"/v1/apps/{_seg(app)}/volumes/{_seg(volume_id)}/snapshots")

    # -- IP assignments ------------------------------------------------------------------------------

    def list_ips(self, app: str) -> list[IPAssignment]:
        data: dict[str, Any] = self._request("GET", f"/v1/apps/{_seg(app)}/ip_assignments") or {}
        return [IPAssignment.model_validate(i) for i in _items(data, "ips")]

    def allocate_ip(
        self,
        app: str,
        type: str = "shared_v4",
        *,
        region: str | None = None,
        network: str | None = None,
        service_name: str | None = None,
        org_slug: str | None = None,
        known: Iterable[str] | None = None,
    ) -> IPAssignment:
        """Assign a public (``v4``, ``shared_v4``, ``v6``) or Flycast (``private_v6``) address to the app.

        After an uncertain failure the app's IPs are listed again; an address that appeared since the
        call began, of the requested kind, is the one this call made. ``known``: the app's addresses as
        the caller just listed them (saves listing them again).
        """
        before = set(known) if known is not None else {i.ip for i in self.list_ips(app)}
        body = _fields(type=type, region=region, network=network, service_name=service_name, org_slug=org_slug)

        def new_ip() -> dict[str, Any] | None:
            for ip in self.list_ips(app):
                if ip.ip not in before and _ip_kind_matches(ip, type):
                    return ip.to_api()
            return None

        return IPAssignment.model_validate(
            self._request("POST", f"/v1/apps/{_seg(app)}/ip_assignments", body=body, recover=new_ip)
        )

    def release_ip(self, app: str, ip: str) -> None:
        """Remove an IP assignment; one that is already gone is not an error."""
        try:
            self._request("DELETE", f"/v1/apps/{_seg(app)}/ip_assignments/{_seg(ip)}")
        except FlyNotFound:
            log.info("fly ip %s of %s was already gone", ip, app)


def _ip_kind_matches(ip: IPAssignment, kind: str) -> bool:
    addr = ip.ip or ""
    if kind in ("v4", "shared_v4", "egress_v4"):
        return "." in addr and bool(ip.shared) == (kind == "shared_v4")
    if kind == "private_v6":
        return ":" in addr and ip.network is not None
    if kind in ("v6", "egress_v6"):
        return ":" in addr and ip.network is None
    return True
