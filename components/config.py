"""The stack config model: what a user writes under `catwalk:` in `Pulumi.<stack>.yaml`.

Everything is validated here, before any registry or Fly call, so a typo fails `pulumi preview` (and
`python -m infra.cli validate`) with a message naming the server and the field. Secret *values* never
pass through this model: a server lists secret env *names*; values come from Pulumi secret config.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, cast

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from components import safety, storage
from components.auth import (
    AUTH_APP_SUFFIX,
    MIN_PASSPHRASE,
    OAUTH_MODES,
    PASSPHRASE_KEY,
    AuthMode,
    OAuthConfig,
    auth_mode,
    check_auth,
    parse_oauth,
)
from components.auth import BUILTIN as BUILTIN_OAUTH
from components.errors import CatwalkError
from components.fields import (
    ApiUrl,
    AppName,
    Arg,
    EnvValue,
    FlySize,
    ImageRef,
    OrgSlug,
    PlainEnvName,
    Region,
    SecretEnvName,
    ServerName,
)
from components.spec import parse_spec

NAMESPACE = "catwalk"
# The Fly token's stack key: read by the providers (handed to `configure`), never a setting of the model.
FLY_TOKEN_KEY = "flyApiToken"
# The stack's own apps: the unified image's `<appPrefix>-images`, the built-in authorization server's
# `<appPrefix>-auth`.
RESERVED_SERVER_NAMES = frozenset({"images", AUTH_APP_SUFFIX})
Runtime = Literal["npm", "python", "custom"]
AutoStop = Literal["off", "stop", "suspend"]
DEFAULT_MEMORY = 512
# Guest memory (MB) of a server that drives a browser, unless its `memory` is set.
BROWSER_MEMORY = 1024


class Problem(BaseModel):
    """One thing wrong with the config: which server (None for stack keys), which field, what."""

    server: str | None
    field: str
    error: str

    def __str__(self) -> str:
        where = f"server {self.server!r}" if self.server else "stack"
        return f"{where}: {self.field}: {self.error}"


class ConfigError(CatwalkError, ValueError):
    """The stack config is invalid; `problems` lists every problem found, not just the first."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def server_names(value: Any) -> Any:
    """catwalk:deleteVolumes as written: a list, its JSON text (how Pulumi hands structured config over), or
    names separated by commas (`pulumi config set catwalk:deleteVolumes memory,git`)."""
    if isinstance(value, str):
        if value.lstrip().startswith("["):
            try:
                return json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"is not valid JSON: {exc}") from None
        return [name.strip() for name in value.split(",") if name.strip()]
    return value


class VolumeConfig(BaseModel):
    """A Fly volume for each of the server's machines, mounted at `path`: what the server writes there stays."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    path: str
    size: int = Field(default=1, ge=1, le=storage.MAX_VOLUME_GB, description="GB; it can grow, never shrink")
    encrypted: bool = True
    snapshot_retention: int | None = Field(default=None, ge=1, le=60, alias="snapshotRetention", description="days")

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        storage.check_mount_path(v)
        return v

    @field_validator("encrypted", mode="before")
    @classmethod
    def _encrypted(cls, v: Any) -> Any:
        if not isinstance(v, bool):
            raise ValueError(f"must be true or false, got {v!r}")
        return v


class FileConfig(BaseModel):
    """A small file Fly writes before the server starts: inline `content` or a `source` file next to the stack
    file; `secret` keeps its contents in Fly secrets (and out of the machine config and the plain state)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    content: str | None = Field(default=None, max_length=storage.MAX_FILE_BYTES)
    source: str | None = None
    secret: bool = False
    mode: int = storage.DEFAULT_FILE_MODE

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        storage.check_file_path(v, None)
        return v

    @field_validator("source")
    @classmethod
    def _source(cls, v: str | None) -> str | None:
        if v is not None:
            safety.check_no_control(v, "source")
            if v.startswith("/") or ".." in v.replace("\\", "/").split("/"):
                raise ValueError(f"{v!r} must be a path relative to the stack file's directory, inside it")
        return v

    @field_validator("mode", mode="before")
    @classmethod
    def _mode(cls, v: Any) -> int:
        return storage.parse_mode(v)

    @model_validator(mode="after")
    def _one_source(self) -> FileConfig:
        if (self.content is None) == (self.source is None):
            raise ValueError("set exactly one of 'content' or 'source'")
        if self.secret and self.content is not None:
            raise ValueError(
                "secret: true needs 'source': inline content is plain text in the stack file; keep the secret in "
                "a file next to it (out of version control) and name it in 'source'"
            )
        return self


