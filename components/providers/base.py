"""What every catwalk dynamic provider shares: engine-key stripping, pure diffs, checks, the Fly token.

The engine pickles each provider instance into the state (`__provider`) and later unpickles it in
`python -m pulumi.dynamic`. So a provider holds nothing: no client, socket or lock (each hook builds its
own client), and no token: the Fly token arrives through `configure()` (stack config), kept beside the
provider rather than in it, or `FLY_API_TOKEN` at call time; never as an input, never in the pickle.

The diff helpers are pure functions of (previous outputs, new inputs): they make no Fly call, so a
preview is free and an unchanged `up` makes no mutating call.
"""

from __future__ import annotations

import os
import re
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    ConfigureRequest,
    DiffResult,
    ResourceProvider,
)
from pulumi.output import Unknown
from pulumi.runtime import rpc
from pydantic import BaseModel, ValidationError

from components.config import DELETE_VOLUMES_KEY, TOKEN_CONFIG_KEYS, URL_CONFIG_KEYS, server_names
from components.errors import CatwalkError, with_hint

DELETE_VOLUMES_HINT = (
    "list the server in catwalk:deleteVolumes (`pulumi config set catwalk:deleteVolumes {server}`) and run `up` "
    "again to delete it; to keep it, restore the server's `volume` setting"
)


class ProviderError(CatwalkError, RuntimeError):
    """A provider hook failed; the message names the resource and never holds a secret value."""


FlyProviderError = ProviderError  # the name the Fly providers' callers know


# ---------------------------------------------------------------------------------------------------
# Pure helpers on property bags
# ---------------------------------------------------------------------------------------------------


def is_unknown(value: Any) -> bool:
    """True for a value the engine does not know yet (a preview of a not-yet-created dependency)."""
    return isinstance(value, Unknown) or (isinstance(value, str) and value == rpc.UNKNOWN)


