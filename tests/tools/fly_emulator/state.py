"""The emulator's model of Fly: apps, machines and their state machine, leases, secrets, IPs.

No HTTP here: ``server.py`` maps requests onto these methods, which return JSON-ready values shaped as
tests/fixtures/fly/machines-openapi.json says, or raise ``ApiError`` with the status Fly would answer with.
One lock guards everything; a condition on it wakes ``wait`` calls when a machine changes state.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import secrets as _random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

APP_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
SECRET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
WAIT_STATES = frozenset({"started", "stopped", "suspended", "destroyed", "failed", "settled"})
SETTLED = frozenset({"started", "stopped", "suspended", "failed", "destroyed", "created"})
GONE = frozenset({"destroying", "destroyed"})
IP_TYPES = frozenset({"v4", "v6", "shared_v4", "private_v6"})
VOLUME_NAME = re.compile(r"^[a-z0-9_]{1,30}$")  # Fly: at most 30 lowercase letters, digits and underscores
MAX_VOLUME_GB = 500
MAX_EVENTS = 20
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class ApiError(Exception):
    """An error answer: HTTP status, Fly's ``error`` text and optional ``status`` code (e.g. name_taken)."""

    def __init__(self, status: int, error: str, code: str | None = None) -> None:
        super().__init__(error)
        self.status, self.error, self.code = status, error, code

    def body(self) -> dict[str, Any]:
        return {"error": self.error, **({"status": self.code} if self.code else {})}


