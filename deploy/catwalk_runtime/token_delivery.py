"""How the bearer token reaches the gateway, and why the server it runs cannot read it back.

The entrypoint hands the token over on a pipe (``MCP_AUTH_FD``) after taking it out of every environment;
the gateway reads and closes it, then makes itself non-dumpable before it spawns the server. The decision
and its alternatives: docs/token-delivery.md. Standard library only, no import before the spawn but ``os``.
"""

from __future__ import annotations

import os

from .contract import AUTH, AUTH_FD, AUTH_OFF, AUTH_TOKEN, CONTROL
from .errors import UsageError

MAX_TOKEN = 4096


def read_token(environ: dict[str, str]) -> str | None:
    """The bearer token: from the descriptor MCP_AUTH_FD names (then closed), else MCP_AUTH_TOKEN (a gateway
    started by hand). None only with the explicit opt-out MCP_AUTH=off.

    A missing token is not taken as a wish: a secret lost out of band must not leave /mcp open.
    """
    opt = environ.get(AUTH, "")
    if opt not in ("", "on", AUTH_OFF):
        raise UsageError(f"MCP_AUTH={opt[:40]!r}: expected `off` (serve without a token) or `on`")
    token = environ.get(AUTH_TOKEN)
    fd_text = environ.get(AUTH_FD)
    if fd_text:
        token = read_descriptor(fd_text, MAX_TOKEN + 1).decode("utf-8", "replace").rstrip("\n")
    if token is not None and (not token.strip() or CONTROL.search(token) or len(token) > MAX_TOKEN):
        raise UsageError("MCP_AUTH_TOKEN is set but empty, too long or contains control characters; refusing to start")
    if token is None and opt != AUTH_OFF:
        raise UsageError(
            "the secret MCP_AUTH_TOKEN is not set, so /mcp and /sse would be open to anyone: refusing to start. "
            "Set it (the stack does, as a Fly secret), or set MCP_AUTH=off to serve without auth on purpose"
        )
    return token


def read_descriptor(fd_text: str, limit: int) -> bytes:
    """Up to ``limit`` bytes of the token off the descriptor MCP_AUTH_FD names, which is then closed."""
    if not fd_text.isdigit() or int(fd_text) < 3:
        raise UsageError(f"MCP_AUTH_FD={fd_text[:40]!r} is not a descriptor number above 2")
    try:
        with os.fdopen(int(fd_text), "rb", closefd=True) as handle:
            return handle.read(limit)
    except OSError as exc:
        raise UsageError(f"MCP_AUTH_FD={fd_text}: the token cannot be read ({exc.strerror})") from None


def make_non_dumpable() -> None:
    """prctl(PR_SET_DUMPABLE, 0): the server (same user) may not read this process's memory or environ.

    /proc/<pid>/{environ,mem,fd,maps} then belong to root and ptrace is refused. The flag is reset by
    execve, so the server itself stays an ordinary process. Linux only; elsewhere nothing is done.
    """
    import sys

    if sys.platform != "linux":
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(4, 0, 0, 0, 0) != 0:  # PR_SET_DUMPABLE
        raise UsageError(f"cannot make the gateway non-dumpable: {os.strerror(ctypes.get_errno())}")
