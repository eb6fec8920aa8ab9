"""Pydantic field types built on the allowlists in `components.safety`.

One definition per kind of value, shared by the stack config model and the provider input models, so a
region or env name is checked the same way at `validate`, at preview and in each provider's `check`.
Each list item and map key validates on its own, so every bad one is reported with its position.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from pydantic import AfterValidator

from components import safety


def checked(check: Callable[[str], object]) -> AfterValidator:
    """Wrap a safety check (raising ValueError) as a pydantic after-validator returning the value."""

    def validate(value: str) -> str:
        check(value)
        return value

    return AfterValidator(validate)


def _size(value: str) -> None:
    if value not in safety.FLY_SIZES:
        raise ValueError(f"{value!r} is not a Fly machine size (one of {', '.join(sorted(safety.FLY_SIZES))})")


AppName = Annotated[str, checked(safety.check_app_name)]
ServerName = Annotated[str, checked(safety.check_server_name)]
Region = Annotated[str, checked(safety.check_region)]
ImageRef = Annotated[str, checked(safety.check_image_ref)]
ApiUrl = Annotated[str, checked(safety.check_api_url)]
FlySize = Annotated[str, checked(_size)]
PlainEnvName = Annotated[str, checked(lambda v: safety.check_env_name(v, plain=True))]
SecretEnvName = Annotated[str, checked(lambda v: safety.check_env_name(v, plain=False))]
EnvValue = Annotated[str, checked(safety.check_env_value)]
Arg = Annotated[str, checked(safety.check_arg)]
OrgSlug = Annotated[str, checked(lambda v: safety.check_plain_token(v, "org", limit=64))]