class ServerConfig(BaseModel):
    """One MCP server: what to run (package or command) and how to host it on Fly."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: ServerName
    package: str | None = None
    command: str | list[str] | None = None
    runtime: Runtime | None = None
    version: str | None = None
    args: list[Arg] = Field(default_factory=list, max_length=64)
    env: dict[PlainEnvName, EnvValue] = Field(default_factory=dict)
    secrets: list[SecretEnvName] = Field(default_factory=list, max_length=64)
    regions: list[Region] | None = None
    count: int = Field(default=1, ge=1, le=10)
    size: FlySize = "shared-cpu-1x"
    memory: int = Field(
        default=DEFAULT_MEMORY,
        ge=256,
        le=65536,
        description="MB; defaults to the size's minimum, ≥512 (a server that drives a browser: ≥1024, see memory_for)",
    )
    autostop: AutoStop = "stop"
    autostart: bool = True
    # true / "bearer": the static token; "oauth": OAuth access tokens (web connectors); "both"; false: open.
    auth: bool | Literal["bearer", "oauth", "both"] = True
    # What an install does when nothing resolves even at the last widened cutoff (release + 30 days): fail
    # naming the dependency, or take the newest dependencies (not reproducible). See entrypoint.sh.
    fallback: Literal["fail", "newest"] = "fail"
    # Whether the server drives a browser (Debian's Chromium goes into its baked image); None: detected from
    # the pinned release's dependencies (playwright, puppeteer…).
    browser: bool | None = None
    # Data that survives stops, starts and deploys: a Fly volume per machine, mounted at volume.path.
    volume: VolumeConfig | None = None
    # Files written into the machine before the server starts (relative paths: its working directory).
    files: list[FileConfig] = Field(default_factory=list[FileConfig], max_length=20)
    # Whether the config set `memory` (else it is the size's default, which a browser server raises).
    _memory_given: bool = PrivateAttr(default=False)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if v in RESERVED_SERVER_NAMES:
            raise ValueError(f"{v!r} is reserved: the stack's image app is named <appPrefix>-{v}")
        return v

    @field_validator("package")
    @classmethod
    def _package(cls, v: str | None) -> str | None:
        if v is not None and parse_spec(v).kind in ("local", "github"):
            raise ValueError(
                f"{v!r} can be inspected with `infra.cli detect` but not deployed: machines install servers "
                "from PyPI or npm; publish it, or bake it into your own image and run it as a 'command'"
            )
        return v

    @field_validator("auth", mode="before")
    @classmethod
    def _auth(cls, v: Any) -> Any:
        return check_auth(v)

    @field_validator("browser", mode="before")
    @classmethod
    def _browser(cls, v: Any) -> Any:
        if v is None or isinstance(v, bool):
            return v
        raise ValueError(
            f"must be true or false (whether the server drives a browser), got {v!r}; leave it out to let "
            "detection decide from the package's dependencies"
        )

    @field_validator("browser")
    @classmethod
    def _browser_needs_package(cls, v: bool | None, info: ValidationInfo) -> bool | None:
        if v and info.data.get("command") is not None:
            raise ValueError(
                "true applies to a package (its baked image gets Chromium); a custom 'command' runs in the "
                "unified image, which has no browser"
            )
        return v

    @field_validator("command")
    @classmethod
    def _command(cls, v: str | list[str] | None) -> str | list[str] | None:
        if v is not None:
            safety.parse_command(v)
        return v

    @field_validator("version")
    @classmethod
    def _version(cls, v: str | None) -> str | None:
        if v is not None:
            safety.check_version(v)
        return v

    @field_validator("env", mode="before")
    @classmethod
    def _env_scalars(cls, v: Any) -> Any:
        # YAML turns `LOG_LEVEL: 1` or `DEBUG: true` into numbers and bools; env values are strings.
        if not isinstance(v, Mapping):
            return v
        return {
            k: json.dumps(x) if isinstance(x, bool | int | float) else x for k, x in cast(Mapping[str, Any], v).items()
        }

    @field_validator("secrets")
    @classmethod
    def _secrets(cls, v: list[str]) -> list[str]:
        reserved = {k.lower() for k in RESERVED_CONFIG_KEYS}
        aliased = sorted(n for n in v if n.lower() in reserved)
        if aliased:
            raise ValueError(f"{', '.join(aliased)} is a catwalk stack setting, not a server secret")
        dupes = sorted({n for n in v if v.count(n) > 1})
        if dupes:
            raise ValueError(f"lists {', '.join(dupes)} more than once")
        return v

    @field_validator("regions")
    @classmethod
    def _regions(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        if not v:
            raise ValueError("is empty: list at least one region, or leave it out to use catwalk:region")
        if len(set(v)) != len(v):
            raise ValueError("lists a region more than once")
        return v

    @model_validator(mode="wrap")
    @classmethod
    def _default_memory(cls, data: Any, handler: ModelWrapValidatorHandler[ServerConfig]) -> ServerConfig:
        """A bigger size needs more memory: without `memory`, take the smallest the size allows (≥512 MB)."""
        if isinstance(data, ServerConfig):
            return handler(data)
        given = not isinstance(data, Mapping) or "memory" in data
        if not given:
            fields = cast(Mapping[str, Any], data)
            if fields.get("size") in safety.FLY_SIZES:
                data = {**fields, "memory": max(DEFAULT_MEMORY, safety.memory_range(fields["size"])[0])}
        server = handler(data)
        server._memory_given = given
        return server

    @field_validator("memory")
    @classmethod
    def _memory(cls, v: int, info: ValidationInfo) -> int:
        if v % 256:
            raise ValueError(f"{v} MB is not a multiple of 256 MB")
        if "size" in info.data:
            safety.check_memory_fits(info.data["size"], v)
        return v

    @field_validator("args")
    @classmethod
    def _args_fit(cls, v: list[str]) -> list[str]:
        size = len(json.dumps(v))
        if size > safety.MAX_ENV_VALUE:
            raise ValueError(f"take {size} characters as JSON; the limit is {safety.MAX_ENV_VALUE}")
        return v

    @model_validator(mode="after")
    def _what_to_run(self) -> ServerConfig:
        if (self.package is None) == (self.command is None):
            raise ValueError("set exactly one of 'package' or 'command'")
        if self.command is not None and self.runtime not in (None, "custom"):
            raise ValueError(f"runtime {self.runtime!r} needs 'package'; a 'command' runs as runtime custom")
        if self.package is not None and self.runtime == "custom":
            raise ValueError("runtime 'custom' runs 'command', not 'package'")
        if self.version is not None and self.command is not None:
            raise ValueError("'version' applies to a package, not to a custom command")

        overlap = sorted(set(self.env) & set(self.secrets))
        if overlap:
            raise ValueError(f"{', '.join(overlap)} is both in 'env' and 'secrets'")
        mount = self.volume.path if self.volume else None
        paths = [storage.guest_path(f.path) for f in self.files]
        for f in self.files:
            try:
                storage.check_file_path(f.path, mount)
            except ValueError as exc:
                raise ValueError(f"files: {exc}") from None
        repeated = sorted({p for p in paths if paths.count(p) > 1})
        if repeated:
            raise ValueError(f"files: {', '.join(repeated)} is written more than once")
        return self

    def memory_for(self, browser: bool) -> int:
        """The guest memory (MB) of the server's machines. Chromium beside Node does not fit Fly's 512 MB
        well, so a server that drives a browser gets at least ``BROWSER_MEMORY`` unless `memory` is set."""
        if browser and not self._memory_given:
            return max(self.memory, BROWSER_MEMORY)
        return self.memory

    @property
    def auth_mode(self) -> AuthMode:
        """What the gateway accepts: `bearer`, `oauth`, `both`, or `open` (`auth: false`)."""
        return auth_mode(self.auth)

    @property
    def effective_runtime(self) -> Runtime | None:
        """The runtime when the config fixes it; None means detection decides from the registries."""
        return "custom" if self.command is not None else self.runtime


def unbaked_because(bake: bool, image: str | None) -> list[tuple[str, str]]:
    """Why a stack's servers get no baked image of their own, each reason with its fix; empty when they do."""
    reasons: list[tuple[str, str]] = []
    if not bake:
        reasons.append(("catwalk:bake is false", "set catwalk:bake to true"))
    if image is not None:
        reasons.append(("catwalk:image is set", "remove catwalk:image"))
    return reasons


