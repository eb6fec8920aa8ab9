"""The runtime's errors: each is reported as one ``Error: …`` line, exit code 1."""

from __future__ import annotations


class UsageError(Exception):
    """Bad input (an env var, a missing install): printed as ``Error: …``, exit 1."""


class InstallFailed(Exception):
    """An install cannot succeed: its environment is removed and the reason printed."""


class Unresolved(Exception):
    """Nothing resolved as of the cutoff, which came from MCP_RESOLVED_AT: a later cutoff may help."""


def show(value: str, limit: int = 120) -> str:
    """A value safe to echo in an error line: control characters escaped, length bounded."""
    text = value.encode("unicode_escape").decode("ascii")
    return text if len(text) <= limit else text[:limit] + "…"
