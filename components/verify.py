"""McpCheck: after the machines start, prove the server answers MCP through its public URL.

A dynamic resource rather than a post-`up` script so that a server which does not answer fails the
update itself: `pulumi up` never reports success for a broken server. It re-runs whenever a machine's
version changes (its `revision` input), and makes no call during preview.
"""

from __future__ import annotations

import os
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, UpdateResult
from pydantic import BaseModel, Field

from components.providers.base import Provider, ProviderError

DEFAULT_DEADLINE_S = 180.0


def _machines_report(provider: Provider, app: str) -> str:
    """Each machine's state and last events: what Fly saw when the server did not answer."""
    try:
        with provider.client() as client:
            machines = client.list_machines(app)
    except Exception as exc:  # the report is a hint; the handshake error is the real failure
        return f"(could not list machines of {app}: {type(exc).__name__})"
    lines = []
    for m in machines:
        data = m.model_dump() if hasattr(m, "model_dump") else dict(m)
        events = sorted(data.get("events") or [], key=lambda e: e.get("timestamp") or 0)[-5:]
        text = ", ".join(f"{e.get('type')}/{e.get('status')}" for e in events) or "no events"
        lines.append(f"  machine {data.get('id')} ({data.get('region')}): {data.get('state')}; events: {text}")
    return "\n".join(lines) or f"  (app {app} has no machines)"


class CheckInputs(BaseModel):
    url: str = Field(pattern=r"^https?://\S+$")
    app: str
    server: str
    revision: str | None = None
    token: str | None = None


class McpCheckProvider(Provider):
    """Handshake (initialize + tools/list) with the bearer token; fail with what Fly says otherwise.

    Re-runs when the URL or a machine's version (`revision`) changes; the Fly client is for the report.
    """

    inputs_model = CheckInputs
    diff_keys = ("url", "revision")
    kind = "MCP check"

    def _verify(self, props: dict[str, Any]) -> dict[str, Any]:
        from components.mcpcheck import check

        deadline = float(os.environ.get("CATWALK_VERIFY_DEADLINE_S", DEFAULT_DEADLINE_S))
        token = props.get("token") or None
        result = check(props["url"], token=token, timeout=deadline, wait_until_up=True, poll_interval=2.0)
        if not result.ok:
            raise ProviderError(
                f"MCP server {props['server']!r} did not answer initialize + tools/list at {props['url']} "
                f"within {deadline:g} s: {result.error}\n{_machines_report(self, props['app'])}\n"
                f"See its logs with `fly logs -a {props['app']}`; set catwalk:verify false to skip this check."
            )
        return {
            "url": props["url"],
            "server": props["server"],
            "app": props["app"],
            "revision": props.get("revision"),
            "tools": result.tools,
            "server_name": result.server_name,
        }

    def create(self, props: dict[str, Any]) -> CreateResult:
        outs = self._verify(props)
        return CreateResult(id_=f"{props['app']}-mcp-check", outs=outs)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=self._verify(news))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        """Nothing to clean up: a check leaves no trace on Fly."""


class McpCheck(pulumi.dynamic.Resource, module="catwalk", name="McpCheck"):
    """The handshake result: the tool names the server listed through its public URL."""

    tools: pulumi.Output[list[str]]
    server_name: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        *,
        url: pulumi.Input[str],
        app: pulumi.Input[str],
        server: str,
        revision: pulumi.Input[str],
        token: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "url": url,
            "app": app,
            "server": server,
            "revision": revision,
            "token": pulumi.Output.secret(token) if token is not None else None,
            "tools": None,
            "server_name": None,
        }
        super().__init__(McpCheckProvider(), resource_name, props, opts)
