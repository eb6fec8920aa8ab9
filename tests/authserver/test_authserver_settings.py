"""The authorization server's settings: every problem named by its variable, secrets never quoted back."""

from __future__ import annotations

import json

import pytest

from catwalk_runtime import contract
from catwalk_runtime.authserver.settings import SettingsError, from_environ

SEED = "s3cr3t-seed-" + "x" * 40
PASSPHRASE = "open sesame please"
GOOD = {
    contract.AS_ISSUER: "https://demo-auth.fly.dev",
    contract.AS_SIGNING_SEED: SEED,
    contract.AS_PASSPHRASE: PASSPHRASE,
    contract.AS_RESOURCES: json.dumps(["https://demo-a.fly.dev/mcp", "https://demo-b.fly.dev/mcp"]),
}


def problems(**changes: str | None) -> str:
    environ = {**GOOD, **changes}
    with pytest.raises(SettingsError) as caught:
        from_environ({name: value for name, value in environ.items() if value is not None})
    return str(caught.value)


def test_good_settings_offer_the_default_scope_and_keep_state_in_memory() -> None:
    settings = from_environ(GOOD)
    assert settings.issuer == "https://demo-auth.fly.dev"
    assert settings.resources == ("https://demo-a.fly.dev/mcp", "https://demo-b.fly.dev/mcp")
    assert settings.scopes == ("mcp",) and settings.state_dir is None and not settings.loopback_clients
    assert SEED not in repr(settings) and PASSPHRASE not in repr(settings)


def test_every_missing_setting_is_named_at_once() -> None:
    message = problems(**{name: None for name in contract.AS_REQUIRED})
    for name in contract.AS_REQUIRED:
        assert name in message


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        (contract.AS_ISSUER, "http://demo-auth.fly.dev", "must be an https URL"),
        (contract.AS_ISSUER, "https://demo-auth.fly.dev/oauth", "must be an origin"),
        (contract.AS_RESOURCES, "https://demo-a.fly.dev/mcp", "is not JSON"),
        (contract.AS_RESOURCES, "[]", "non-empty JSON list"),
        (contract.AS_RESOURCES, '["http://demo-a.fly.dev/mcp"]', "is not an https URL"),
        (contract.AS_SCOPES, 'mcp "quoted"', "not a valid scope token"),
        (contract.AS_STATE, "relative/dir", "must be an absolute path"),
        (contract.AS_CIMD_LOOPBACK, "yes", "must be 1 or unset"),
    ],
)
def test_a_bad_setting_is_refused_naming_it(name: str, value: str, fragment: str) -> None:
    message = problems(**{name: value})
    assert name in message and fragment in message


def test_a_short_seed_or_passphrase_is_refused_without_quoting_it() -> None:
    message = problems(**{contract.AS_SIGNING_SEED: "short-seed", contract.AS_PASSPHRASE: "abc"})
    assert f"{contract.AS_SIGNING_SEED} must be at least 32 characters" in message
    assert f"{contract.AS_PASSPHRASE} must be at least 12 characters" in message
    assert "short-seed" not in message and "abc" not in message


def test_a_loopback_issuer_and_resources_are_accepted_for_local_runs() -> None:
    local = {contract.AS_ISSUER: "http://127.0.0.1:8123", contract.AS_RESOURCES: '["http://127.0.0.1:8124/mcp"]'}
    settings = from_environ({**GOOD, **local, contract.AS_SCOPES: "mcp mcp:admin"})
    assert settings.issuer == "http://127.0.0.1:8123" and settings.scopes == ("mcp", "mcp:admin")
