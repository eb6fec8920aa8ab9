"""The inputs of one Fly Machine and the pure mapping between them and a Fly machine config.

`render_config` is the config we send; `owned_view` projects what Fly returns onto the keys we set, so
the defaults Fly adds (init, dns, concurrency, ...) never show up as drift; `inputs_from_machine` reads
our inputs back from a live machine for refresh and import. No I/O here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from catwalk_runtime import contract
from components import safety, storage
from components.fields import AppName, FlySize, ImageRef, Region, ServerName

INTERNAL_PORT = 8080
HEALTH_PATH = "/status"
SIZE = re.compile(r"^(shared-cpu|performance)-(\d+)x$")
MAX_ENV = 100
# The explicit opt-out a server with `auth: false` gets in its machine env. Without a token and without
# this, the gateway refuses to start: a token lost out of band (a failed secrets apply, an image started
# by hand) must not leave /mcp open to the internet.
AUTH_OPT_OUT = {contract.AUTH: contract.AUTH_OFF}

AutoStop = Literal["off", "stop", "suspend"]
RestartPolicy = Literal["no", "always", "on-failure"]


def check_env(env: Mapping[str, str]) -> None:
    """Plain env: portable names, no control characters, nothing that looks like a credential."""
    if len(env) > MAX_ENV:
        raise ValueError(f"has {len(env)} variables; the limit is {MAX_ENV}")
    for name, value in env.items():
        if not safety.ENV_NAME.match(name):
            raise ValueError(f"{name!r} is not a valid environment variable name (letters, digits, _)")
        if safety.SECRET_LOOKING.search(name.upper()):
            raise ValueError(
                f"{name!r} looks like a credential: pass it through FlySecrets, not plain env "
                "(plain env is stored in the state and the machine config)"
            )
        safety.check_no_control(value, f"value of {name}")
        safety.check_length(value, safety.MAX_ENV_VALUE, f"value of {name}")


class MountInput(BaseModel):
    """The volume (by id) a machine mounts, and where."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    volume: str = Field(pattern=r"^[A-Za-z0-9_]{1,64}$")
    path: str

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        storage.check_mount_path(v)
        return v


class FileInput(BaseModel):
    """A file Fly writes before the machine starts: base64 `raw_value`, or the app secret `secret_name`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    guest_path: str
    raw_value: str | None = Field(default=None, max_length=storage.MAX_FILE_BYTES * 4 // 3 + 4)
    secret_name: str | None = Field(default=None, pattern=r"^[A-Z][A-Z0-9_]{0,63}$")
    mode: int = Field(default=storage.DEFAULT_FILE_MODE, ge=0, le=0o777)

    @field_validator("guest_path")
    @classmethod
    def _guest_path(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError(f"{v!r} must be absolute")
        storage.check_file_path(v, None)
        return v

    @model_validator(mode="after")
    def _one_value(self) -> FileInput:
        if (self.raw_value is None) == (self.secret_name is None):
            raise ValueError("set exactly one of raw_value or secret_name")
        return self


class MachineInputs(BaseModel):
    """One machine of a server: (app, server, region, index) is its identity; the rest updates in place."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    app: AppName
    stack: str
    # The stack id (components.providers.ownership); empty only in state from before stack ids.
    owner: str = Field(default="", pattern=r"^([a-z0-9]{8,32})?$")
    server: ServerName
    region: Region
    index: int = Field(default=0, ge=0, le=99)
    image: ImageRef
    env: dict[str, str] = Field(default_factory=dict)
    size: FlySize = "shared-cpu-1x"
    memory: int = Field(default=512, ge=256, le=65536)
    autostop: AutoStop = "stop"
    autostart: bool = True
    min_machines_running: int = Field(default=0, ge=0, le=10)
    restart_policy: RestartPolicy = "on-failure"
    secrets_version: int | None = Field(default=None, ge=0)
    mounts: list[MountInput] = Field(default_factory=list, max_length=1)  # Fly: one volume per machine
    files: list[FileInput] = Field(default_factory=list, max_length=20)
    # The image entrypoint's arguments (Fly's init.cmd): empty for an MCP server (the image's CMD), ["authserver"]
    # for the stack's built-in authorization server.
    cmd: list[str] = Field(default_factory=list, max_length=8)

    @field_validator("cmd")
    @classmethod
    def _cmd(cls, v: list[str]) -> list[str]:
        for word in v:
            safety.check_plain_token(word, "cmd", limit=64)
        return v

    @field_validator("stack")
    @classmethod
    def _stack(cls, v: str) -> str:
        safety.check_plain_token(v, "stack", limit=64)
        return v

    @field_validator("env")
    @classmethod
    def _env(cls, v: dict[str, str]) -> dict[str, str]:
        check_env(v)
        return v

    @model_validator(mode="after")
    def _memory_fits_size(self) -> MachineInputs:
        try:
            safety.check_memory_fits(self.size, self.memory)
        except ValueError as exc:
            raise ValueError(f"memory: {exc}") from None
        for f in self.files:
            for mount in self.mounts:
                if storage.under(f.guest_path, mount.path):
                    raise ValueError(f"files: {f.guest_path} is inside the volume mounted at {mount.path}")
        return self

    @property
    def machine_name(self) -> str:
        return machine_name(self.server, self.region, self.index)