class StackConfig(BaseModel):
    """All `catwalk:` keys of one stack."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    app_prefix: ServerName | None = Field(default=None, alias="appPrefix")
    # Existing Fly apps this stack may take over (they are then managed, and deleted on destroy, by it).
    adopt_apps: list[AppName] = Field(default_factory=list, alias="adoptApps", max_length=200)
    org: OrgSlug = "personal"
    region: Region = "iad"
    image: ImageRef | None = None
    fly_api_url: ApiUrl | None = Field(default=None, alias="flyApiUrl")
    bake: bool = True
    verify: bool = True
    token_rotation: str = Field(default="1", alias="tokenRotation")
    # Servers whose volumes `up` may destroy (a volume removed from config, or a removed server's). Without
    # this, `up` refuses: data is never deleted by a config slip.
    delete_volumes: list[ServerName] = Field(default_factory=list, alias="deleteVolumes")
    # Where OAuth access tokens come from for servers with auth oauth/both; absent: the built-in server.
    oauth: OAuthConfig | None = None
    servers: list[ServerConfig] = Field(default_factory=list[ServerConfig], max_length=100)
    # What a preview resolved for each server is kept in the state (components.resolution); `true` (every
    # server) or server names let this run resolve them again, to the newest release their config allows.
    upgrade: bool | list[ServerName] = False

    @field_validator("upgrade", mode="before")
    @classmethod
    def _upgrade(cls, v: Any) -> Any:
        if isinstance(v, str) and v.strip().lower() in ("true", "false"):
            return v.strip().lower() == "true"
        return server_names(v)

    @field_validator("upgrade")
    @classmethod
    def _upgrade_names(cls, v: bool | list[str], info: ValidationInfo) -> bool | list[str]:
        servers = [s.name for s in info.data.get("servers", [])]
        unknown = [n for n in v if n not in servers] if isinstance(v, list) else []
        if unknown and "servers" in info.data:
            known = ", ".join(servers) or "none"
            raise ValueError(f"names no server of this stack: {', '.join(unknown)} (servers: {known})")
        return v

    def upgrades(self, server: str) -> bool:
        """Whether `catwalk:upgrade` asks this run to resolve `server` again instead of reusing the state's."""
        return self.upgrade is True or (isinstance(self.upgrade, list) and server in self.upgrade)

    @field_validator("oauth", mode="before")
    @classmethod
    def _oauth(cls, v: Any) -> Any:
        return parse_oauth(v)

    @field_validator("delete_volumes", mode="before")
    @classmethod
    def _delete_volumes(cls, v: Any) -> Any:
        return server_names(v)

    @field_validator("token_rotation", mode="before")
    @classmethod
    def _rotation(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) else v

    @field_validator("servers")
    @classmethod
    def _unique_names(cls, servers: list[ServerConfig], info: ValidationInfo) -> list[ServerConfig]:
        names = [s.name for s in servers]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"server names must be unique; repeated: {', '.join(dupes)}")
        unbaked = unbaked_because(info.data.get("bake", True), info.data.get("image"))
        browsers = [s.name for s in servers if s.browser]
        if browsers and unbaked:
            raise ValueError(
                f"browser: true ({', '.join(browsers)}) needs the server's baked image, which gets Chromium, but "
                f"{unbaked[0][0]}: the unified image has no browser"
            )
        return servers

    def oauth_servers(self) -> list[ServerConfig]:
        """The servers that accept OAuth access tokens (auth oauth or both)."""
        return [s for s in self.servers if s.auth_mode in OAUTH_MODES]

    @property
    def oauth_source(self) -> OAuthConfig | None:
        """Where the OAuth servers' tokens come from (`catwalk:oauth`, else the built-in server); None when no
        server uses OAuth."""
        if not self.oauth_servers():
            return None
        return self.oauth or BUILTIN_OAUTH

    @property
    def builtin_auth(self) -> bool:
        """Whether the stack deploys its own authorization server: a server uses OAuth, no issuer is set."""
        source = self.oauth_source
        return source is not None and source.builtin

    def oauth_warnings(self) -> list[Problem]:
        """OAuth settings that run but do nothing: an identity provider no server uses."""
        if self.oauth is not None and not self.oauth_servers():
            return [
                Problem(
                    server=None,
                    field="oauth",
                    error="no server has auth 'oauth' or 'both', so no gateway accepts these tokens; set a "
                    "server's auth to use it",
                )
            ]
        return []

    def regions_of(self, server: ServerConfig) -> list[str]:
        return list(server.regions or [self.region])

    def prefix(self, stack: str, stack_id: str) -> str:
        """`appPrefix` as written, else `catwalk-<stack>-<stack id>`: Fly app names are global, so the
        default carries the stack's random id (kept in its state) and a copied stack file works for anyone."""
        return self.app_prefix or f"catwalk-{stack}-{stack_id}"

    def app_name(self, server: ServerConfig, stack: str, stack_id: str) -> str:
        """The Fly app of a server: `<prefix>-<server>`."""
        return f"{self.prefix(stack, stack_id)}-{server.name}"

    def long_app_names(self, stack: str, id_length: int) -> list[Problem]:
        """App names that would exceed Fly's limit once the stack id is known (checked before anything exists)."""
        problems: list[Problem] = []
        for name in [*(s.name for s in self.servers), *RESERVED_SERVER_NAMES]:
            app = f"{self.prefix(stack, 'x' * id_length)}-{name}"
            try:
                safety.check_app_name(app)
            except ValueError as exc:
                shown = str(exc).replace("x" * id_length, "<stack id>")
                server = None if name in RESERVED_SERVER_NAMES else name
                problems.append(Problem(server=server, field="appPrefix" if self.app_prefix else "name", error=shown))
        return problems


