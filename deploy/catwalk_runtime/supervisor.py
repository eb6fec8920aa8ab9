"""The MCP server process: spawned before the event loop exists, driven by it, stopped within 2 s.

The server leads a new session, so its whole process group can be signalled. Its stdin/stdout are
non-blocking pipes the event loop drives; its exit is seen on a pidfd (Linux), else by polling. This module
runs before the spawn (see ``serve``): it imports asyncio only inside the coroutines, which run after it.
"""

from __future__ import annotations

import contextlib
import os
import signal

from .contract import AUTH_FD, AUTH_TOKEN

TYPE_CHECKING = False  # typing is not imported on the way to the spawn
if TYPE_CHECKING:
    from typing import Any

STOP_DEADLINE_S = 1.8  # SIGTERM → exit, hard bound (Fly and the contract give 2 s)
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def child_env(environ: dict[str, str]) -> dict[str, str]:
    """The whole environment minus the gateway's own credential and its handle: a third-party server has no
    business reading it."""
    return {k: v for k, v in environ.items() if k not in (AUTH_TOKEN, AUTH_FD)}


def kill_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def exit_code(code: int) -> int:
    """The gateway's exit code for the server's: its own if it failed, 128+N for signal N, else 1."""
    return code if code > 0 else (128 - code if code else 1)


class EarlyStops:
    """SIGTERM/SIGINT received before the event loop takes the signals over.

    Without it a stop request while starting would kill the gateway alone and leave the server (which
    leads its own session) running; noted here, the event loop acts on it once it runs.
    """

    def __init__(self) -> None:
        self.received: list[int] = []

    def install(self) -> None:
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._note)

    def _note(self, signum: int, _frame: Any) -> None:
        self.received.append(signum)


class ServerProcess:
    """The server, its pipes (writes queue and never block) and its exit."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        import subprocess

        child_stdin, self.stdin = os.pipe()
        self.stdout, child_stdout = os.pipe()
        try:
            self.popen = subprocess.Popen(argv, stdin=child_stdin, stdout=child_stdout, env=env, start_new_session=True)
        except BaseException:
            os.close(self.stdin)
            os.close(self.stdout)
            raise
        finally:
            os.close(child_stdin)
            os.close(child_stdout)
        self.pid = self.popen.pid
        os.set_blocking(self.stdin, False)
        os.set_blocking(self.stdout, False)
        self.pidfd = -1
        with contextlib.suppress(AttributeError, OSError):  # no pidfd before Linux 5.3: poll instead
            self.pidfd = os.pidfd_open(self.pid)
        # Written to stdin once the pipe has room (the event loop drains it). A bytearray: dropping what was
        # written from its front is O(1), where slicing bytes copied all the rest at every 64 KiB written.
        self.pending = bytearray()

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def write(self, data: bytes) -> None:
        """Queue ``data`` for the server's stdin and write what fits now (never blocks)."""
        if self.stdin < 0:
            return
        self.pending += data
        try:
            written = os.write(self.stdin, self.pending)
        except BlockingIOError:
            written = 0
        except OSError:  # EPIPE: the server closed its stdin; its exit is reported by the watcher
            self.pending.clear()
            self.close_stdin()
            return
        del self.pending[:written]

    def close_stdin(self) -> None:
        if self.stdin >= 0:
            fd, self.stdin = self.stdin, -1
            os.close(fd)

    def close(self) -> None:
        self.close_stdin()
        for name in ("stdout", "pidfd"):
            fd = getattr(self, name)
            if fd >= 0:
                setattr(self, name, -1)
                os.close(fd)

    async def wait(self) -> int:
        """The server's exit status, once it has exited."""
        import asyncio

        loop = asyncio.get_running_loop()
        while (code := self.returncode) is None:
            if self.pidfd >= 0:
                ready = loop.create_future()
                loop.add_reader(self.pidfd, _set_once, ready)
                try:
                    await ready
                finally:
                    loop.remove_reader(self.pidfd)
            else:
                await asyncio.sleep(0.05)
        return code

    async def stop(self) -> None:
        """Close stdin, then SIGTERM, then SIGKILL the server's process group, all within ~1 s."""
        import asyncio

        loop = asyncio.get_running_loop()

        async def exited(within: float) -> bool:
            deadline = loop.time() + within
            while self.returncode is None and loop.time() < deadline:
                await asyncio.sleep(0.02)
            return self.returncode is not None

        with contextlib.suppress(ValueError, OSError):
            loop.remove_writer(self.stdin)
        self.close_stdin()
        if not await exited(0.3):
            kill_group(self.pid, signal.SIGTERM)
            await exited(0.6)
        kill_group(self.pid, signal.SIGKILL)  # also any grandchild left in the group
        await exited(0.2)

    def hard_stop(self, code: int) -> None:
        """Past the stop deadline: kill the server's group and leave now, whatever is still running."""
        kill_group(self.pid, signal.SIGKILL)
        os._exit(code)


def _set_once(future: Any) -> None:
    if not future.done():
        future.set_result(None)