def machine_name(server: str, region: str, index: int) -> str:
    """Unique within the app and stable across runs: a lost create is found again by this name."""
    return f"{server}-{region}-{index}"


def parse_size(size: str) -> tuple[str, int]:
    m = SIZE.match(size)
    if not m:
        raise ValueError(f"{size!r} is not a Fly machine size")
    return ("shared" if m.group(1) == "shared-cpu" else "performance"), int(m.group(2))


def size_of(guest: Mapping[str, Any]) -> str:
    kind = "shared-cpu" if guest.get("cpu_kind", "shared") == "shared" else "performance"
    return f"{kind}-{guest.get('cpus', 1)}x"


def metadata(inp: MachineInputs) -> dict[str, str]:
    """Marks the machine as ours (the stack id), and as a v2 `app` process so the `fly` CLI lists and manages it.

    A lost or interrupted create is found again only by a machine carrying all of these, so only ours."""
    return {
        **({"catwalk_owner": inp.owner} if inp.owner else {}),
        "catwalk_stack": inp.stack,
        "catwalk_server": inp.server,
        "catwalk_index": str(inp.index),
        "fly_platform_version": "v2",
        "fly_process_group": "app",
    }


def restart_policy(policy: str) -> dict[str, Any]:
    """Restart on failure a bounded number of times; `always`/`no` take no retry count."""
    return {"policy": policy, "max_retries": 10} if policy == "on-failure" else {"policy": policy}


def render_config(inp: MachineInputs) -> dict[str, Any]:
    """The machine config we own. Secrets are not here: Fly injects app secrets at boot."""
    kind, cpus = parse_size(inp.size)
    config = {
        "image": inp.image,
        "env": dict(sorted(inp.env.items())),
        "guest": {"cpu_kind": kind, "cpus": cpus, "memory_mb": inp.memory},
        "services": [
            {
                "protocol": "tcp",
                "internal_port": INTERNAL_PORT,
                "ports": [
                    {"port": 443, "handlers": ["tls", "http"]},
                    {"port": 80, "handlers": ["http"], "force_https": True},
                ],
                "autostop": inp.autostop,
                "autostart": inp.autostart,
                "min_machines_running": inp.min_machines_running,
            }
        ],
        "checks": {
            "status": {
                "type": "http",
                "port": INTERNAL_PORT,
                "method": "GET",
                "path": HEALTH_PATH,
                "interval": "15s",
                "timeout": "5s",
                "grace_period": "10s",
            }
        },
        "restart": restart_policy(inp.restart_policy),
        "metadata": metadata(inp),
    }
    if inp.mounts:
        config["mounts"] = [{"volume": m.volume, "path": m.path} for m in inp.mounts]
        # Fly mounts a volume owned by root and takes no owner for it: the image's entrypoint starts as root
        # (Fly's per-process user override), hands the mount point to the image's user, and drops to it.
        config["processes"] = [{"user": "root"}]
    if inp.files:
        config["files"] = [f.model_dump(exclude_none=True) for f in inp.files]
    if inp.cmd:
        config["init"] = {"cmd": list(inp.cmd)}
    return config


