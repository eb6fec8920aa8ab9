"""The Pulumi program: stack config in, one McpServer per server, MCP URLs and client configs out.

Order of work: validate every `catwalk:` key (fail before any resource), detect every server's runtime
concurrently (fail listing every spec that does not resolve), build or reference the unified image once,
then one McpServer per server. Runs the same under the engine and under `pulumi.runtime.set_mocks`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pulumi
import pulumi_random

from components import resolution, storage
from components.apps import stack_app
from components.auth import AUTH_APP_SUFFIX, OAUTH_MODES, PASSPHRASE_KEY
from components.authserver import AuthServer
from components.config import (
    NAMESPACE,
    ConfigError,
    ServerConfig,
    StackConfig,
    missing_secrets,
    parse_stack,
    unbaked_because,
)
from components.detect import DetectError, RegistryError, RuntimeSpec, detect_many
from components.image import UnifiedImage
from components.providers.resolution import Resolution
from components.server import McpServer

STACK_ID_LENGTH = 8


def read_config() -> tuple[dict[str, Any], set[str]]:
    """Every `catwalk:` key with its value, and the keys that hold secrets.

    The SDK has no public call listing all keys; its runtime config map is read so that a mistyped key
    (`catwalk:regoin`) fails the preview instead of being silently ignored.
    """
    from pulumi.runtime import config as runtime_config

    merged = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    secret_keys = set(runtime_config.get_config_secret_keys_env()) | set(runtime_config._SECRET_KEYS.get())
    prefix = f"{NAMESPACE}:"
    values = {k.removeprefix(prefix): v for k, v in merged.items() if k.startswith(prefix)}
    secrets = {k.removeprefix(prefix) for k in secret_keys if k.startswith(prefix)}
    return values, secrets


def load_stack() -> tuple[StackConfig, set[str]]:
    values, secret_keys = read_config()
    try:
        stack = parse_stack(values, secret_keys)
        problems = missing_secrets(stack, secret_keys, values)
        problems += stack.long_app_names(pulumi.get_stack(), STACK_ID_LENGTH)
        if problems:
            raise ConfigError(problems)
    except ConfigError as exc:
        raise pulumi.RunError(f"invalid catwalk stack config:\n{exc}") from None
    return stack, secret_keys


def detect_all(servers: list[ServerConfig]) -> tuple[dict[str, RuntimeSpec], dict[str, str]]:
    """Resolve every server at once (`detect_many`, bounded threads); report every failure together.

    A registry that did not answer is not a verdict on the spec: those servers come back apart (name →
    error), for `lock_resolutions` to run on what their state holds, or to fail then.
    """
    results = dict(zip([s.name for s in servers], detect_many(servers), strict=True))
    failed = {name: r for name, r in results.items() if isinstance(r, DetectError)}
    if any(not isinstance(e.__cause__, RegistryError) for e in failed.values()):
        errors = [f"server {name!r}: package: {e}" for name, e in failed.items()]
        raise pulumi.RunError("cannot resolve what to run:\n" + "\n".join(errors))
    specs = {name: r for name, r in results.items() if not isinstance(r, DetectError)}
    return specs, {name: str(e) for name, e in failed.items()}


def lock_resolutions(
    stack: StackConfig, specs: dict[str, RuntimeSpec], unreachable: dict[str, str] | None = None
) -> dict[str, RuntimeSpec]:
    """What each server runs: the resolution its state holds, unless its package config changed or
    `catwalk:upgrade` names it (components.resolution); today's detection otherwise only fills a new one.
    A server whose registry did not answer (`unreachable`) runs on what its state holds, or fails.

    The program needs plain values (whether to bake, the machine env), so it waits here for the Resolution
    resources, as an invoke would. A value the engine does not know yet in a preview is today's detection,
    which is what such a resolution is about to hold.
    """
    from pulumi.runtime.sync_await import _sync_await

    unreachable = unreachable or {}
    resources = {
        server.name: Resolution(
            f"{server.name}-resolution",
            server=server.name,
            request=resolution.request_of(server),
            resolved=resolution.stored(specs[server.name]) if server.name in specs else {},
            upgrade=stack.upgrades(server.name),
            unreachable=unreachable.get(server.name),
        )
        for server in stack.servers
        if server.name in unreachable or specs[server.name].runtime != "custom"  # a command: nothing to resolve
    }
    locked = dict(specs)
    for server in stack.servers:
        if server.name not in resources:
            continue
        resource = resources[server.name]
        # Awaited one by one: a preview leaves an output the provider did not return unknown (None here).
        held: dict[str, Any] | None = _sync_await(resource.resolved.future())
        moved: str | None = _sync_await(resource.moved_from.future())
        if held:
            locked[server.name] = resolution.restored(held, list(server.args))
        elif server.name not in specs:
            raise pulumi.RunError(
                f"cannot resolve what to run:\nserver {server.name!r}: package: {unreachable[server.name]}"
            )
        if moved:
            why = "catwalk:upgrade" if stack.upgrades(server.name) else "its package config changed"
            pulumi.log.info(f"{server.name}: {moved} → {resolution.shown(held)} ({why})")
    return locked


def refuse_unbaked_browsers(stack: StackConfig, specs: dict[str, RuntimeSpec]) -> None:
    """Fail before any resource when detection finds a browser server that would not be baked.

    Only a server's baked image gets Chromium; on the unified or a prebuilt image its entrypoint would refuse
    to start. (`browser: true` in the config is refused with the config itself; this is detection's finding.)
    """
    unbaked = unbaked_because(stack.bake, stack.image)
    needs = {name: spec for name, spec in specs.items() if spec.browser}
    if not unbaked or not needs:
        return
    reasons, fixes = (" and ".join(part) for part in zip(*unbaked, strict=True))
    lines = []
    for name, spec in needs.items():
        found = next((e for e in spec.evidence if e.startswith("needs a browser")), f"needs a browser: {spec.browser}")
        lines.append(
            f"server {name!r} {found}, but {reasons}: only a server's baked image gets Chromium. "
            f"Bake it ({fixes}), or set `browser: false` on {name!r} if you know its tools run "
            "without one"
        )
    raise pulumi.RunError("servers that drive a browser need a baked image:\n" + "\n".join(lines))


def secret_values(server: ServerConfig, secret_keys: set[str]) -> dict[str, pulumi.Output[str]]:
    """`<server>.<NAME>` wins over a shared `<NAME>`; both are Pulumi secrets, never plain text."""
    config = pulumi.Config(NAMESPACE)
    values = {}
    for name in server.secrets:
        key = f"{server.name}.{name}" if f"{server.name}.{name}" in secret_keys else name
        values[name] = config.require_secret(key)
    return values


def read_files(stack: StackConfig) -> storage.Contents:
    """Every server's `files`, read before any resource; a `source` is next to the stack file (the project
    directory, where Pulumi.yaml and the stack files are)."""
    contents, problems = storage.read_sources(stack.servers, Path(pulumi.get_root_directory()))
    if problems:
        lines = "\n".join(f"server {server!r}: {field}: {error}" for server, field, error in problems)
        raise pulumi.RunError(f"invalid catwalk stack config:\n{lines}")
    return contents


def builtin_authorization_server(
    stack: StackConfig,
    stack_name: str,
    owner: pulumi.Output[str],
    app_name: Callable[[str], pulumi.Output[str]],
    image: pulumi.Input[str],
) -> AuthServer | None:
    """The stack's own authorization server (app `<appPrefix>-auth`) when a server uses OAuth and
    `catwalk:oauth` names no identity provider; its machine starts once the servers' URLs are known."""
    if not stack.builtin_auth:
        return None
    server = AuthServer(
        AUTH_APP_SUFFIX,
        stack=stack,
        stack_name=stack_name,
        owner=owner,
        app_name=app_name(AUTH_APP_SUFFIX),
        image=image,
        passphrase=pulumi.Config(NAMESPACE).require_secret(PASSPHRASE_KEY),
    )
    pulumi.export("authorization_server", {"app": server.app, "issuer": server.issuer})
    return server


