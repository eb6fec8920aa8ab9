"""Package spec parsing: every accepted form, and every refused one with a message naming the problem."""

from __future__ import annotations

import time

import pytest

from components.spec import ParsedSpec, parse_spec


@pytest.mark.parametrize(
    ("raw", "kind", "name", "version", "registries"),
    [
        ("mcp-server-git", "auto", "mcp-server-git", None, ("pypi", "npm")),
        ("mcp-server-time@2025.1.1", "auto", "mcp-server-time", "2025.1.1", ("pypi", "npm")),
        ("awslabs.aws-documentation-mcp-server", "auto", "awslabs.aws-documentation-mcp-server", None, ("pypi", "npm")),
        ("Office-Word-MCP-Server", "auto", "Office-Word-MCP-Server", None, ("pypi",)),
        ("mcp_server_x", "auto", "mcp_server_x", None, ("pypi", "npm")),
        ("@modelcontextprotocol/server-memory", "npm", "@modelcontextprotocol/server-memory", None, ("npm",)),
        ("@playwright/mcp@0.0.83", "npm", "@playwright/mcp", "0.0.83", ("npm",)),
        ("npm:mcp-server-kubernetes@^4.1", "npm", "mcp-server-kubernetes", "^4.1", ("npm",)),
        ("npx://@upstash/context7-mcp@latest", "npm", "@upstash/context7-mcp", "latest", ("npm",)),
        ("pypi:mcp-server-sqlite==2025.4.25", "pypi", "mcp-server-sqlite", "==2025.4.25", ("pypi",)),
        ("pypi:mcp-server-sqlite", "pypi", "mcp-server-sqlite", None, ("pypi",)),
        ("mcp-server-git==2026.1.14", "pypi", "mcp-server-git", "==2026.1.14", ("pypi",)),
        ("uvx://mcp-server-fetch", "pypi", "mcp-server-fetch", None, ("pypi",)),
        ("uvx://mcp-server-fetch@2025.4.7", "pypi", "mcp-server-fetch", "==2025.4.7", ("pypi",)),
        ("uvx://mcp-server-fetch==2025.4.7", "pypi", "mcp-server-fetch", "==2025.4.7", ("pypi",)),
        ("pypi:x==1.0.0b1", "pypi", "x", "==1.0.0b1", ("pypi",)),
    ],
)
def test_accepted_forms_name_registry_and_version(raw, kind, name, version, registries):
    parsed = parse_spec(raw)
    assert (parsed.kind, parsed.name, parsed.version, parsed.registries) == (kind, name, version, registries)


def test_github_source_with_and_without_ref():
    assert parse_spec("github:modelcontextprotocol/servers@v1.2").model_dump(include={"owner", "repo", "ref"}) == {
        "owner": "modelcontextprotocol",
        "repo": "servers",
        "ref": "v1.2",
    }
    assert parse_spec("github:owner/repo.git").repo == "repo"
    assert parse_spec("github:owner/repo").ref is None


def test_local_directory_forms():
    assert parse_spec("./servers/weather").model_dump(include={"kind", "path"}) == {
        "kind": "local",
        "path": "./servers/weather",
    }
    assert parse_spec("/srv/mcp/").path == "/srv/mcp"


def test_exact_pins_are_recognised():
    assert parse_spec("pypi:x==1.2.3").pinned
    assert parse_spec("@a/b@1.2.3").pinned
    assert not parse_spec("@a/b@^1.2").pinned
    assert not parse_spec("x").pinned


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "empty"),
        ("--index-url=https://evil.example/simple", "would be read as an installer option"),
        ("-e .", "contains ' '"),
        ("-egit+https://x", "installer option"),
        ("pypi:--index-url=https://evil", "installer option"),
        ("npx://--registry=https://evil", "installer option"),
        ("uvx://-e", "installer option"),
        ("npm:-g", "installer option"),
        ("mcp-server-git; rm -rf /", "contains"),
        ("mcp-server-git&&id", "'&'"),
        ("$(id)", "'$()'"),
        ("`id`", "'`'"),
        ("a|b", "'|'"),
        ("name>x", "'>'"),
        ("pkg\x00", "control character"),
        ("pkg\nother", "control character"),
        ("pkg\r", "control character"),
        ("../../etc/passwd", "path traversal"),
        ("./a/../../b", "path traversal"),
        ("npm:@scope/../x", "path traversal"),
        ("github:owner/..", "path traversal"),
        ("x" * 257, "the limit is 256"),
        ("npm:" + "a" * 215, "at most 214"),
        ("npm:Uppercase", "npm names are lowercase"),
        ("npm:.hidden", "not starting with '.'"),
        ("@scope", "not a valid npm package name"),
        ("@scope/", "not a valid npm package name"),
        ("pypi:-bad-", "installer option"),
        ("pypi:bad-", "not a valid PyPI project name"),
        ("pypi:mcp[cli]", "'[]'"),
        ("pypi:x==not.a.version!", "'!'"),
        ("pypi:x==", "no version"),
        ("x@", "gives no version"),
        ("npm:x@", "gives no version"),
        ("pypi:x@1.0", "NAME==VERSION"),
        ("owner/repo", "not a package name"),
        ("git+https://github.com/a/b", "unknown spec scheme"),
        ("file:///etc", "unknown spec scheme"),
        ("http://evil/pkg.tgz", "unknown spec scheme"),
        ("github:owner", "github:OWNER/REPO"),
        ("github:own_er/repo", "not a GitHub user"),
        ("github:owner/repo@", "names no git ref"),
        ("github:owner/repo@-x", "not a git branch"),
        ("github:owner/repo@x.lock", "not a git branch"),
        ("npm:x@%20", "'%'"),
        ("x@1.2 || 2", "which no package name or version has"),
    ],
)
def test_refused_specs_say_why(raw, message):
    with pytest.raises(ValueError) as info:
        parse_spec(raw)
    assert message in str(info.value)


def test_non_string_is_refused():
    with pytest.raises(ValueError, match="must be a string"):
        parse_spec(["mcp-server-git"])  # type: ignore[arg-type]


def test_for_registry_restricts_an_auto_spec_and_refuses_an_impossible_one():
    assert parse_spec("mcp-server-git").for_registry("pypi").registries == ("pypi",)
    with pytest.raises(ValueError, match="cannot be a npm package: npm names are lowercase"):
        parse_spec("Office-Word-MCP-Server").for_registry("npm")


def test_parsed_spec_is_immutable():
    parsed = parse_spec("mcp-server-git")
    assert isinstance(parsed, ParsedSpec)
    with pytest.raises(ValueError):
        parsed.name = "other"  # type: ignore[misc]


def test_parsing_is_fast_enough_for_config_validation():
    start = time.perf_counter()
    for _ in range(2000):
        parse_spec("@modelcontextprotocol/server-memory@^2025.1")
        parse_spec("pypi:awslabs.aws-documentation-mcp-server==1.2.3")
    assert time.perf_counter() - start < 2.0