def contains_unknown(value: Any) -> bool:
    if is_unknown(value):
        return True
    if isinstance(value, Mapping):
        return any(contains_unknown(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(contains_unknown(v) for v in value)
    return False


def unwrap_secrets(value: Any) -> Any:
    """Remove the engine's secret wrappers (`{sig: secret, value: …}`) at any depth."""
    value = rpc.unwrap_rpc_secret(value)
    if isinstance(value, Mapping):
        return {k: unwrap_secrets(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [unwrap_secrets(v) for v in value]
    return value


def strip_engine_keys(props: Mapping[str, Any] | None) -> dict[str, Any]:
    """The resource's own properties: no `__provider`, no other `__`-prefixed engine key, no wrappers."""
    return {k: unwrap_secrets(v) for k, v in (props or {}).items() if not k.startswith("__")}


def import_id(kind: str, id_: str, props: Mapping[str, Any]) -> tuple[str, str]:
    """The app and object id of a refresh: the app from the state, or `<app>/<id>` as `pulumi import` passes it."""
    app, object_id = props.get("app"), id_
    if "/" in id_:
        app, object_id = id_.split("/", 1)
    if not app:
        raise FlyProviderError(f"Fly {kind} {id_!r}: import it by '<app>/<{kind}_id>'")
    return str(app), object_id


def partial_diff(olds: Mapping[str, Any], news: Mapping[str, Any], keys: Iterable[str]) -> list[str]:
    """The keys among `keys` whose new value differs from the old one (an unknown new value differs)."""
    changed = []
    for key in keys:
        new = news.get(key)
        if contains_unknown(new) or olds.get(key) != new:
            changed.append(key)
    return changed


def diff_result(
    olds: Mapping[str, Any],
    news: Mapping[str, Any],
    *,
    keys: Iterable[str],
    replace_keys: Iterable[str],
    stable_outputs: Iterable[str] = (),
    extra_changes: Iterable[str] = (),
) -> DiffResult:
    """A DiffResult that reads true in a preview.

    `changes` is set whenever anything (including a replace key) changed, `replaces` lists exactly the
    replace keys that changed, and `stables` names the inputs and outputs that this operation keeps
    (so the engine keeps them known during a preview): all of them when nothing changed, the unchanged
    keys and `stable_outputs` on an update, the unchanged keys on a replacement.
    """
    keys = list(keys)
    changed = partial_diff(olds, news, keys)
    changed += [k for k in extra_changes if k not in changed]
    replaces = [k for k in replace_keys if k in changed]
    if not changed:  # nothing moves: every input and output stays as it is
        stables = sorted({*olds, *news, *keys, *stable_outputs})
    elif replaces:
        stables = [k for k in keys if k not in changed]
    else:
        stables = [*(k for k in keys if k not in changed), *stable_outputs]
    return DiffResult(changes=bool(changed), replaces=replaces, stables=stables, delete_before_replace=False)


def check_inputs(model: type[BaseModel], news: Mapping[str, Any]) -> CheckResult:
    """Validate inputs with `model`; failures name the field. No Fly call.

    Unknown values (a preview where an input depends on a resource not created yet) are left alone:
    errors on them, and model-level errors that they may cause, are not reported.
    """
    props = strip_engine_keys(news)
    unknown_fields = {k for k, v in props.items() if contains_unknown(v)}
    try:
        if unknown_fields:
            # Validate what is known; keep the unknown values as they are for the engine.
            known = {k: v for k, v in props.items() if k not in unknown_fields}
            return CheckResult(props, _known_field_errors(model, known))
        validated = model.model_validate(props)
    except ValidationError as exc:
        return CheckResult(props, failures_from(exc))
    return CheckResult(validated.model_dump(mode="json"), [])


def _known_field_errors(model: type[BaseModel], known: dict[str, Any]) -> list[CheckFailure]:
    """Errors on known fields only: `missing` for the unknown ones and model-level errors are dropped."""
    try:
        model.model_validate(known)
    except ValidationError as exc:
        return [f for f in failures_from(exc) if f.property.split(".")[0] in known]
    return []


_FIELD_PREFIX = re.compile(r"^([a-z_][a-z0-9_]*): (.*)$", re.S)


def failures_from(exc: ValidationError) -> list[CheckFailure]:
    """One CheckFailure per pydantic error: property `env.FOO`, reason without the input value."""
    failures = []
    for err in exc.errors(include_input=False, include_url=False):
        prop = ".".join(str(p) for p in err["loc"])
        reason = err["msg"].removeprefix("Value error, ")
        if not prop and (m := _FIELD_PREFIX.match(reason)):  # a model-level check that names its field
            prop, reason = m.group(1), m.group(2)
        if err["type"] == "extra_forbidden":
            reason = "unknown property"
        elif err["type"] == "missing":
            reason = "is required"
        failures.append(CheckFailure(prop or "(resource)", f"{prop or 'inputs'}: {reason}"))
    return failures


# ---------------------------------------------------------------------------------------------------
# The provider base
# ---------------------------------------------------------------------------------------------------


def make_client(token: str | None = None, base_url: str | None = None):
    """Build a Fly client for one hook call (imported lazily: a provider pickle never holds one)."""
    from components.fly import FlyClient

    return FlyClient(base_url=base_url or None, token=token or None)


@dataclass(frozen=True)
class Settings:
    """What `configure` read from the stack config: the Fly token and API URL (either may be absent), and the
    servers whose volumes may be deleted."""

    token: str | None = field(default=None, repr=False)
    base_url: str | None = None
    # Servers whose volumes may be destroyed: read at call time, since a removed server is no longer in the program.
    delete_volumes: frozenset[str] = frozenset()


def _delete_volumes(value: Any) -> frozenset[str]:
    try:
        return frozenset(str(n) for n in server_names(value or []))
    except (TypeError, ValueError):  # the program refuses a malformed value before any provider runs
        return frozenset()


# Each configured provider's settings, kept beside the provider and not in it: the engine pickles providers
# into the state, so no attribute of one ever holds the token. Weak keys: settings go with their provider.
_CONFIGURED: weakref.WeakKeyDictionary[Provider, Settings] = weakref.WeakKeyDictionary()


class Provider(ResourceProvider):
    """The one base of catwalk's dynamic providers: `check` through the inputs model, a pure `diff` over
    declared keys, the Fly token from the stack config or the environment, errors that name the resource.

    Subclasses set `inputs_model` (or override `check`), `replace_keys`, `stable_outputs` and, when not
    every input field counts, `diff_keys`; they implement create/read/update/delete, over `self.client()`
    when they talk to Fly.
    """

    inputs_model: ClassVar[type[BaseModel]]
    replace_keys: ClassVar[tuple[str, ...]] = ()
    stable_outputs: ClassVar[tuple[str, ...]] = ()
    diff_keys: ClassVar[tuple[str, ...] | None] = None  # None: every field of `inputs_model`
    kind: ClassVar[str] = "Fly resource"

    def configure(self, req: ConfigureRequest) -> None:
        """Take the token (and API URL) from the stack config the engine hands the provider host."""
        _CONFIGURED[self] = Settings(
            token=next((str(v) for k in TOKEN_CONFIG_KEYS if (v := req.config.get(k))), None),
            base_url=next((str(v) for k in URL_CONFIG_KEYS if (v := req.config.get(k))), None),
            delete_volumes=_delete_volumes(req.config.get(DELETE_VOLUMES_KEY)),
        )

    def settings(self) -> Settings:
        """What `configure` read (empty settings when the engine did not configure this provider)."""
        return _CONFIGURED.get(self, Settings())

    def volume_delete_allowed(self, server: str) -> bool:
        """Whether this run's stack config (catwalk:deleteVolumes) lets `up` destroy the server's volumes."""
        return server in self.settings().delete_volumes

    def fly_token(self) -> str | None:
        """The configured token, else `FLY_API_TOKEN` read now."""
        return self.settings().token or os.environ.get("FLY_API_TOKEN") or None

    def client(self):
        """A fresh client for one hook (`with self.client() as client:` closes its session).

        Token: `fly_token()`; URL: from config, else `FLY_API_URL`.
        """
        return make_client(token=self.fly_token(), base_url=self.settings().base_url)

    def inputs_of(self, props: Mapping[str, Any]) -> dict[str, Any]:
        """The input fields of a property bag (old outputs carry extra computed keys)."""
        props = strip_engine_keys(props)
        return {k: props[k] for k in self.inputs_model.model_fields if k in props}

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        return check_inputs(self.inputs_model, news)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return diff_result(
            strip_engine_keys(olds),
            strip_engine_keys(news),
            keys=self.diff_keys if self.diff_keys is not None else tuple(self.inputs_model.model_fields),
            replace_keys=self.replace_keys,
            stable_outputs=self.stable_outputs,
        )

    def fail(self, action: str, name: str, exc: Exception) -> ProviderError:
        """An error naming the resource and the action, with the cause's hint; chain it (`raise … from exc`)."""
        return ProviderError(with_hint(f"{self.kind} {name!r}: {action} failed: {exc}", exc))


def as_dict(obj: Any) -> dict[str, Any]:
    """A client response as plain JSON data (the client returns pydantic models; tests may pass dicts)."""
    if obj is None:
        return {}
    if isinstance(obj, Mapping):
        return dict(obj)
    dump = getattr(obj, "model_dump", None)
    if dump is not None:
        return dump(mode="json", exclude_none=True)
    raise TypeError(f"cannot read a {type(obj).__name__} as a Fly response")
