"""The runtime's one error: bad input, reported as ``Error: …`` with exit code 1 before anything starts."""

from __future__ import annotations


class UsageError(Exception):
    """Bad input (an env var, a missing install): printed as ``Error: …``, exit 1."""


def show(value: str, limit: int = 120) -> str:
    """A value safe to echo in an error line: control characters escaped, length bounded."""
    text = value.encode("unicode_escape").decode("ascii")
    return text if len(text) <= limit else text[:limit] + "…"