def ulid() -> str:
    """A 26-character ULID-like id (48-bit ms time + 80 random bits, Crockford base32), as Fly versions are."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join(CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(26)))


def now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class MachineRec:
    id: str
    app: str
    name: str
    region: str
    config: dict[str, Any]
    version: str
    state: str = "created"
    private_ip: str = ""
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)
    events: list[dict[str, Any]] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)
    lease: dict[str, Any] | None = None
    generation: int = 0  # bumps on every state change request; stale scheduled transitions are dropped

    def event(self, type_: str, status: str, source: str = "user", request: dict[str, Any] | None = None) -> None:
        # Strictly increasing per machine, so sorting by timestamp gives the order things happened in.
        stamp = max(now_ms(), self.events[0]["timestamp"] + 1) if self.events else now_ms()
        ev = {"id": ulid(), "type": type_, "status": status, "source": source, "timestamp": stamp}
        if request:
            ev["request"] = request
        self.events.insert(0, ev)  # newest first, as Fly lists them
        del self.events[MAX_EVENTS:]

    def image_ref(self) -> dict[str, Any]:
        image = str(self.config.get("image") or "")
        registry, _, rest = image.rpartition("/") if "/" in image.split(":")[0] else ("docker.io", "", image)
        repo, _, tag = rest.partition(":")
        digest = "sha256:" + hashlib.sha256(image.encode()).hexdigest()
        return {"registry": registry, "repository": repo, "tag": tag or "latest", "digest": digest, "labels": {}}

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "state": self.state,
            "region": self.region,
            "instance_id": self.version,
            "version": self.version,
            "private_ip": self.private_ip,
            "config": self.config,
            "image_ref": self.image_ref(),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "events": list(self.events),
            "checks": [],
            "host_status": "ok",
        }
        if self.lease is not None:
            data["lease"] = {k: self.lease[k] for k in ("description", "expires_at", "owner")}
        return data


@dataclass
class VolumeRec:
    id: str
    app: str
    name: str
    region: str
    size_gb: int
    encrypted: bool
    snapshot_retention: int
    auto_backup_enabled: bool
    zone: str
    state: str = "created"
    attached_machine_id: str | None = None
    created_at: str = field(default_factory=now_iso)
    snapshots: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "region": self.region,
            "state": self.state,
            "size_gb": self.size_gb,
            "encrypted": self.encrypted,
            "snapshot_retention": self.snapshot_retention,
            "auto_backup_enabled": self.auto_backup_enabled,
            "zone": self.zone,
            "type": "local",
            "fstype": "ext4",
            "host_status": "ok",
            "block_size": 4096,
            "blocks": self.size_gb * 262144,
            "created_at": self.created_at,
        }
        if self.attached_machine_id:
            data["attached_machine_id"] = self.attached_machine_id
            data["attached_alloc_id"] = self.attached_machine_id
        return data


@dataclass
class AppRec:
    id: str
    name: str
    org_slug: str
    network: str
    internal_numeric_id: int
    secrets: dict[str, dict[str, Any]] = field(default_factory=dict)
    secrets_version: int = 0
    ips: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self, machine_count: int, volume_count: int = 0) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "internal_numeric_id": self.internal_numeric_id,
            "machine_count": machine_count,
            "volume_count": volume_count,
            "network": self.network,
            "status": "deployed",
            "organization": {"name": self.org_slug, "slug": self.org_slug, "internal_numeric_id": 1},
        }


class Hooks:
    """What a machine does when it starts or stops: nothing, unless ``--run-machines`` installs a runner."""

    def start(self, machine: MachineRec, env: dict[str, str]) -> None:
        """Called (outside the lock) when a machine enters ``starting``; raise to fail the start."""

    def stop(self, machine: MachineRec, signal_name: str | None) -> None:
        """Called (outside the lock) when a machine leaves ``started``."""

    def volume_snapshot(self, volume_id: str, snapshot_id: str) -> None:
        """Called when a snapshot of the volume is taken."""

    def volume_restore(self, snapshot_id: str, volume_id: str) -> None:
        """Called when a new volume is created from a snapshot."""

    def volume_destroyed(self, volume_id: str) -> None:
        """Called when a volume is destroyed: its data is gone."""


class FlyState:
    """All emulated Fly state of one emulator instance."""

    def __init__(self, *, transition_s: float = 0.05, hooks: Hooks | None = None, owner: str = "emulator@fly.test"):
        self.transition_s = transition_s
        self.hooks = hooks or Hooks()
        self.owner = owner
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.apps: dict[str, AppRec] = {}
            self.reserved: set[str] = set()  # names taken by an organization this token cannot see
            self.app_keys: dict[str, str] = {}  # idempotency_key -> app name
            self.machines: dict[str, MachineRec] = {}
            self.volumes: dict[str, VolumeRec] = {}
            self._ip_counter = 0
            self.changed.notify_all()

    # -- apps ----------------------------------------------------------------------------------------

    def _app(self, name: str) -> AppRec:
        app = self.apps.get(name)
        if app is None:
            raise ApiError(404, f"app not found: {name}")
        return app

    def _machine_count(self, app: str) -> int:
        return sum(1 for m in self.machines.values() if m.app == app and m.state not in GONE)

    def create_app(self, body: dict[str, Any]) -> dict[str, Any]:
        name, org, key = body.get("name"), body.get("org_slug"), body.get("idempotency_key")
        with self.lock:
            if key and key in self.app_keys:
                first = self.app_keys[key]
                if name and name != first:
                    raise ApiError(422, f"idempotency_key was used for app {first!r}, not {name!r}")
                if first in self.apps:
                    return {"id": self.apps[first].id, "created_at": 0}
            if not isinstance(org, str) or not org:
                raise ApiError(400, "org_slug is required")
            if not isinstance(name, str) or not APP_NAME.match(name):
                raise ApiError(400, "name must be 1-63 lowercase letters, digits and dashes")
            if name in self.apps or name in self.reserved:
                raise ApiError(422, "Name has already been taken", "name_taken")
            app = AppRec(
                id=_random.token_hex(8),
                name=name,
                org_slug=org,
                network=str(body.get("network") or "default"),
                internal_numeric_id=len(self.apps) + 1000,
            )
            self.apps[name] = app
            if key:
                self.app_keys[key] = name
            return {"id": app.id, "created_at": now_ms()}

    def _volume_count(self, app: str) -> int:
        return sum(1 for v in self.volumes.values() if v.app == app and v.state != "destroyed")

    def get_app(self, name: str) -> dict[str, Any]:
        with self.lock:
            return self._app(name).to_json(self._machine_count(name), self._volume_count(name))

    def list_apps(self, org_slug: str | None) -> dict[str, Any]:
        if not org_slug:
            raise ApiError(400, "org_slug is required")
        with self.lock:
            apps = [
                a.to_json(self._machine_count(a.name), self._volume_count(a.name))
                for a in self.apps.values()
                if a.org_slug == org_slug
            ]
        return {"apps": apps, "total_apps": len(apps)}

    def delete_app(self, name: str) -> None:
        """Remove the app and destroy its machines (stopping their processes)."""
        with self.lock:
            self._app(name)
            del self.apps[name]
            running = []
            for m in self.machines.values():
                if m.app == name and m.state not in GONE:
                    if m.state in ("starting", "started"):
                        running.append(m)
                    m.state = "destroyed"
                    m.generation += 1
                    m.event("destroy", "destroyed")
            gone = [v.id for v in self.volumes.values() if v.app == name and v.state != "destroyed"]
            for vid in gone:
                self.volumes[vid].state = "destroyed"
                self.volumes[vid].attached_machine_id = None
            self.changed.notify_all()
        for m in running:
            self.hooks.stop(m, "SIGKILL")
        for vid in gone:
            self.hooks.volume_destroyed(vid)

    def reserve_app_name(self, name: str) -> None:
        with self.lock:
            self.reserved.add(name)

    # -- secrets -------------------------------------------------------------------------------------

    def list_secrets(self, app_name: str, show: bool) -> dict[str, Any]:
        with self.lock:
            app = self._app(app_name)
            out = []
            for name, s in sorted(app.secrets.items()):
                item = {"name": name, **{k: s[k] for k in ("digest", "created_at", "updated_at")}}
                if show:
                    item["value"] = s["value"]
                out.append(item)
        return {"secrets": out}

    def update_secrets(self, app_name: str, body: dict[str, Any]) -> dict[str, Any]:
        values = body.get("values")
        if not isinstance(values, dict):
            raise ApiError(400, "values must be an object of secret names to values (null unsets)")
        for name, value in values.items():
            if not SECRET_NAME.match(name):
                raise ApiError(400, f"invalid secret name {name!r}")
            if value is not None and not isinstance(value, str):
                raise ApiError(400, f"secret {name!r}: value must be a string or null")
        with self.lock:
            app = self._app(app_name)
            stamp = now_iso()
            for name, value in values.items():
                if value is None:
                    app.secrets.pop(name, None)
                    continue
                digest = hashlib.sha256(value.encode()).hexdigest()[:16]
                created = app.secrets.get(name, {}).get("created_at", stamp)
                app.secrets[name] = {"value": value, "digest": digest, "created_at": created, "updated_at": stamp}
            app.secrets_version += 1
            secrets = [
                {"name": n, **{k: s[k] for k in ("digest", "created_at", "updated_at")}}
                for n, s in sorted(app.secrets.items())
            ]
            return {"version": app.secrets_version, "Version": app.secrets_version, "secrets": secrets}

    def secret_env(self, app_name: str) -> dict[str, str]:
        with self.lock:
            app = self.apps.get(app_name)
            return {n: s["value"] for n, s in app.secrets.items()} if app else {}

    # -- IP assignments ------------------------------------------------------------------------------

    def list_ips(self, app_name: str) -> dict[str, Any]:
        with self.lock:
            return {"ips": [dict(i) for i in self._app(app_name).ips]}

    def assign_ip(self, app_name: str, body: dict[str, Any]) -> dict[str, Any]:
        kind = body.get("type")
        if kind not in IP_TYPES:
            raise ApiError(400, f"unsupported IP type {kind!r}: expected one of {', '.join(sorted(IP_TYPES))}")
        with self.lock:
            app = self._app(app_name)
            self._ip_counter += 1
            n = self._ip_counter
            ip: dict[str, Any] = {
                "created_at": now_iso(),
                "region": body.get("region") or "global",
                "shared": kind == "shared_v4",
                "egress": False,
                "service_name": body.get("service_name") or "",
            }
            if kind == "shared_v4":
                existing = next((i for i in app.ips if i["shared"]), None)
                if existing:
                    return dict(existing)
                ip["ip"] = f"66.241.124.{n % 250 + 1}"
            elif kind == "v4":
                ip["ip"] = f"149.248.{n // 250 % 250}.{n % 250 + 1}"
            elif kind == "v6":
                ip["ip"] = f"2a09:8280:1::{n:x}"
            else:
                ip["ip"] = f"fdaa:0:{app.internal_numeric_id:x}:0::{n:x}"
                ip["network"] = {"name": body.get("network") or "", "org_slug": body.get("org_slug") or app.org_slug}
            app.ips.append(ip)
            return dict(ip)

    def delete_ip(self, app_name: str, address: str) -> None:
        with self.lock:
            app = self._app(app_name)
            kept = [i for i in app.ips if i["ip"] != address]
            if len(kept) == len(app.ips):
                raise ApiError(404, f"ip assignment not found: {address}")
            app.ips = kept

    # -- volumes -------------------------------------------------------------------------------------

    def _volume(self, app_name: str, volume_id: str, *, live: bool = True) -> VolumeRec:
        self._app(app_name)
        v = self.volumes.get(volume_id)
        if v is None or v.app != app_name or (live and v.state == "destroyed"):
            raise ApiError(404, f"volume not found: {volume_id}")
        return v

    @staticmethod
    def _retention(value: Any, default: int) -> int:
        if value is None:
            return default
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 60:
            raise ApiError(400, "snapshot_retention must be a number of days from 1 to 60")
        return value

    def list_volumes(self, app_name: str) -> list[dict[str, Any]]:
        with self.lock:
            self._app(app_name)
            return [v.to_json() for v in self.volumes.values() if v.app == app_name and v.state != "destroyed"]

    def list_org_volumes(self, org_slug: str, query: dict[str, str]) -> dict[str, Any]:
        """Every volume of the org's apps, oldest first, in pages of ``limit`` (``next_cursor`` is an offset)."""
        include_deleted = query.get("include_deleted", "").lower() == "true"
        states = {s for s in query.get("state", "").split(",") if s}
        try:
            limit = min(1000, max(1, int(query.get("limit") or 1000)))
            start = int(query.get("cursor") or 0)
        except ValueError as exc:
            raise ApiError(400, "limit and cursor must be integers") from exc
        with self.lock:
            rows = []
            for v in self.volumes.values():
                app = self.apps.get(v.app)
                if app is None or app.org_slug != org_slug:  # a deleted app's volumes went with it
                    continue
                if (v.state == "destroyed" and not include_deleted) or (states and v.state not in states):
                    continue
                if query.get("region") and v.region != query["region"]:
                    continue
                row = {**v.to_json(), "app_name": v.app, "updated_at": v.created_at}
                if query.get("summary", "").lower() == "true":
                    for key in ("block_size", "blocks", "fstype", "host_status"):
                        row.pop(key, None)
                rows.append(row)
        page = rows[start : start + limit]
        data: dict[str, Any] = {"volumes": page}
        if start + limit < len(rows):
            data["next_cursor"] = str(start + limit)
        if page:
            data["last_volume_id"] = page[-1]["id"]
            data["last_updated_at"] = page[-1]["updated_at"]
        return data

    def create_volume(self, app_name: str, body: dict[str, Any]) -> dict[str, Any]:
        name, region, size = body.get("name"), body.get("region"), body.get("size_gb")
        if not isinstance(name, str) or not VOLUME_NAME.match(name):
            raise ApiError(400, "name must be at most 30 lowercase letters, digits and underscores")
        if not isinstance(region, str) or not region:
            raise ApiError(400, "region is required")
        snapshot_id = body.get("snapshot_id")
        with self.lock:
            self._app(app_name)
            source = None
            if snapshot_id is not None:
                source = next(
                    (v for v in self.volumes.values() for snap in v.snapshots if snap["id"] == snapshot_id), None
                )
                if source is None:
                    raise ApiError(404, f"snapshot not found: {snapshot_id}")
                size = size or source.size_gb
            if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= MAX_VOLUME_GB:
                raise ApiError(400, f"size_gb must be a whole number of GB from 1 to {MAX_VOLUME_GB}")
            if source is not None and size < source.size_gb:
                raise ApiError(400, f"size_gb {size} is smaller than the snapshot's volume ({source.size_gb} GB)")
            encrypted = body.get("encrypted")
            v = VolumeRec(
                id="vol_" + "".join(_random.choice("0123456789abcdefghijklmnopqrstuvwxyz") for _ in range(16)),
                app=app_name,
                name=name,
                region=region,
                size_gb=size,
                encrypted=True if encrypted is None else bool(encrypted),
                snapshot_retention=self._retention(body.get("snapshot_retention"), 5),
                auto_backup_enabled=body.get("auto_backup_enabled") is not False,
                zone=_random.token_hex(2),
            )
            self.volumes[v.id] = v
            data = v.to_json()
        if snapshot_id is not None:
            self.hooks.volume_restore(snapshot_id, v.id)
        return data

    def get_volume(self, app_name: str, volume_id: str) -> dict[str, Any]:
        with self.lock:
            return self._volume(app_name, volume_id, live=False).to_json()

    def update_volume(self, app_name: str, volume_id: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            v = self._volume(app_name, volume_id)
            v.snapshot_retention = self._retention(body.get("snapshot_retention"), v.snapshot_retention)
            if "auto_backup_enabled" in body:
                v.auto_backup_enabled = bool(body["auto_backup_enabled"])
            return v.to_json()

    def extend_volume(self, app_name: str, volume_id: str, body: dict[str, Any]) -> dict[str, Any]:
        size = body.get("size_gb")
        with self.lock:
            v = self._volume(app_name, volume_id)
            if not isinstance(size, int) or isinstance(size, bool) or size > MAX_VOLUME_GB:
                raise ApiError(400, f"size_gb must be a whole number of GB up to {MAX_VOLUME_GB}")
            if size <= v.size_gb:
                raise ApiError(400, f"size_gb {size} must exceed the volume's {v.size_gb} GB: volumes only grow")
            v.size_gb = size
            return {"volume": v.to_json(), "needs_restart": False}

    def delete_volume(self, app_name: str, volume_id: str) -> dict[str, Any]:
        with self.lock:
            v = self._volume(app_name, volume_id)
            holder = self.machines.get(v.attached_machine_id or "")
            if holder is not None and holder.state not in GONE:
                raise ApiError(409, f"volume {v.id} is attached to machine {holder.id}: destroy the machine first")
            v.state = "destroyed"
            v.attached_machine_id = None
            data = v.to_json()
        self.hooks.volume_destroyed(volume_id)
        return data

    def list_snapshots(self, app_name: str, volume_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(snap) for snap in self._volume(app_name, volume_id).snapshots]

    def create_snapshot(self, app_name: str, volume_id: str) -> None:
        with self.lock:
            v = self._volume(app_name, volume_id)
            snap = {
                "id": "vs_" + _random.token_hex(8),
                "created_at": now_iso(),
                "digest": _random.token_hex(16),
                "retention_days": v.snapshot_retention,
                "size": 0,
                "status": "created",
                "volume_size": v.size_gb * 1024**3,
            }
            v.snapshots.append(snap)
        self.hooks.volume_snapshot(volume_id, snap["id"])

    def _check_mounts(self, app: AppRec, region: str, config: dict[str, Any], machine_id: str | None) -> None:
        """A machine mounts at most one volume of its app, in its region, held by no other machine."""
        mounts = config.get("mounts")
        if mounts is None:
            return
        if not isinstance(mounts, list) or len(mounts) > 1:
            raise ApiError(400, "config.mounts: a machine can mount at most one volume")
        for mount in mounts:
            path = mount.get("path") if isinstance(mount, dict) else None
            if not isinstance(path, str) or not path.startswith("/") or path.rstrip("/") == "":
                raise ApiError(400, "config.mounts[0].path must be an absolute directory other than /")
            v = self.volumes.get(str(mount.get("volume") or ""))
            if v is None or v.app != app.name or v.state == "destroyed":
                raise ApiError(400, f"config.mounts[0].volume: volume {mount.get('volume')!r} not found in app")
            if v.region != region:
                raise ApiError(400, f"volume {v.id} is in region {v.region}, the machine in {region}")
            holder = self.machines.get(v.attached_machine_id or "")
            if holder is not None and holder.id != machine_id and holder.state not in GONE:
                raise ApiError(409, f"volume {v.id} is already attached to machine {holder.id}")

    def _check_files(self, app: AppRec, config: dict[str, Any]) -> None:
        files = config.get("files")
        if files is None:
            return
        if not isinstance(files, list):
            raise ApiError(400, "config.files must be a list")
        for i, f in enumerate(files):
            where = f"config.files[{i}]"
            if not isinstance(f, dict) or not str(f.get("guest_path") or "").startswith("/"):
                raise ApiError(400, f"{where}.guest_path must be an absolute path")
            if f.get("image_config") is not None:
                raise ApiError(400, f"{where}.image_config is not emulated")
            raw, secret = f.get("raw_value"), f.get("secret_name")
            if (raw is None) == (secret is None):
                raise ApiError(400, f"{where}: set exactly one of raw_value or secret_name")
            value = raw if raw is not None else (app.secrets.get(str(secret)) or {}).get("value")
            if value is None:
                raise ApiError(400, f"{where}.secret_name: app has no secret {secret!r}")
            try:
                base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ApiError(400, f"{where}: the contents are not base64") from exc

    def _attach(self, m: MachineRec) -> None:
        """Point each volume at the machine that mounts it now; release volumes it no longer mounts."""
        mounted = {str(mount.get("volume")) for mount in m.config.get("mounts") or []}
        for v in self.volumes.values():
            if v.id in mounted:
                v.attached_machine_id = m.id
            elif v.attached_machine_id == m.id:
                v.attached_machine_id = None

    def _decorate_mounts(self, config: dict[str, Any]) -> None:
        """Fly answers a mount with the volume's name, size and encryption filled in."""
        if isinstance(config.get("mounts"), list):
            config["mounts"] = [
                {
                    **mount,
                    "name": v.name,
                    "size_gb": v.size_gb,
                    "encrypted": v.encrypted,
                }
                if (v := self.volumes.get(str(mount.get("volume")))) is not None
                else mount
                for mount in config["mounts"]
            ]

    # -- machines ------------------------------------------------------------------------------------

    def _machine(self, app_name: str, machine_id: str, *, live: bool = True) -> MachineRec:
        self._app(app_name)
        m = self.machines.get(machine_id)
        if m is None or m.app != app_name or (live and m.state in GONE):
            raise ApiError(404, "machine not found")
        return m

    def _check_lease(self, m: MachineRec, nonce: str | None) -> None:
        lease = m.lease
        if lease and lease["expires_at"] > time.time():
            if nonce != lease["nonce"]:
                raise ApiError(
                    409, f"machine {m.id} lease currently held by {lease['owner']}, expires at {lease['expires_at']}"
                )
        elif lease:
            m.lease = None

    def _check_secrets(self, app: AppRec, body: dict[str, Any]) -> None:
        want = body.get("min_secrets_version")
        if want is not None and (not isinstance(want, int) or want > app.secrets_version):
            raise ApiError(400, f"min_secrets_version {want} is not available: secrets are at {app.secrets_version}")

    @staticmethod
    def _config(body: dict[str, Any]) -> dict[str, Any]:
        config = body.get("config")
        if not isinstance(config, dict):
            raise ApiError(400, "config is required")
        if not isinstance(config.get("image"), str) or not config["image"]:
            raise ApiError(400, "config.image is required")
        for key in ("env", "metadata"):
            values = config.get(key)
            if values is not None and (
                not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values())
            ):
                raise ApiError(400, f"config.{key} must map names to strings")
        filled = dict(config)  # Fly fills in defaults; clients must tolerate fields they did not send
        if isinstance(filled.get("services"), list):
            # Spec, fly.MachineService.autostop: "the API continues to use booleans for "off" and "stop" in
            # responses". Answer the way Fly does, so clients meet the spelling they will meet in production.
            filled["services"] = [
                {**svc, "autostop": svc["autostop"] == "stop"}
                if isinstance(svc, dict) and svc.get("autostop") in ("off", "stop")
                else svc
                for svc in filled["services"]
            ]
        filled.setdefault("guest", {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256})
        filled.setdefault("restart", {"policy": "on-failure", "max_retries": 10})
        filled.setdefault("init", {})
        return filled

    def list_machines(self, app_name: str, query: dict[str, str]) -> list[dict[str, Any]]:
        include_deleted = query.get("include_deleted", "").lower() == "true"
        meta = {k[len("metadata.") :]: v for k, v in query.items() if k.startswith("metadata.")}
        states = {s for s in query.get("state", "").split(",") if s}
        region = query.get("region")
        with self.lock:
            self._app(app_name)
            out = []
            for m in self.machines.values():
                if m.app != app_name or (m.state in GONE and not include_deleted):
                    continue
                if (region and m.region != region) or (states and m.state not in states):
                    continue
                md = m.config.get("metadata") or {}
                if all(md.get(k) == v for k, v in meta.items()):
                    out.append(m.to_json())
        return out

    def create_machine(self, app_name: str, body: dict[str, Any]) -> dict[str, Any]:
        config = self._config(body)
        with self.lock:
            app = self._app(app_name)
            self._check_secrets(app, body)
            name = body.get("name") or f"m-{_random.token_hex(4)}"
            if not isinstance(name, str) or not APP_NAME.match(name):
                raise ApiError(400, "name must be lowercase letters, digits and dashes")
            if any(m.app == app_name and m.name == name and m.state not in GONE for m in self.machines.values()):
                raise ApiError(409, f"a machine named {name!r} already exists in app {app_name!r}", "name_taken")
            region = str(body.get("region") or "iad")
            self._check_mounts(app, region, config, None)
            self._check_files(app, config)
            self._decorate_mounts(config)
            version = ulid()
            m = MachineRec(
                id=_random.token_hex(7),
                app=app_name,
                name=name,
                region=region,
                config=config,
                version=version,
                versions=[version],
                private_ip=f"fdaa:0:{app.internal_numeric_id:x}:a7b:1::{len(self.machines) + 2:x}",
            )
            m.event("launch", "created", request={"config": config})
            ttl = body.get("lease_ttl")
            if isinstance(ttl, int) and ttl > 0:
                self._new_lease(m, ttl, "created with machine")
            self.machines[m.id] = m
            self._attach(m)
            data = m.to_json()
            if m.lease:
                data["nonce"] = m.lease["nonce"]
            launch = not body.get("skip_launch")
        if launch:
            self._begin_start(m)
        return data

    def get_machine(self, app_name: str, machine_id: str) -> dict[str, Any]:
        with self.lock:
            return self._machine(app_name, machine_id, live=False).to_json()

    def update_machine(self, app_name: str, machine_id: str, body: dict[str, Any], nonce: str | None) -> dict[str, Any]:
        config = self._config(body)
        with self.lock:
            app = self._app(app_name)
            m = self._machine(app_name, machine_id)
            self._check_lease(m, nonce)
            current = body.get("current_version")
            if current and current != m.version:
                raise ApiError(409, f"machine {m.id} is at version {m.version}, not current_version {current}")
            self._check_secrets(app, body)
            self._check_mounts(app, m.region, config, m.id)
            self._check_files(app, config)
            self._decorate_mounts(config)
            was_running = m.state in ("starting", "started")
            m.config = config
            self._attach(m)
            m.version = ulid()
            m.versions.append(m.version)
            m.updated_at = now_iso()
            m.generation += 1
            m.event("update", "replacing", request={"config": config})
            relaunch = not body.get("skip_launch")
            if was_running or relaunch:
                m.state = "replacing"
            data = m.to_json()
            self.changed.notify_all()
        if was_running:
            self.hooks.stop(m, None)
        if relaunch:
            self._begin_start(m)
        elif was_running:
            self._set_state(m, "stopped", m.generation, "exit", source="flyd")
        return data

    def start_machine(self, app_name: str, machine_id: str, nonce: str | None) -> None:
        with self.lock:
            m = self._machine(app_name, machine_id)
            self._check_lease(m, nonce)
            if m.state in ("starting", "started", "replacing"):  # already on its way: nothing to do
                return
        self._begin_start(m)

    def stop_machine(self, app_name: str, machine_id: str, body: dict[str, Any], nonce: str | None) -> None:
        with self.lock:
            m = self._machine(app_name, machine_id)
            self._check_lease(m, nonce)
            signal_name = body.get("signal") or (m.config.get("stop_config") or {}).get("signal")
            if m.state not in ("starting", "started", "replacing"):
                return
            m.generation += 1
            gen = m.generation
            m.state = "stopping"
            m.event("stop", "stopping")
            self.changed.notify_all()
        self.hooks.stop(m, signal_name)
        self._later(lambda: self._set_state(m, "stopped", gen, "exit", source="flyd"))

    def delete_machine(self, app_name: str, machine_id: str, force: bool, nonce: str | None) -> None:
        with self.lock:
            m = self._machine(app_name, machine_id)
            self._check_lease(m, nonce)
            running = m.state in ("starting", "started", "replacing")
            if running and not force:
                raise ApiError(412, f"machine {m.id} is {m.state}: stop it first or destroy with force=true")
            m.generation += 1
            gen = m.generation
            m.state = "destroying"
            m.lease = None
            m.event("destroy", "destroying")
            self.changed.notify_all()
        if running:
            self.hooks.stop(m, "SIGKILL")
        self._later(lambda: self._destroyed(m, gen))

    def _destroyed(self, m: MachineRec, generation: int) -> None:
        with self.lock:
            if self._set_state(m, "destroyed", generation, "destroy"):
                for v in self.volumes.values():
                    if v.attached_machine_id == m.id:
                        v.attached_machine_id = None

    # -- the state machine ---------------------------------------------------------------------------

    def _later(self, fn: Callable[[], None]) -> None:
        if self.transition_s <= 0:
            fn()
            return
        timer = threading.Timer(self.transition_s, fn)
        timer.daemon = True
        timer.start()

    def _set_state(
        self,
        m: MachineRec,
        state: str,
        generation: int,
        event: str,
        *,
        source: str = "flyd",
        request: dict[str, Any] | None = None,
    ) -> bool:
        """Move ``m`` to ``state`` unless another request changed it since ``generation`` was taken."""
        with self.lock:
            if m.generation != generation:
                return False
            m.state = state
            m.updated_at = now_iso()
            m.event(event, state, source=source, request=request)
            self.changed.notify_all()
            return True

    def _begin_start(self, m: MachineRec) -> None:
        with self.lock:
            m.generation += 1
            gen = m.generation
            m.state = "starting"
            m.event("start", "starting")
            self.changed.notify_all()
            env = {**self.secret_env(m.app), **(m.config.get("env") or {})}

        def run() -> None:
            try:
                self.hooks.start(m, env)
            except Exception as exc:  # the process could not start: Fly reports the machine as failed
                self._set_state(m, "failed", gen, "exit", request={"exit_event": {"exit_code": 127, "error": str(exc)}})
                return
            self._set_state(m, "started", gen, "start")

        self._later(run)

    def process_exited(self, m: MachineRec, exit_code: int) -> None:
        """The machine's main process ended on its own: Fly marks it stopped (restart policies not emulated).

        It may end before the start transition marked the machine started; bumping the generation
        drops that pending transition.
        """
        with self.lock:
            if m.state not in ("starting", "started"):
                return
            m.generation += 1
            m.state = "stopped"
            m.event("exit", "stopped", source="flyd", request={"exit_event": {"exit_code": exit_code}})
            self.changed.notify_all()

    def wait(self, app_name: str, machine_id: str, query: dict[str, str]) -> dict[str, Any]:
        wanted = {s for s in (query.get("state") or "started").split(",") if s}
        if not wanted <= WAIT_STATES:
            raise ApiError(400, f"invalid state {query.get('state')!r}: expected {', '.join(sorted(WAIT_STATES))}")
        try:
            timeout = int(query.get("timeout") or 60)
        except ValueError as exc:
            raise ApiError(400, "timeout must be an integer number of seconds") from exc
        if not 1 <= timeout <= 60:
            raise ApiError(400, "timeout must be between 1 and 60 seconds")
        version = query.get("version") or query.get("instance_id")
        end = time.monotonic() + timeout
        with self.lock:
            m = self._machine(app_name, machine_id, live=False)
            if version and version not in m.versions:
                raise ApiError(400, f"machine {m.id} has no version {version}")
            while True:
                state = m.state
                if version and version != m.version:  # that instance was replaced: it is gone for good
                    if not wanted & {"stopped", "destroyed", "settled"}:
                        raise ApiError(400, f"machine {m.id} version {version} was replaced by {m.version}")
                    state = "destroyed" if "destroyed" in wanted else "stopped"
                if state in wanted or ("settled" in wanted and state in SETTLED):
                    event_id = m.events[0]["id"] if m.events else ""
                    return {"ok": True, "state": state, "version": version or m.version, "event_id": event_id}
                left = end - time.monotonic()
                if left <= 0:
                    raise ApiError(408, f"deadline_exceeded: machine {m.id} did not reach {','.join(sorted(wanted))}")
                self.changed.wait(left)

    # -- leases --------------------------------------------------------------------------------------

    def _new_lease(self, m: MachineRec, ttl: int, description: str) -> dict[str, Any]:
        m.lease = {
            "nonce": _random.token_hex(8),
            "expires_at": int(time.time()) + ttl,
            "owner": self.owner,
            "description": description,
            "version": m.version,
        }
        return dict(m.lease)

    def get_lease(self, app_name: str, machine_id: str) -> dict[str, Any]:
        with self.lock:
            m = self._machine(app_name, machine_id)
            if not m.lease or m.lease["expires_at"] <= time.time():
                raise ApiError(404, f"machine {m.id} has no lease")
            return dict(m.lease)

    def create_lease(self, app_name: str, machine_id: str, body: dict[str, Any], nonce: str | None) -> dict[str, Any]:
        ttl = body.get("ttl") or 30
        if not isinstance(ttl, int) or ttl <= 0:
            raise ApiError(400, "ttl must be a positive number of seconds")
        with self.lock:
            m = self._machine(app_name, machine_id)
            self._check_lease(m, nonce)
            if m.lease and nonce == m.lease["nonce"]:
                m.lease["expires_at"] = int(time.time()) + ttl
                return dict(m.lease)
            return self._new_lease(m, ttl, str(body.get("description") or ""))

    def release_lease(self, app_name: str, machine_id: str, nonce: str | None) -> None:
        with self.lock:
            m = self._machine(app_name, machine_id)
            if not m.lease or m.lease["expires_at"] <= time.time():
                m.lease = None
                raise ApiError(404, f"machine {m.id} has no lease")
            if nonce != m.lease["nonce"]:
                raise ApiError(409, f"lease nonce does not match the lease held on machine {m.id}")
            m.lease = None