def main() -> None:
    stack_name = pulumi.get_stack()
    stack, secret_keys = load_stack()
    # Pulumi encrypts the whole `servers` key when one value in it is secret, without saying which one:
    # every value of it that would reach the machine config (env, args, command) then goes to Fly secrets.
    servers_secret = "servers" in secret_keys
    specs = lock_resolutions(stack, *detect_all(list(stack.servers)))
    for server in stack.servers:
        spec = specs[server.name]
        what = spec.pinned or ("a custom command" if servers_secret else spec.command)
        pulumi.log.info(f"{server.name}: {spec.runtime} {what} ({'; '.join(spec.evidence)})")
    refuse_unbaked_browsers(stack, specs)
    contents = read_files(stack)
    for server in stack.servers:
        for field, warning in storage.warnings(server):
            pulumi.log.warn(f"server {server.name!r}: {field}: {warning}")
    for warning in stack.oauth_warnings():
        pulumi.log.warn(str(warning))

    # The stack's identity on Fly (components.providers.ownership): random, kept in the state, never replaced.
    owner = pulumi_random.RandomString("stack-id", length=STACK_ID_LENGTH, upper=False, special=False).result

    def app_name(name: str) -> pulumi.Output[str]:
        if stack.app_prefix:  # known at the first preview, so it can check who holds the name
            return pulumi.Output.from_input(f"{stack.app_prefix}-{name}")
        return owner.apply(lambda stack_id: f"{stack.prefix(stack_name, stack_id)}-{name}")

    if not stack.servers:
        return
    if stack.image is not None:
        base_image: pulumi.Input[str] = stack.image
    else:
        images_app = stack_app("images", name=app_name("images"), stack=stack, stack_name=stack_name, owner=owner)
        base_image = UnifiedImage("unified", app=images_app.app_id).image_ref
    builtin = builtin_authorization_server(stack, stack_name, owner, app_name, base_image)
    source = stack.oauth_source
    issuer = builtin.issuer if builtin is not None else source.issuer if source is not None else None
    oauth_urls: list[pulumi.Output[str]] = []
    components: list[McpServer] = []

    for server in stack.servers:
        component = McpServer(
            server.name,
            server=server,
            stack=stack,
            stack_name=stack_name,
            owner=owner,
            app_name=app_name(server.name),
            spec=specs[server.name],
            base_image=base_image,
            secret_values=secret_values(server, secret_keys),
            issuer=issuer,
            config_secret=servers_secret,
            file_contents=contents[server.name],
        )
        pulumi.export(server.name, component.outputs)
        components.append(component)
        if server.auth_mode in OAUTH_MODES:
            oauth_urls.append(component.url)
    after = [builtin.serve(oauth_urls)] if builtin is not None else []
    for component in components:
        component.verify(after)
