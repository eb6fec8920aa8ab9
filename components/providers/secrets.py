"""FlySecrets: a server's secret env, set as Fly app secrets through the REST secrets API.

The values arrive as Pulumi secrets (the engine encrypts them in the state's inputs); the outputs hold
only the names, Fly's secrets version (machines pass it as `min_secrets_version`) and a salted digest
of the values, so a changed value is detected without the value ever being stored.
"""

from __future__ import annotations

import hashlib
import json
import secrets as _random
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, UpdateResult
from pydantic import BaseModel, ConfigDict, Field, field_validator

from components import safety
from components.fields import AppName
from components.providers import ownership
from components.providers.base import (
    Provider,
    as_dict,
    contains_unknown,
    diff_result,
    strip_engine_keys,
)

MAX_SECRET_VALUE = 64 * 1024
DIGEST_ITERATIONS = 100_000


class SecretsInputs(BaseModel):
    """Error messages name the variable, never its value."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    app: AppName
    values: dict[str, str] = Field(default_factory=dict, max_length=64)

    @field_validator("values")
    @classmethod
    def _values(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():
            if not safety.ENV_NAME.match(name):
                raise ValueError(f"{name!r} is not a valid environment variable name (letters, digits, _)")
            if name.upper().startswith("FLY_"):
                raise ValueError(f"{name!r} is reserved by Fly")
            if not value:
                raise ValueError(f"{name} is empty")
            if "\x00" in value:
                raise ValueError(f"{name} contains a NUL character")
            if len(value) > MAX_SECRET_VALUE:
                raise ValueError(f"{name} is longer than {MAX_SECRET_VALUE} characters")
        return v


def digest(salt: str, values: dict[str, str]) -> str:
    """A slow salted hash of all values (PBKDF2): equal values, equal digest; no value recoverable cheaply."""
    data = json.dumps(values, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.pbkdf2_hmac("sha256", data, bytes.fromhex(salt), DIGEST_ITERATIONS).hex()


def fly_digests(listed: Any, names: Any) -> dict[str, str]:
    """Fly's digest of each of `names` as the secrets list gives it (a value set out of band changes it)."""
    found = {}
    for item in listed if isinstance(listed, list) else []:
        if isinstance(item, str):
            continue
        data = as_dict(item)
        if data.get("name") in names and data.get("digest"):
            found[data["name"]] = str(data["digest"])
    return found


def redact(text: str, values: Any) -> str:
    for value in sorted({v for v in values if v}, key=len, reverse=True):
        text = text.replace(value, "[redacted]")
    return text


def _version(resp: Any) -> int | None:
    if isinstance(resp, int):
        return resp
    data = as_dict(resp)
    return data.get("version", data.get("Version"))


