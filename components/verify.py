"""McpCheck: after the machines start, prove the server answers MCP through its public URL.

A server that accepts only OAuth access tokens cannot be handshaken without a user's login; for it the check
proves what a web connector needs first: a bare request gets 401 pointing at the Protected Resource Metadata,
that document names this server and its authorization server, and the authorization server answers its own
metadata as that issuer.

A dynamic resource rather than a post-`up` script so that a server which does not answer fails the
update itself: `pulumi up` never reports success for a broken server. It re-runs whenever a machine's
version changes (its `revision` input), and makes no call during preview.
"""

from __future__ import annotations

import os
import time
from typing import Any

import httpx
import pulumi
from pulumi.dynamic import CreateResult, UpdateResult
from pydantic import BaseModel, Field

from catwalk_runtime import contract
from components.providers.base import Provider, ProviderError

DEFAULT_DEADLINE_S = 180.0


def protected_resource_problem(url: str, issuer: str, timeout: float, poll_interval: float = 2.0) -> str | None:
    """What is wrong with the OAuth discovery of ``url`` (None: nothing), as a web connector walks it.

    A bare POST must get 401 whose ``WWW-Authenticate`` names ``resource_metadata``; that URL must serve
    RFC 9728's document for ``url`` with ``issuer`` among its authorization servers. Retries while the
    machines start (refused connections, 5xx from Fly's proxy) until ``timeout``.
    """
    deadline = time.monotonic() + timeout
    problem = "no answer"
    with httpx.Client(timeout=min(timeout, 30.0), follow_redirects=False) as client:
        while True:
            try:
                problem = _discovery_problem(client, url, issuer)
                if problem is None or not problem.startswith("retry: "):
                    return problem
            except httpx.HTTPError as exc:
                problem = f"retry: {type(exc).__name__}: {exc}"
            if time.monotonic() + poll_interval >= deadline:
                return problem.removeprefix("retry: ")
            time.sleep(poll_interval)


def _discovery_problem(client: httpx.Client, url: str, issuer: str) -> str | None:
    bare = client.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                       headers={"Accept": "application/json, text/event-stream"})  # fmt: skip
    if bare.status_code >= 500:
        return f"retry: HTTP {bare.status_code} from {url}"
    if bare.status_code != 401:
        return f"a request without a token got HTTP {bare.status_code} from {url}, not 401"
    challenge = bare.headers.get("www-authenticate", "")
    marker = 'resource_metadata="'
    if marker not in challenge:
        return f"the 401 of {url} names no resource_metadata: {challenge[:200]!r}"
    metadata_url = challenge.split(marker, 1)[1].split('"', 1)[0]
    document = client.get(metadata_url)
    if document.status_code != 200:
        return f"the protected resource metadata {metadata_url} answered HTTP {document.status_code}"
    try:
        body = document.json()
    except ValueError:
        return f"the protected resource metadata {metadata_url} is not JSON"
    if not isinstance(body, dict) or body.get("resource") != url:
        return f"the protected resource metadata {metadata_url} is not for {url}"
    if issuer not in (body.get("authorization_servers") or []):
        return f"the protected resource metadata {metadata_url} does not name the authorization server {issuer}"
    return _issuer_problem(client, issuer)


def _issuer_problem(client: httpx.Client, issuer: str) -> str | None:
    """The issuer's metadata (RFC 8414 or OpenID Connect, where connectors look) must answer, as that issuer."""
    answers: list[str] = []
    for url in contract.issuer_metadata_urls(issuer):
        response = client.get(url)
        if response.status_code >= 500:
            return f"retry: HTTP {response.status_code} from {url}"
        answers.append(f"{url}: HTTP {response.status_code}")
        if response.status_code != 200:
            continue
        try:
            document = response.json()
        except ValueError:
            continue
        if isinstance(document, dict) and document.get("issuer") == issuer:
            return None
        return f"{url} is not the metadata of {issuer}"
    return f"the authorization server {issuer} publishes no metadata where connectors look ({'; '.join(answers)})"


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
    issuer: str | None = None  # set for a server with OAuth: its PRM must name this authorization server


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
        issuer = props.get("issuer") or None
        hint = f"See its logs with `fly logs -a {props['app']}`; set catwalk:verify false to skip this check."
        tools: list[str] = []
        server_name: str | None = None
        if issuer is not None:
            problem = protected_resource_problem(props["url"], issuer, deadline)
            if problem is not None:
                raise ProviderError(
                    f"MCP server {props['server']!r} does not offer OAuth as a web connector needs within "
                    f"{deadline:g} s: {problem}\n{_machines_report(self, props['app'])}\n{hint}"
                )
        if token is not None or issuer is None:
            result = check(props["url"], token=token, timeout=deadline, wait_until_up=True, poll_interval=2.0)
            if not result.ok:
                raise ProviderError(
                    f"MCP server {props['server']!r} did not answer initialize + tools/list at {props['url']} "
                    f"within {deadline:g} s: {result.error}\n{_machines_report(self, props['app'])}\n{hint}"
                )
            tools, server_name = result.tools, result.server_name
        return {
            "url": props["url"],
            "server": props["server"],
            "app": props["app"],
            "revision": props.get("revision"),
            "tools": tools,
            "server_name": server_name,
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
        issuer: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "url": url,
            "app": app,
            "server": server,
            "revision": revision,
            "token": pulumi.Output.secret(token) if token is not None else None,
            "issuer": issuer,
            "tools": None,
            "server_name": None,
        }
        super().__init__(McpCheckProvider(), resource_name, props, opts)
