"""A server's `auth` mode and the stack's `catwalk:oauth` setting: what they mean, and bad values refused
naming the field before anything is created."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from components.config import ConfigError, load_stack_file, missing_secrets, parse_stack


def server(name: str = "git", **overrides):
    return {"name": name, "package": "mcp-server-git", **overrides}


def problems(values: dict, secret_keys=frozenset()) -> list[tuple[str | None, str, str]]:
    with pytest.raises(ConfigError) as caught:
        parse_stack(values, secret_keys)
    return [(p.server, p.field, p.error) for p in caught.value.problems]


@pytest.mark.parametrize(
    ("written", "mode"),
    [(True, "bearer"), (False, "open"), ("bearer", "bearer"), ("oauth", "oauth"), ("both", "both")],
)
def test_auth_takes_a_boolean_or_a_mode_word(written, mode):
    stack = parse_stack({"servers": [server(auth=written)]})
    assert stack.servers[0].auth_mode == mode


def test_auth_defaults_to_the_bearer_token_and_needs_no_oauth_setting():
    stack = parse_stack({"servers": [server()]})
    assert stack.servers[0].auth_mode == "bearer"
    assert stack.oauth_source is None and not stack.builtin_auth
    assert missing_secrets(stack, frozenset()) == []


@pytest.mark.parametrize("written", ["yes", "OAuth", "open", 1, "true", ["oauth"]])
def test_an_unknown_auth_is_refused_naming_the_server_and_what_it_may_be(written):
    [(name, field, error)] = problems({"servers": [server(auth=written)]})
    assert (name, field) == ("git", "auth")
    assert "'bearer', 'oauth', 'both'" in error and "false: open" in error


def test_an_oauth_server_without_a_setting_uses_the_builtin_server_and_needs_its_passphrase():
    stack = parse_stack({"servers": [server(auth="oauth"), server("memory", auth="both"), server("time")]})
    assert [s.name for s in stack.oauth_servers()] == ["git", "memory"]
    assert stack.builtin_auth and stack.oauth_source is not None
    assert stack.oauth_source.effective_scopes == ("mcp",)
    [missing] = missing_secrets(stack, frozenset())
    assert (missing.server, missing.field) == (None, "oauthPassphrase")
    assert "git, memory use OAuth" in missing.error
    assert "pulumi config set --secret catwalk:oauthPassphrase" in missing.error
    assert missing_secrets(stack, {"oauthPassphrase"}, {"oauthPassphrase": "correct horse battery"}) == []


def test_a_short_passphrase_is_refused_without_quoting_it():
    stack = parse_stack({"oauth": {"builtin": True}, "servers": [server(auth="oauth")]})
    [short] = missing_secrets(stack, {"oauthPassphrase"}, {"oauthPassphrase": "hunter2"})
    assert short.field == "oauthPassphrase" and "shorter than 12 characters" in short.error
    assert "hunter2" not in str(short)


def test_a_plain_text_passphrase_is_refused():
    [(name, field, error)] = problems({"oauthPassphrase": "correct horse battery", "servers": []})
    assert (name, field) == (None, "oauthPassphrase")
    assert error.startswith("must be a secret") and "correct horse" not in error


def test_an_identity_provider_setting_is_read_from_pulumis_json_text():
    text = (
        '{"issuer": "https://acme.eu.auth0.com/", "scopes": ["mcp:tools"], "allowedUsers": ["ada@acme.dev"], '
        '"allowedGroups": ["mcp-operators"], "jwksUri": "https://acme.eu.auth0.com/.well-known/jwks.json"}'
    )
    stack = parse_stack({"oauth": text, "servers": [server(auth="oauth")]})
    assert stack.oauth is not None and stack.oauth_source is stack.oauth
    assert stack.oauth.issuer == "https://acme.eu.auth0.com/"
    assert stack.oauth.effective_scopes == ("mcp:tools",)
    assert stack.oauth.allowed_users == ["ada@acme.dev"] and stack.oauth.allowed_groups == ["mcp-operators"]
    assert not stack.builtin_auth
    assert missing_secrets(stack, frozenset()) == [], "an identity provider needs no passphrase"


def test_an_identity_provider_may_require_no_scope():
    stack = parse_stack({"oauth": {"issuer": "http://127.0.0.1:9000"}, "servers": [server(auth="both")]})
    assert stack.oauth_source is not None and stack.oauth_source.effective_scopes == ()


@pytest.mark.parametrize(
    ("oauth", "field", "fragment"),
    [
        ({"issuer": "http://idp.example.com"}, "oauth.issuer", "must be an https:// URL"),
        ({"issuer": "https://idp.example.com?tenant=1"}, "oauth.issuer", "no query"),
        ({"issuer": "idp.example.com"}, "oauth.issuer", "must be an https:// URL"),
        ({"issuer": "https://idp.example.com", "jwksUri": "file:///etc/passwd"}, "oauth.jwksUri", "https://"),
        ({"issuer": "https://idp.example.com", "scopes": ["mcp tools"]}, "oauth.scopes[0]", "not an OAuth scope"),
        ({"issuer": "https://idp.example.com", "scopes": ["mcp", "mcp"]}, "oauth", "more than once"),
        ({"issuer": "https://idp.example.com", "allowedUsers": [""]}, "oauth.allowedUsers[0]", "empty"),
        ({"issuer": "https://idp.example.com", "allowedGroups": ["ops\nadmin"]}, "oauth.allowedGroups[0]", "control"),
        ({}, "oauth", "set 'issuer'"),
        ({"builtin": False}, "oauth", "set 'issuer'"),
        ({"builtin": "yes"}, "oauth.builtin", "true or false"),
        ({"builtin": True, "issuer": "https://idp.example.com"}, "oauth", "not both"),
        ({"builtin": True, "allowedUsers": ["ada"]}, "oauth", "admits only the operator"),
        ({"issuer": "https://idp.example.com", "isuer": "x"}, "oauth.isuer", "did you mean 'issuer'"),
        ("{not json", "oauth", "not valid JSON"),
    ],
)
def test_a_bad_oauth_setting_is_refused_naming_the_field(oauth, field, fragment):
    found = problems({"oauth": oauth, "servers": [server(auth="oauth")]})
    matching = [error for name, where, error in found if where == field and name is None]
    assert matching and fragment.lower() in matching[0].lower(), found


def test_no_server_may_take_the_builtin_servers_app_name():
    [(name, field, error)] = problems({"servers": [server("auth")]})
    assert (name, field) == ("auth", "name") and "reserved" in error


def test_the_passphrase_is_not_a_name_a_server_secret_may_use():
    [(name, field, error)] = problems({"servers": [server(secrets=["oauthPassphrase"])]})
    assert (name, field) == ("git", "secrets") and "stack setting" in error


def test_validate_names_the_missing_passphrase_of_a_stack_file(tmp_path: Path):
    path = tmp_path / "Pulumi.t.yaml"
    path.write_text(yaml.safe_dump({"config": {"catwalk:servers": [server(auth="oauth")]}}))
    with pytest.raises(ConfigError) as caught:
        load_stack_file(path)
    assert [p.field for p in caught.value.problems] == ["oauthPassphrase"]
    config = {"catwalk:servers": [server(auth="oauth")], "catwalk:oauthPassphrase": {"secure": "v1:abc"}}
    path.write_text(yaml.safe_dump({"config": config}))
    assert load_stack_file(path).builtin_auth


def test_an_identity_provider_no_server_uses_is_a_warning_not_an_error(tmp_path: Path):
    stack = parse_stack({"oauth": {"issuer": "https://idp.example.com"}, "servers": [server()]})
    [warning] = stack.oauth_warnings()
    assert warning.field == "oauth" and "no server has auth 'oauth' or 'both'" in warning.error
    assert parse_stack({"oauth": {"builtin": True}, "servers": [server(auth="both")]}).oauth_warnings() == []

    path = tmp_path / "Pulumi.t.yaml"
    config = {"catwalk:oauth": {"issuer": "https://idp.example.com"}, "catwalk:servers": [server()]}
    path.write_text(yaml.safe_dump({"config": config}))
    done = subprocess.run([sys.executable, "-m", "infra.cli", "validate", str(path)], capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "warning: stack: oauth: no server has auth 'oauth' or 'both'" in done.stderr