def _normalize(value: Any) -> Any:
    """Fly's spellings of our values: autostop comes back as a bool for "off"/"stop"; empties vanish."""
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if k == "autostop" and isinstance(v, bool):
                v = "stop" if v else "off"
            v = _normalize(v)
            if v is None or v == {} or v == []:
                continue
            out[k] = v
        return out
    if isinstance(value, list | tuple):
        return [_normalize(v) for v in value]
    return value


def owned_view(live: Any, desired: Any) -> Any:
    """`live` restricted to the keys `desired` has (recursively), after normalizing Fly's spellings.

    Keys Fly adds are dropped; a key we set that Fly lost stays missing, so it reads as drift. Env
    and metadata are compared whole, since a variable added out of band is drift too.
    """
    live = _normalize(live)
    desired = _normalize(desired)
    return _project(live, desired, path=())


_WHOLE = {("env",)}


def _project(live: Any, desired: Any, path: tuple[str, ...]) -> Any:
    if path in _WHOLE:
        return live
    if isinstance(desired, Mapping) and isinstance(live, Mapping):
        return {k: _project(live[k], desired[k], (*path, k)) for k in desired if k in live}
    if isinstance(desired, list) and isinstance(live, list):
        projected = [_project(lv, dv, path) for lv, dv in zip(live, desired, strict=False)]
        return projected + live[len(desired) :]
    return live


def config_drift(live_config: Mapping[str, Any], inp: MachineInputs) -> bool:
    """True when the part of the live config we own differs from what `inp` renders."""
    desired = _normalize(render_config(inp))
    return owned_view(live_config, desired) != desired


def inputs_from_machine(machine: Mapping[str, Any], app: str) -> dict[str, Any]:
    """Our inputs as Fly has them (refresh, import). Unknown or foreign values are kept as found."""
    config = _normalize(machine.get("config") or {})
    meta = config.get("metadata") or {}
    guest = config.get("guest") or {}
    services = config.get("services") or [{}]
    service = services[0]
    restart = config.get("restart") or {}
    found: dict[str, Any] = {
        "app": app,
        "stack": meta.get("catwalk_stack", ""),
        "owner": meta.get("catwalk_owner", ""),
        "server": meta.get("catwalk_server", ""),
        "region": machine.get("region", ""),
        "index": int(meta["catwalk_index"]) if str(meta.get("catwalk_index", "")).isdigit() else 0,
        "image": config.get("image", ""),
        "env": dict(sorted((config.get("env") or {}).items())),
        "size": size_of(guest),
        "memory": guest.get("memory_mb", 256),
        "autostop": service.get("autostop", "off"),
        "autostart": bool(service.get("autostart", False)),
        "min_machines_running": service.get("min_machines_running", 0),
        "restart_policy": restart.get("policy", "on-failure"),
        "mounts": [{"volume": m.get("volume", ""), "path": m.get("path", "")} for m in config.get("mounts") or []],
        "files": [
            {k: f[k] for k in ("guest_path", "raw_value", "secret_name", "mode") if k in f}
            for f in config.get("files") or []
        ],
    }
    cmd = (config.get("init") or {}).get("cmd")
    if cmd:  # only where set: machines of MCP servers keep the inputs they always had
        found["cmd"] = [str(word) for word in cmd]
    return found
