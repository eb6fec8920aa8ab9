"""McpServer: one MCP server from stack config to an authenticated URL.

server config → detection result → image (baked or shared) → Fly app, secrets (bearer token included),
public IPs, one machine (and with `volume`, one Fly volume it mounts) per (region, index) → an MCP handshake
through the public URL. Every child is parented to the component, so `pulumi preview` groups a server's
changes under its name.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable, Mapping, Sequence

import pulumi
import pulumi_random

from catwalk_runtime import contract
from components.apps import stack_app
from components.auth import OAUTH_MODES, gateway_env
from components.config import ServerConfig, StackConfig
from components.detect.models import RuntimeSpec
from components.image import BakedImage, baked_from_spec
from components.providers.ip import FlyIp
from components.providers.machine import FlyMachine, rolling_predecessor
from components.providers.secrets import FlySecrets
from components.providers.volume import FlyVolume
from components.storage import render_files
from components.verify import McpCheck

BADGES = {"npm": "📦 npm", "python": "🐍 python", "custom": "⚙️ custom"}
TOKEN_ENV = "MCP_AUTH_TOKEN"
VOLUME_ENV = "MCP_VOLUME_PATH"
# The machine env that comes from what the user wrote (besides `env`): kept out of the machine config when
# the server's config is secret.
USER_ENV = ("MCP_ARGS", "MCP_COMMAND")


def split_env(env: Mapping[str, object], user_names: Iterable[str], config_secret: bool) -> tuple[dict, dict]:
    """(machine env, Fly secrets): with a secret config, whatever the user wrote moves to the secrets.

    Fly hands app secrets to the process as env at boot, so the server sees the same variables either way;
    only the machine config (and the state's plain inputs) no longer hold them.
    """
    if not config_secret:
        return dict(env), {}
    moved = set(user_names) | set(USER_ENV)
    return {k: v for k, v in env.items() if k not in moved}, {k: v for k, v in env.items() if k in moved}


def newest_fallback_env(server: ServerConfig) -> dict[str, str]:
    """`fallback: newest` said to an install at boot (a baked image's build gets it in its Dockerfile)."""
    return {contract.CUTOFF_FALLBACK: contract.CUTOFF_FALLBACK_NONE} if server.fallback == "newest" else {}


def public_url(app: str, path: str = "/mcp") -> str:
    return f"https://{app}.fly.dev{path}"


def client_configs(name: str, url: str, token: str | None) -> dict[str, str]:
    """Ready-to-paste configs for Claude Code, Cursor and VS Code (they carry the token: keep secret)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    claude = ["claude", "mcp", "add", "--transport", "http", name, url]
    for key, value in headers.items():
        claude += ["--header", f"{key}: {value}"]
    cursor = {"mcpServers": {name: {"url": url, **({"headers": headers} if headers else {})}}}
    vscode = {"servers": {name: {"type": "http", "url": url, **({"headers": headers} if headers else {})}}}
    return {
        "claude_code": shlex.join(claude),
        "cursor": json.dumps(cursor, indent=2),
        "vscode": json.dumps(vscode, indent=2),
    }


class McpServer(pulumi.ComponentResource):
    """The Fly resources of one MCP server; `outputs` is what the stack exports for it."""

    def __init__(
        self,
        name: str,
        *,
        server: ServerConfig,
        stack: StackConfig,
        stack_name: str,
        owner: pulumi.Input[str],
        app_name: pulumi.Output[str],
        spec: RuntimeSpec,
        base_image: pulumi.Input[str],
        secret_values: Mapping[str, pulumi.Input[str]],
        issuer: pulumi.Input[str] | None = None,
        config_secret: bool = False,
        file_contents: Mapping[int, bytes] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("catwalk:index:McpServer", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        app = stack_app(name, name=app_name, stack=stack, stack_name=stack_name, owner=owner, opts=child)
        app_ref = app.app_id
        url = app.name.apply(public_url)
        self.url = url  # the canonical URL: what the built-in authorization server mints tokens for
        mode = server.auth_mode
        auth_env = gateway_env(mode, stack.oauth_source, url, issuer)

        env, hidden = split_env(
            {**server.env, **spec.env(), **auth_env, **newest_fallback_env(server)},
            server.env,
            config_secret,
        )
        files, file_secrets = render_files(server.files, file_contents or {}, all_secret=config_secret)
        values: dict[str, pulumi.Input[str]] = {**hidden, **file_secrets, **secret_values}
        token: pulumi.Output[str] | None = None
        if mode != "open":  # with `oauth` alone too: the gateway starts only with a token or the explicit opt-out
            password = pulumi_random.RandomPassword(
                f"{name}-token",
                length=43,
                special=False,
                keepers={"rotation": stack.token_rotation},
                opts=child,
            )
            token = pulumi.Output.secret(password.result)
            values[TOKEN_ENV] = token
        # Always present, even empty: turning auth off must unset MCP_AUTH_TOKEN *before* the machines
        # update to the new secrets version, which a deleted resource would only do after them.
        secrets = FlySecrets(f"{name}-secrets", app=app_ref, values=values, opts=child)

        FlyIp(f"{name}-ipv4", app=app_ref, type="shared_v4", opts=child)
        FlyIp(f"{name}-ipv6", app=app_ref, type="v6", opts=child)

        image: pulumi.Input[str] = base_image
        if stack.bake and stack.image is None and spec.runtime in ("npm", "python"):
            baked = BakedImage(
                f"{name}-image",
                app=app_ref,
                base=base_image,
                newest_fallback=server.fallback == "newest",
                opts=child,
                **baked_from_spec(spec),
            )
            image = baked.image_ref

        volumes: dict[tuple[str, int], FlyVolume] = {}
        if server.volume is not None:
            for region in stack.regions_of(server):
                for index in range(server.count):
                    volumes[region, index] = FlyVolume(
                        f"{name}-volume-{region}-{index}",
                        app=app_ref,
                        stack=stack_name,
                        server=server.name,
                        region=region,
                        index=index,
                        size_gb=server.volume.size,
                        encrypted=server.volume.encrypted,
                        snapshot_retention=server.volume.snapshot_retention,
                        opts=child,
                    )
        mount_path = server.volume.path if server.volume is not None else ""
        if mount_path:
            env[VOLUME_ENV] = mount_path  # the entrypoint makes it writable by the image's user

        places = [(region, index) for region in stack.regions_of(server) for index in range(server.count)]
        machines: list[FlyMachine] = []
        for region, index in places:  # each after its predecessor: the engine rolls an update through them
            before = rolling_predecessor(len(machines), len(places))
            machine = FlyMachine(
                f"{name}-{region}-{index}",
                app=app_ref,
                stack=stack_name,
                owner=owner,
                server=server.name,
                region=region,
                index=index,
                image=image,
                env=env,
                size=server.size,
                memory=server.memory_for(spec.browser is not None),
                autostop=server.autostop,
                autostart=server.autostart,
                secrets_version=secrets.version,
                mounts=[{"volume": volumes[region, index].volume_id, "path": mount_path}]
                if (region, index) in volumes
                else [],
                files=files,
                opts=child if before is None else pulumi.ResourceOptions(parent=self, depends_on=[machines[before]]),
            )
            machines.append(machine)

        # The token a client may send: none with `oauth` alone (the gateway accepts only access tokens then).
        client_token = token if mode in ("bearer", "both") else None
        self._check = (name, url, app_ref, server.name, client_token, issuer if mode in OAUTH_MODES else None)
        self._machines, self._verify = machines, stack.verify

        def hide(value: object) -> object:
            """A custom command is the user's text: secret in the outputs when the config is."""
            return pulumi.Output.secret(value) if config_secret and spec.runtime == "custom" else value

        configs = (
            pulumi.Output.all(url, client_token).apply(lambda ut: client_configs(server.name, ut[0], ut[1]))
            if client_token is not None
            else url.apply(lambda u: client_configs(server.name, u, None))
        )
        self.outputs: dict[str, object] = {
            "app": app_ref,
            "url": url,
            "sse_url": app.name.apply(lambda n: public_url(n, "/sse")),
            "runtime": spec.runtime,
            "badge": BADGES[spec.runtime],
            "package": hide(spec.package or spec.command),
            "version": spec.version,
            "launch": hide(spec.launch),
            "regions": stack.regions_of(server),
            "machines": [m.machine_id for m in machines],
            "volumes": [v.volume_id for v in volumes.values()],
            "auth": mode,
            # What to paste into claude.ai (Settings → Connectors) or ChatGPT: they cannot send a static header.
            "connector_url": url if mode != "bearer" else None,
            "authorization_server": issuer if mode in OAUTH_MODES else None,
            "token": client_token,
            "clients": configs,
        }
        self.register_outputs({"url": url})

    def verify(self, after: Sequence[pulumi.Resource] = ()) -> McpCheck | None:
        """The MCP check through the public URL (unless catwalk:verify is off), once the server's machines and
        ``after`` (the built-in authorization server's machine, which an OAuth server's check reaches) exist."""
        if not self._verify:
            return None
        name, url, app, server, token, issuer = self._check
        revision = pulumi.Output.all(*[m.version for m in self._machines]).apply(
            lambda versions: ",".join(str(v) for v in versions)
        )
        return McpCheck(
            f"{name}-check",
            url=url,
            app=app,
            server=server,
            revision=revision,
            token=token,
            issuer=issuer,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*self._machines, *(after if issuer else ())]),
        )
