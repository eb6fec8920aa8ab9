"""AuthServer: the stack's built-in OAuth authorization server, one Fly app serving every OAuth server.

Deployed when a server's `auth` is `oauth` or `both` and `catwalk:oauth` names no identity provider. It runs
the runtime image's `entrypoint.sh authserver` (catwalk_runtime.authserver; docs/authorization-server.md)
on one machine, with a small volume for its registered clients and refresh tokens, and admits the operator
by the `catwalk:oauthPassphrase` secret. Its signing key derives from a random seed kept as a Pulumi secret
that changes with `catwalk:tokenRotation`, like every bearer token: rotating it ends every issued token.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import pulumi
import pulumi_random

from catwalk_runtime import contract
from components.apps import stack_app
from components.auth import AUTH_APP_SUFFIX, AUTH_STATE_PATH
from components.config import StackConfig
from components.providers.ip import FlyIp
from components.providers.machine import FlyMachine
from components.providers.secrets import FlySecrets
from components.providers.volume import FlyVolume

SEED_LENGTH = 64  # characters of the signing seed (the server needs at least contract.AS_SEED_MIN)
AUTHSERVER_CMD = ["authserver"]  # the image entrypoint's action


def issuer_url(app: str) -> str:
    """The built-in server's public origin: the `iss` of its tokens, and where clients find its metadata."""
    return f"https://{app}.fly.dev"


def authserver_env(issuer: str, resources: Sequence[str], scopes: Sequence[str]) -> dict[str, str]:
    """The machine env (no secrets): who it is, which servers it mints tokens for, where its state lives."""
    return {
        contract.AS_ISSUER: issuer,
        contract.AS_RESOURCES: json.dumps(sorted(resources)),
        contract.AS_SCOPES: " ".join(scopes),
        contract.AS_STATE: AUTH_STATE_PATH,
        "MCP_VOLUME_PATH": AUTH_STATE_PATH,  # the entrypoint hands the mount to the image's user
    }


class AuthServer(pulumi.ComponentResource):
    """The built-in authorization server's Fly resources; ``issuer`` is its public URL.

    Two steps, since each side needs the other's URL: the app (hence ``issuer``) first, for the servers'
    gateways to trust; then :meth:`serve` with the servers' URLs (from their apps' names) starts the machine.
    """

    def __init__(
        self,
        name: str,
        *,
        stack: StackConfig,
        stack_name: str,
        owner: pulumi.Input[str],
        app_name: pulumi.Output[str],
        image: pulumi.Input[str],
        passphrase: pulumi.Output[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("catwalk:index:AuthServer", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        source = stack.oauth_source
        scopes = source.effective_scopes if source is not None else ()
        app = stack_app(name, name=app_name, stack=stack, stack_name=stack_name, owner=owner, opts=child)
        seed = pulumi_random.RandomPassword(
            f"{name}-signing-seed",
            length=SEED_LENGTH,
            special=False,
            keepers={"rotation": stack.token_rotation},
            opts=child,
        )
        secrets = FlySecrets(
            f"{name}-secrets",
            app=app.app_id,
            values={
                contract.AS_SIGNING_SEED: pulumi.Output.secret(seed.result),
                contract.AS_PASSPHRASE: pulumi.Output.secret(passphrase),
            },
            opts=child,
        )
        FlyIp(f"{name}-ipv4", app=app.app_id, type="shared_v4", opts=child)
        FlyIp(f"{name}-ipv6", app=app.app_id, type="v6", opts=child)
        volume = FlyVolume(
            f"{name}-volume-{stack.region}-0",
            app=app.app_id,
            stack=stack_name,
            server=AUTH_APP_SUFFIX,
            region=stack.region,
            index=0,
            size_gb=1,
            encrypted=True,
            snapshot_retention=None,
            opts=child,
        )
        self.issuer: pulumi.Output[str] = app.name.apply(issuer_url)
        self.app = app.app_id
        self._name, self._stack, self._stack_name, self._owner = name, stack, stack_name, owner
        self._image, self._scopes, self._secrets, self._volume = image, scopes, secrets, volume
        self.register_outputs({"issuer": self.issuer})

    def serve(self, resources: Sequence[pulumi.Output[str]]) -> FlyMachine:
        """The machine, minting tokens for ``resources`` (the OAuth servers' `https://<app>.fly.dev/mcp`)."""
        env = pulumi.Output.all(self.issuer, *resources).apply(
            lambda values: authserver_env(values[0], values[1:], self._scopes)
        )
        region = self._stack.region
        return FlyMachine(
            f"{self._name}-{region}-0",
            app=self.app,
            stack=self._stack_name,
            owner=self._owner,
            server=AUTH_APP_SUFFIX,
            region=region,
            index=0,
            image=self._image,
            env=env,
            autostop="stop",
            autostart=True,
            secrets_version=self._secrets.version,
            mounts=[{"volume": self._volume.volume_id, "path": AUTH_STATE_PATH}],
            cmd=AUTHSERVER_CMD,
            opts=pulumi.ResourceOptions(parent=self),
        )
