"""What detection raises: a spec that cannot be run (``DetectError``), a registry that did not answer.

Kept apart from the models and rules so every detection module can import them without importing the others.
"""

from __future__ import annotations

from components.errors import CatwalkError


class DetectError(CatwalkError, ValueError):
    """A spec cannot be turned into something to run; the message says why and what to write instead."""


class RegistryError(CatwalkError, RuntimeError):
    """A registry could not answer (after retries); carries the URL and, when there was one, the status."""

    def __init__(self, message: str, *, url: str, status: int | None = None):
        super().__init__(message)
        self.url = url
        self.status = status
