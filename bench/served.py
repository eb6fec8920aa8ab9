"""A server process a benchmark started: its first MCP answer (the same client for every benchmark and mode) and
its stop."""

from __future__ import annotations

import os
import signal
import subprocess

import anyio

from components.mcpcheck import HandshakeResult, acheck


async def first_answer(
    process: subprocess.Popen, url: str, *, timeout: float, poll_interval: float, token: str | None = None
) -> HandshakeResult | None:
    """initialize + tools/list, retrying a refused connection every ``poll_interval`` until ``timeout``;
    None when the process exits first (an answer already on its way gets one more second)."""
    result: HandshakeResult | None = None
    async with anyio.create_task_group() as group:

        async def ask() -> None:
            nonlocal result
            result = await acheck(url, token=token, timeout=timeout, wait_until_up=True, poll_interval=poll_interval)
            group.cancel_scope.cancel()

        async def watch() -> None:
            while process.poll() is None:
                await anyio.sleep(0.05)
            await anyio.sleep(1.0)
            group.cancel_scope.cancel()

        group.start_soon(ask)
        group.start_soon(watch)
    return result


def stop(process: subprocess.Popen) -> None:
    """SIGTERM to the process's group (started with ``start_new_session``: the server and anything it spawned),
    SIGKILL if it has not exited within 10 s."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
