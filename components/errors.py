"""The root of every error catwalk raises on purpose: ``except CatwalkError`` catches them all.

Each layer subclasses it once (config, detection, the Fly client, images, providers, the MCP check), and a
subclass that knows what the user should do next says so in its ``hint``. Code that shows an error asks the
error for its hint (``hint_of``); nothing looks at a class's name. Errors raised by validators inside
pydantic models stay ``ValueError``, as pydantic requires; the layer that runs the model turns them into
its own error.
"""

from __future__ import annotations

from typing import ClassVar


class CatwalkError(Exception):
    """An error catwalk raises on purpose; the message names the resource and never holds a secret."""

    hint: ClassVar[str] = ""  # what to do about it, when the class knows; shown after the message


def hint_of(exc: BaseException) -> str:
    """The hint an error carries (empty for errors that are not catwalk's or that have none)."""
    return exc.hint if isinstance(exc, CatwalkError) else ""


def with_hint(message: str, exc: BaseException) -> str:
    """``message`` followed by the error's hint in parentheses, when it has one."""
    hint = hint_of(exc)
    return f"{message} ({hint})" if hint else message