STACK_KEYS = {f.alias or name for name, f in StackConfig.model_fields.items()}
# Stack keys read as settings or by the providers: a secret env name must not alias one of them, or the
# shared-secret lookup `catwalk:<NAME>` would hand e.g. the Fly token to a server.
RESERVED_CONFIG_KEYS = frozenset(STACK_KEYS | {FLY_TOKEN_KEY, PASSPHRASE_KEY})
# The fully qualified keys the providers read: the Fly token (also under the Fly provider's own key), the API URL.
TOKEN_CONFIG_KEYS = (f"{NAMESPACE}:{FLY_TOKEN_KEY}", "fly:apiToken")
URL_CONFIG_KEYS = (f"{NAMESPACE}:{StackConfig.model_fields['fly_api_url'].alias}",)
# Read by the volume and machine providers at delete / unmount time: a removed server is no longer in the program.
DELETE_VOLUMES_KEY = f"{NAMESPACE}:{StackConfig.model_fields['delete_volumes'].alias}"


def _field_names(loc: list[Any]) -> list[str]:
    """The keys valid where an unknown one was found (a server, its volume or one of its files)."""
    model: type[BaseModel] = ServerConfig
    if loc[:1] == ["oauth"]:
        model = OAuthConfig
    elif loc[:1] == ["volume"]:
        model = VolumeConfig
    elif loc[:1] == ["files"]:
        model = FileConfig
    return [f.alias or name for name, f in model.model_fields.items()]


