"""Property values as the harness sees them: plain JSON data plus `Secret` and `UNKNOWN` markers.

The SDK's own deserializer pushes secretness up to the enclosing object, which would turn a
server's whole output dict secret because its `token` is; the harness keeps secrets at the leaf,
as the engine's state does, so `pulumi stack output`-style rendering can mask just the token.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format, struct_pb2
from pulumi.output import Unknown as SdkUnknown
from pulumi.runtime import rpc

SIG_KEY = rpc._special_sig_key
SECRET_SIG = rpc._special_secret_sig
RESOURCE_SIG = rpc._special_resource_sig
UNKNOWN_SENTINEL = rpc.UNKNOWN


@dataclass(frozen=True)
class Secret:
    """A value the program or provider marked secret."""

    value: Any

    def __repr__(self) -> str:  # never leak through logs or tracebacks
        return "Secret([secret])"


class _Unknown:
    """A value not known until an `up` (preview only)."""

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN = _Unknown()


class NotSerializable(TypeError):
    """A provider returned a value that cannot be kept in state."""


def from_struct(struct: struct_pb2.Struct) -> dict[str, Any]:
    """Protobuf properties from the SDK → harness values (leaf secrets, unknowns, resource refs)."""
    return _from_wire(json_format.MessageToDict(struct))


def _from_wire(value: Any) -> Any:
    if isinstance(value, dict):
        sig = value.get(SIG_KEY)
        if sig == SECRET_SIG:
            inner = _from_wire(value.get("value"))
            return inner if inner is UNKNOWN else Secret(_strip_secret(inner))
        if sig == RESOURCE_SIG:
            # Dynamic providers do not accept resource references: the engine downgrades them
            # to the resource's id (custom resources) or URN (components).
            return _from_wire(value.get("id") or value.get("urn"))  # an id is unknown in a preview
        return {k: _from_wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_wire(v) for v in value]
    if value == UNKNOWN_SENTINEL:
        return UNKNOWN
    return value


def _strip_secret(value: Any) -> Any:
    if isinstance(value, Secret):
        return _strip_secret(value.value)
    if isinstance(value, dict):
        return {k: _strip_secret(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strip_secret(v) for v in value]
    return value


def to_struct(props: dict[str, Any]) -> struct_pb2.Struct:
    """Harness values → protobuf properties the SDK resolves (secrets and unknowns marked)."""
    struct = struct_pb2.Struct()
    struct.update({k: _to_wire(v) for k, v in props.items()})
    return struct


def _to_wire(value: Any) -> Any:
    if isinstance(value, Secret):
        return {SIG_KEY: SECRET_SIG, "value": _to_wire(value.value)}
    if value is UNKNOWN:
        return UNKNOWN_SENTINEL
    if isinstance(value, dict):
        return {k: _to_wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_wire(v) for v in value]
    return value


def reveal(value: Any) -> Any:
    """What a dynamic provider receives: secrets unwrapped (it does not accept secrets), unknowns
    as the SDK's `Unknown` (as `python -m pulumi.dynamic` deserializes them in a preview)."""
    if isinstance(value, Secret):
        return reveal(value.value)
    if value is UNKNOWN:
        return SdkUnknown()
    if isinstance(value, dict):
        return {k: reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal(v) for v in value]
    return value


def from_provider(value: Any, where: str) -> Any:
    """A provider's Python result → harness values, refusing what state cannot hold."""
    if isinstance(value, SdkUnknown):
        return UNKNOWN
    if isinstance(value, dict):
        return {str(k): from_provider(v, f"{where}.{k}") for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [from_provider(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise NotSerializable(f"{where}: {value!r} is not a finite number")
        # Properties travel as protobuf doubles, so the engine hands numbers back as floats.
        return float(value)
    raise NotSerializable(f"{where}: a {type(value).__name__} cannot be stored as a property")


def mark_secret_keys(props: dict[str, Any], keys: set[str]) -> dict[str, Any]:
    """Mark top-level `keys` secret, as the engine does for outputs whose input was secret."""
    return {
        k: (Secret(_strip_secret(v)) if k in keys and not isinstance(v, Secret) and v is not UNKNOWN else v)
        for k, v in props.items()
    }


def secret_keys(props: dict[str, Any]) -> set[str]:
    return {k for k, v in props.items() if contains_secret(v)}


def contains_secret(value: Any) -> bool:
    if isinstance(value, Secret):
        return True
    if isinstance(value, dict):
        return any(contains_secret(v) for v in value.values())
    if isinstance(value, list):
        return any(contains_secret(v) for v in value)
    return False


def render(value: Any, show_secrets: bool) -> Any:
    """JSON for users: secrets as "[secret]" (like `pulumi stack output`) unless shown."""
    if isinstance(value, Secret):
        return render(value.value, show_secrets) if show_secrets else "[secret]"
    if value is UNKNOWN:
        return "[unknown]"
    if isinstance(value, dict):
        return {k: render(v, show_secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, show_secrets) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)  # properties are doubles on the wire; print 2, not 2.0, as the CLI does
    return value
