"""MCP handshake check: initialize + tools/list against a served endpoint, bounded by a deadline.

One check shared by the tests, the stack's post-deploy verification and the benchmarks, built on the
``mcp`` client (streamable HTTP for ``…/mcp``, SSE for ``…/sse``). It never raises for a failed check:
the result says what went wrong. The bearer token is only put in the request header; it is scrubbed
from any error text and never printed or logged here.
"""

from __future__ import annotations

import contextlib
import time
from datetime import timedelta
from typing import Literal
from urllib.parse import urlsplit

import anyio
import httpx
from pydantic import BaseModel, Field

Transport = Literal["streamable-http", "sse"]


class HandshakeResult(BaseModel):
    """What a client saw: whether initialize + tools/list worked, and how long it took."""

    url: str
    transport: Transport
    ok: bool
    server_name: str | None = None
    server_version: str | None = None
    protocol_version: str | None = None
    tools: list[str] = Field(default_factory=list)
    elapsed_s: float
    attempts: int = 1
    error: str | None = None


def transport_for(url: str) -> Transport:
    """``…/sse`` speaks SSE; anything else (``…/mcp``) streamable HTTP."""
    return "sse" if urlsplit(url).path.rstrip("/").endswith("/sse") else "streamable-http"


def _leaves(exc: BaseException) -> list[BaseException]:
    group = getattr(exc, "exceptions", None)  # (Base)ExceptionGroup, also on Python 3.10 via anyio
    if isinstance(group, (list, tuple)):
        return [leaf for sub in group for leaf in _leaves(sub)]
    return [exc]


def _describe(exc: BaseException, token: str | None) -> str:
    """The most useful message from a (grouped) exception, with the token scrubbed."""
    leaves = _leaves(exc)
    status = [e for e in leaves if isinstance(e, httpx.HTTPStatusError)]
    chosen = status[0] if status else leaves[0]
    if isinstance(chosen, httpx.HTTPStatusError):
        response = chosen.response
        text = f"HTTP {response.status_code} {response.reason_phrase} from {response.request.url}"
    else:
        text = f"{type(chosen).__name__}: {chosen}".rstrip(": ")
    if token:
        text = text.replace(token, "***")
    return text


def _is_connect_error(exc: BaseException) -> bool:
    return any(isinstance(e, (httpx.ConnectError, ConnectionRefusedError)) for e in _leaves(exc))


async def _handshake(url: str, transport: Transport, headers: dict[str, str], timeout: float) -> HandshakeResult:
    from mcp import ClientSession
    from mcp.client.sse import sse_client

    start = time.monotonic()
    async with contextlib.AsyncExitStack() as stack:
        if transport == "sse":
            context = sse_client(url, headers=headers, timeout=timeout, sse_read_timeout=timeout)
        else:
            try:  # mcp >= 1.2x: the transport takes a configured httpx client
                from mcp.client.streamable_http import streamable_http_client
            except ImportError:  # older mcp 1.x
                from mcp.client.streamable_http import streamablehttp_client

                context = streamablehttp_client(url, headers=headers, timeout=timeout, sse_read_timeout=timeout)
            else:
                client = httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(timeout))
                await stack.enter_async_context(client)
                context = streamable_http_client(url, http_client=client)
        streams = await stack.enter_async_context(context)
        read, write = streams[0], streams[1]
        async with ClientSession(read, write, read_timeout_seconds=timedelta(seconds=timeout)) as session:
            init = await session.initialize()
            page = await session.list_tools()
            names = [tool.name for tool in page.tools]
            for _ in range(50):  # follow pagination, bounded
                if not page.nextCursor:
                    break
                page = await session.list_tools(cursor=page.nextCursor)
                names += [tool.name for tool in page.tools]
    return HandshakeResult(
        url=url,
        transport=transport,
        ok=True,
        server_name=init.serverInfo.name,
        server_version=init.serverInfo.version,
        protocol_version=str(init.protocolVersion),
        tools=names,
        elapsed_s=time.monotonic() - start,
    )


async def acheck(
    url: str,
    *,
    token: str | None = None,
    timeout: float = 15.0,
    wait_until_up: bool = False,
    poll_interval: float = 0.05,
    transport: Transport | None = None,
) -> HandshakeResult:
    """Initialize + list tools within ``timeout`` seconds (everything included).

    ``wait_until_up`` retries refused connections until the deadline (a server that is still starting);
    ``elapsed_s`` then counts from the first attempt, so it measures time to first answer.
    """
    kind = transport or transport_for(url)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    start = time.monotonic()
    deadline = start + timeout
    attempts = 0
    last = ""
    while True:
        attempts += 1
        remaining = deadline - time.monotonic()
        try:
            with anyio.fail_after(max(remaining, 0.01)):
                result = await _handshake(url, kind, headers, max(remaining, 0.01))
            return result.model_copy(update={"elapsed_s": time.monotonic() - start, "attempts": attempts})
        except TimeoutError:
            error = f"no answer within {timeout:g} s" + (f" (last attempt: {last})" if last else "")
        except Exception as exc:  # every failure becomes the result's error text
            if wait_until_up and _is_connect_error(exc) and time.monotonic() + poll_interval < deadline:
                last = _describe(exc, token)
                await anyio.sleep(poll_interval)
                continue
            error = _describe(exc, token)
        return HandshakeResult(
            url=url, transport=kind, ok=False, elapsed_s=time.monotonic() - start, attempts=attempts, error=error
        )


def check(
    url: str,
    *,
    token: str | None = None,
    timeout: float = 15.0,
    wait_until_up: bool = False,
    poll_interval: float = 0.05,
    transport: Transport | None = None,
) -> HandshakeResult:
    """Blocking form of :func:`acheck` (runs its own event loop)."""
    return anyio.run(
        lambda: acheck(
            url,
            token=token,
            timeout=timeout,
            wait_until_up=wait_until_up,
            poll_interval=poll_interval,
            transport=transport,
        )
    )