def _problems(exc: ValidationError, raw_servers: Any) -> list[Problem]:
    problems: list[Problem] = []
    for err in exc.errors():
        loc = list(err["loc"])
        server = None
        if loc[:1] == ["servers"] and len(loc) > 1 and isinstance(loc[1], int):
            index = loc[1]
            entries = cast(list[Any], raw_servers) if isinstance(raw_servers, list) else []
            entry = entries[index] if index < len(entries) else None
            name = cast(dict[str, Any], entry).get("name") if isinstance(entry, dict) else None
            server = name if isinstance(name, str) and name else f"#{index + 1}"
            loc = loc[2:]
        field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc if p != "[key]")
        field = field.lstrip(".") or "(server)"
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            valid = _field_names(loc) if server or loc[:1] == ["oauth"] else STACK_KEYS
            close = difflib.get_close_matches(str(loc[-1]), list(valid), n=1)
            message = "unknown field" + (f"; did you mean {close[0]!r}?" if close else "")
        problems.append(Problem(server=server, field=field, error=message))
    return problems


def parse_stack(values: Mapping[str, Any], secret_keys: set[str] | frozenset[str] = frozenset()) -> StackConfig:
    """Build the model from `catwalk:` keys (namespace already stripped), collecting every problem.

    ``secret_keys`` are the keys that hold Pulumi secrets. A stack setting among them is used like any
    other: Pulumi marks a whole key secret when one nested value is (`pulumi config set --secret --path
    'catwalk:servers[0].env.X'`), so skipping it would read `servers` as empty and plan to delete every
    server. Other secret keys are secret *values* for servers, not settings, so they are skipped here.
    """
    raw = {k: v for k, v in values.items() if k not in secret_keys or k in STACK_KEYS}
    plain_secrets = [
        Problem(server=None, field=key, error=f"must be a secret: run {how}")
        for key, how in (
            (FLY_TOKEN_KEY, "`pulumi config set --secret catwalk:flyApiToken <token>` (or use FLY_API_TOKEN)"),
            (PASSPHRASE_KEY, f"`pulumi config set --secret catwalk:{PASSPHRASE_KEY} <passphrase>`"),
        )
        if key in raw  # read apart from the model (the providers, the built-in server); never plain config
    ]
    if plain_secrets:
        raise ConfigError(plain_secrets)
    for key in ("servers", "adoptApps"):
        if isinstance(raw.get(key), str):  # Pulumi hands structured config to programs as JSON text
            try:
                raw[key] = json.loads(raw[key])
            except json.JSONDecodeError as exc:
                raise ConfigError([Problem(server=None, field=key, error=f"is not valid JSON: {exc}")]) from None
    try:
        stack = StackConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_problems(exc, raw.get("servers"))) from None
    return stack