class FlySecretsProvider(Provider):
    inputs_model = SecretsInputs
    replace_keys = ("app",)
    stable_outputs = ("app", "salt")
    kind = "Fly secrets of app"

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        """Compare names and the digest of the new values under the old salt; old values are not kept."""
        olds, news = strip_engine_keys(olds), strip_engine_keys(news)
        values = news.get("values")
        changed: list[str] = []
        if (
            contains_unknown(values)
            or sorted(values or {}) != olds.get("names")
            or not olds.get("salt")
            or (digest(olds["salt"], values or {}) != olds.get("digest"))
        ):
            changed.append("values")
        return diff_result(
            olds,
            news,
            keys=("app",),
            replace_keys=self.replace_keys,
            stable_outputs=self.stable_outputs,
            extra_changes=changed,
        )

    def create(self, props: dict[str, Any]) -> CreateResult:
        inp = SecretsInputs.model_validate(self.inputs_of(props))
        version, fly = self._apply(inp, removed=[])
        return CreateResult(inp.app, self._outputs(inp, _random.token_hex(16), version, fly))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """Set the new values, then unset the names the *old state* had and the new inputs lack.

        (pulumi-flyio computes the names to unset after overwriting the old values, so it never unsets
        any; here the old names come from the previous outputs, untouched.)
        """
        olds = strip_engine_keys(olds)
        inp = SecretsInputs.model_validate(self.inputs_of(news))
        removed = sorted(set(olds.get("names") or []) - set(inp.values))
        version, fly = self._apply(inp, removed=removed)
        return UpdateResult(self._outputs(inp, olds.get("salt") or _random.token_hex(16), version, fly))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """Refresh the names Fly holds; import by app name. The digest stays ours (Fly's is per value)."""
        from components.fly import FlyNotFound

        props = strip_engine_keys(props)
        app = props.get("app") or id_
        try:
            with self.client() as client:
                listed = client.list_secrets(app)
        except FlyNotFound:
            return ReadResult(None, {})
        except Exception as exc:
            raise self.fail("read", app, exc) from exc
        items = listed if isinstance(listed, list) else as_dict(listed).get("secrets") or []
        listed = [s if isinstance(s, str) else as_dict(s)["name"] for s in items]
        names = sorted(n for n in listed if not ownership.is_marker(n))  # the app's owner mark is not ours to set
        live = fly_digests(items, props.get("fly_digests") or {})
        unchanged = names == props.get("names") and live == (props.get("fly_digests") or live)
        outs = {
            "app": app,
            "names": names,
            "version": props.get("version"),
            "salt": props.get("salt"),
            # A name set or a value changed out of band (Fly's digest of it moved) makes our digest stale: the
            # next `up` sets the values again.
            "digest": props.get("digest") if unchanged else None,
            "fly_digests": live,
        }
        return ReadResult(app, outs, inputs={"app": app})

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        """Unset the names we set; an app that is already gone has no secrets left to remove."""
        from components.fly import FlyNotFound

        props = strip_engine_keys(props)
        app = props.get("app") or id_
        names = props.get("names") or []
        if not names:
            return
        try:
            with self.client() as client:
                client.unset_secrets(app, names)
        except FlyNotFound:
            return
        except Exception as exc:
            raise self.fail("delete", app, exc) from exc

    def _apply(self, inp: SecretsInputs, removed: list[str]) -> tuple[int | None, dict[str, str]]:
        """Set and unset; return the secrets version and Fly's digest of each value we set (for refresh)."""
        version, digests = None, {}
        try:
            with self.client() as client:
                if inp.values:
                    version = _version(client.set_secrets(inp.app, dict(inp.values)))
                if removed:
                    version = _version(client.unset_secrets(inp.app, removed))
                if inp.values:
                    digests = fly_digests(client.list_secrets(inp.app), inp.values)
        except Exception as exc:
            # The client redacts the values from Fly's answers; anything else that quotes one is redacted here.
            failure = self.fail(f"set {', '.join(sorted(inp.values)) or '-'}", inp.app, exc)
            raise type(failure)(redact(str(failure), inp.values.values())) from None
        return version, digests

    def _outputs(
        self, inp: SecretsInputs, salt: str, version: int | None, fly: dict[str, str] | None = None
    ) -> dict[str, Any]:
        return {
            "app": inp.app,
            "names": sorted(inp.values),
            "version": version,
            "salt": salt,
            "digest": digest(salt, dict(inp.values)),
            "fly_digests": fly or {},
        }


class FlySecrets(pulumi.dynamic.Resource, module="catwalk", name="FlySecrets"):
    """The app secrets of one server. `version` feeds `FlyMachine(secrets_version=...)`."""

    app: pulumi.Output[str]
    names: pulumi.Output[list[str]]
    version: pulumi.Output[int]
    digest: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        *,
        app: pulumi.Input[str],
        values: pulumi.Input[dict[str, pulumi.Input[str]]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "app": app,
            "values": pulumi.Output.secret(values),
            "names": None,
            "version": None,
            "salt": None,
            "digest": None,
            "fly_digests": None,
        }
        opts = pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(additional_secret_outputs=["values", "digest", "salt", "fly_digests"])
        )
        super().__init__(FlySecretsProvider(), resource_name, props, opts)
