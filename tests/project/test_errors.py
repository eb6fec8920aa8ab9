"""Every error catwalk raises on purpose shares one root, and a hint travels with its class."""

from __future__ import annotations

import pickle

import pytest

from components.config import ConfigError, Problem
from components.detect import DetectError, RegistryError
from components.errors import CatwalkError, hint_of, with_hint
from components.fly import FlyApiError, FlyConflict, FlyNotFound, FlyUnauthorized
from components.image import BakeError, ContextError, ImageBuildError
from components.providers.app import FlyAppProvider
from components.providers.base import ProviderError


@pytest.mark.parametrize(
    "error",
    [
        ConfigError([Problem(server=None, field="region", error="is not a Fly.io region")]),
        DetectError("nope: not found on PyPI or npm"),
        RegistryError("cannot reach https://pypi.org/simple/x/", url="https://pypi.org/simple/x/"),
        FlyNotFound("not found", method="GET", path="/v1/apps/x", status=404),
        ImageBuildError("docker buildx build failed"),
        BakeError("package: is empty"),
        ContextError("no Dockerfile"),
        ProviderError("Fly app 'x': create failed"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_every_deliberate_error_is_caught_by_except_catwalk_error(error):
    with pytest.raises(CatwalkError):
        raise error


def test_the_unauthorized_hint_comes_from_the_class_and_reaches_the_provider_error():
    denied = FlyUnauthorized("no token", method="POST", path="/v1/apps", status=401)
    failed = FlyAppProvider().fail("create", "catwalk-dev-memory", denied)
    assert isinstance(failed, ProviderError)
    assert "Fly app 'catwalk-dev-memory': create failed: Fly API POST /v1/apps: HTTP 401" in str(failed)
    assert str(failed).endswith(f"({FlyUnauthorized.hint})")
    assert "pulumi config set --secret catwalk:flyApiToken" in FlyUnauthorized.hint


def test_a_subclass_named_like_the_unauthorized_error_gets_no_hint():
    # Hints follow the class, not its name: an unrelated class called FlyUnauthorized adds nothing.
    FakeUnauthorized = type("FlyUnauthorized", (Exception,), {})
    failed = FlyAppProvider().fail("create", "x", FakeUnauthorized("denied"))
    assert str(failed) == "Fly app 'x': create failed: denied"


def test_errors_without_a_hint_show_their_message_alone():
    conflict = FlyConflict("name taken", method="POST", path="/v1/apps", status=422, code="name_taken")
    assert hint_of(conflict) == ""
    assert hint_of(ValueError("x")) == ""
    assert with_hint("create failed", conflict) == "create failed"


def test_fly_errors_keep_their_fields_and_hint_through_pickling():
    denied = FlyUnauthorized("denied", method="GET", path="/v1/apps/x", status=403, request_id="req-1")
    back = pickle.loads(pickle.dumps(denied))
    assert isinstance(back, FlyApiError) and isinstance(back, CatwalkError)
    assert (back.status, back.request_id, str(back)) == (403, "req-1", str(denied))
    assert hint_of(back) == hint_of(denied) != ""