def missing_secrets(
    stack: StackConfig, secret_keys: set[str] | frozenset[str], values: Mapping[str, Any] | None = None
) -> list[Problem]:
    """Secrets a server lists whose value is not set (as `<server>.<NAME>` or `<NAME>`), and the built-in
    authorization server's passphrase when it is deployed (checked for length where ``values`` holds it)."""
    problems: list[Problem] = []
    if stack.builtin_auth:
        users = ", ".join(s.name for s in stack.oauth_servers())
        passphrase = (values or {}).get(PASSPHRASE_KEY)
        if PASSPHRASE_KEY not in secret_keys:
            problems.append(
                Problem(
                    server=None,
                    field=PASSPHRASE_KEY,
                    error=f"has no value, and the built-in authorization server ({users} use OAuth with no "
                    f"catwalk:oauth issuer) admits the operator by it: run `pulumi config set --secret "
                    f"catwalk:{PASSPHRASE_KEY} <passphrase>`",
                )
            )
        elif isinstance(passphrase, str) and len(passphrase) < MIN_PASSPHRASE:
            problems.append(
                Problem(
                    server=None,
                    field=PASSPHRASE_KEY,
                    error=f"is shorter than {MIN_PASSPHRASE} characters: anyone who guesses it can mint tokens "
                    "for every OAuth server of the stack",
                )
            )
    for server in stack.servers:
        for name in server.secrets:
            if f"{server.name}.{name}" not in secret_keys and name not in secret_keys:
                problems.append(
                    Problem(
                        server=server.name,
                        field=f"secrets.{name}",
                        error=f"has no value: run `pulumi config set --secret {server.name}.{name} <value>`",
                    )
                )
    return problems


