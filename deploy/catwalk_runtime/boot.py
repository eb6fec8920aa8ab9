"""A start that must install first: the install runs while nothing it can read holds the bearer token.

An image that does not bake its server installs it at boot, and a dependency's install script runs as the
gateway's user. The entrypoint shell cannot hide the token's pipe from it (a shell cannot make itself
non-dumpable), so it hands over to this process instead: it reads the token off ``MCP_AUTH_FD`` and closes
the descriptor, makes itself non-dumpable, runs ``entrypoint.sh install`` with the allowlisted environment
and no inherited descriptors, then puts the token on a fresh pipe and becomes ``entrypoint.sh serve``.
docs/token-delivery.md has the whole design.

    python -m catwalk_runtime.boot ENTRYPOINT
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Mapping

from .contract import AUTH_FD, INSTALL_ENV, INSTALL_ENV_EXTRA
from .errors import UsageError
from .token_delivery import make_non_dumpable, read_descriptor

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def install_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The allowlisted variables that are set, plus the names an image adds in MCP_INSTALL_ENV."""
    extra = environ.get(INSTALL_ENV_EXTRA, "").split()
    for name in extra:
        if not NAME.fullmatch(name):
            raise UsageError(f"MCP_INSTALL_ENV: {name[:60]!r} is not a variable name")
    return {name: environ[name] for name in (*INSTALL_ENV, *extra) if name in environ}


def take_token(environ: dict[str, str]) -> bytes | None:
    """The token's bytes off MCP_AUTH_FD (the descriptor is closed), or None when there is none."""
    fd_text = environ.pop(AUTH_FD, None)
    # Passed on whole (up to a pipe's buffer): the gateway that reads it next judges its length and characters.
    return None if fd_text is None else read_descriptor(fd_text, 64 * 1024)


def hand_over(token: bytes, environ: dict[str, str], fd: int = 3) -> None:
    """Put the token on a new pipe at ``fd`` (inheritable) and name it in the environment."""
    read_end, write_end = os.pipe()
    os.write(write_end, token)  # a token is far below a pipe's buffer: this never blocks
    os.close(write_end)
    if read_end != fd:
        os.dup2(read_end, fd)
        os.close(read_end)
    os.set_inheritable(fd, True)
    environ[AUTH_FD] = str(fd)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m catwalk_runtime.boot ENTRYPOINT", file=sys.stderr)
        return 2
    entrypoint = args[0]
    environ = dict(os.environ)
    try:
        token = take_token(environ)
        make_non_dumpable()
        install_env = install_environment(environ)
    except UsageError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    if subprocess.run([entrypoint, "install"], env=install_env, close_fds=True, check=False).returncode != 0:
        return 1
    if token is not None:
        hand_over(token, environ)
    os.execve(entrypoint, [entrypoint, "serve"], environ)
    return 1  # not reached: execve replaces this process


if __name__ == "__main__":
    sys.exit(main())