# What an encrypted value nested in a setting is checked as offline: a plain string that passes as an env
# value or an arg, which is where a secret nested in `servers` belongs.
SECURE_PLACEHOLDER = "[secret]"
ENCRYPTED_SETTING = (
    "is encrypted as a whole, and `validate` cannot decrypt it offline: `pulumi preview` checks it; "
    "to hide one value, encrypt only that one (`pulumi config set --secret --path 'catwalk:servers[0].env.NAME'`)"
)


def _is_secure(value: Any) -> bool:
    return isinstance(value, dict) and set(cast(dict[str, Any], value)) == {"secure"}


def _without_secure(value: Any) -> Any:
    """The value with every nested `{secure: …}` replaced by a placeholder string the model accepts."""
    if _is_secure(value):
        return SECURE_PLACEHOLDER
    if isinstance(value, dict):
        return {k: _without_secure(v) for k, v in cast(dict[str, Any], value).items()}
    if isinstance(value, list):
        return [_without_secure(v) for v in cast(list[Any], value)]
    return value


def load_stack_file(path: str | Path) -> StackConfig:
    """Read `Pulumi.<stack>.yaml` and validate its `catwalk:` keys; secrets must have values set."""
    path = Path(path)
    try:
        document: Any = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError([Problem(server=None, field=str(path), error=f"cannot be read: {exc}")]) from None
    config: Any = cast(dict[str, Any], document).get("config") or {} if isinstance(document, dict) else {}
    if not isinstance(config, dict):
        raise ConfigError([Problem(server=None, field="config", error="is not a map")])
    config = cast(dict[str, Any], config)
    values: dict[str, Any] = {}
    secret_keys: set[str] = set()
    encrypted: list[Problem] = []
    for key, value in config.items():
        namespace, _, name = str(key).partition(":")
        if namespace != NAMESPACE or not name:
            continue
        if _is_secure(value):
            secret_keys.add(name)
            if name in STACK_KEYS:  # a setting we cannot read offline must not be checked as absent
                encrypted.append(Problem(server=None, field=name, error=ENCRYPTED_SETTING))
            values[name] = value
            continue
        checkable = _without_secure(value)
        if checkable != value:  # `pulumi config set --secret --path`: the whole key is secret
            secret_keys.add(name)
        values[name] = checkable
    if encrypted:
        raise ConfigError(encrypted)
    stack = parse_stack(values, secret_keys)
    problems = missing_secrets(stack, secret_keys)
    _, unreadable = storage.read_sources(stack.servers, path.parent)
    problems += [Problem(server=server, field=field, error=error) for server, field, error in unreadable]
    if problems:
        raise ConfigError(problems)
    return stack
