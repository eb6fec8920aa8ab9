"""Pure detection rules: registry choice, npx's bin choice, console-script choice, Python support."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from components.detect.models import DetectError, RuntimeSpec, iso_utc
from components.detect.rules import (
    Candidate,
    choose,
    mentions_mcp,
    npm_bin,
    python_launch,
    python_sdk,
    python_supported,
)


def cand(registry, version="1.0.0", sdk=None, says=True, launchable=True, first=None):
    return Candidate(
        registry=registry,
        name="x-mcp",
        version=version,
        sdk=sdk,
        says_mcp=says,
        launchable=launchable,
        first_release=first,
    )


def day(text):
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def test_only_one_registry_has_the_name():
    assert choose(cand("pypi"), None, "x")[0] == "pypi"
    assert choose(None, cand("npm"), "x")[0] == "npm"


def test_neither_registry_has_the_name():
    with pytest.raises(DetectError, match="neither on PyPI nor on npm"):
        choose(None, None, "gone-mcp")


def cand_n(registry, releases, version="1.0.0", sdk="mcp"):
    return Candidate(
        registry=registry, name="x-mcp", version=version, sdk=sdk, says_mcp=True, launchable=True, releases=releases
    )


def test_an_mcp_server_beats_a_package_with_no_mcp_signal():
    registry, reason = choose(cand("pypi", sdk="mcp"), cand("npm", says=False), "x")
    assert registry == "pypi" and "only pypi's is an MCP server" in reason


def test_a_bundled_sdk_counts_as_mcp_like_a_declared_dependency():
    # @playwright/mcp, mongodb-mcp-server and others bundle the SDK: the declared dependency alone decides nothing
    registry, _ = choose(cand_n("pypi", 2, sdk="mcp"), cand_n("npm", 15, sdk=None), "x")
    assert registry == "npm"


def test_a_release_the_image_python_cannot_run_loses_to_the_other_registry():
    unrunnable = cand("pypi", sdk="mcp").model_copy(update={"runnable": False})
    registry, reason = choose(unrunnable, cand("npm", sdk="@modelcontextprotocol/sdk"), "x")
    assert registry == "npm" and "newer Python" in reason


@pytest.mark.parametrize(
    ("pypi", "npm", "winner"),
    [(9, 1, "pypi"), (12, 5, "pypi"), (83, 1, "pypi"), (1, 13, "npm")],
)
def test_the_package_with_a_release_history_beats_a_one_off_port(pypi, npm, winner):
    registry, reason = choose(cand_n("pypi", pypi), cand_n("npm", npm, sdk="@modelcontextprotocol/sdk"), "x")
    assert registry == winner and "release history" in reason


def test_launchable_beats_a_library_without_executable():
    library = cand("pypi", sdk="mcp", launchable=False)
    assert choose(library, cand("npm", sdk="@modelcontextprotocol/sdk"), "x")[0] == "npm"


def test_first_published_wins_when_both_are_mcp_servers():
    registry, reason = choose(
        cand("pypi", sdk="mcp", first=day("2024-11-21")),
        cand("npm", sdk="@modelcontextprotocol/sdk", first=day("2025-11-10")),
        "x",
    )
    assert registry == "pypi" and "published first (2024-11-21" in reason


def test_established_version_wins_when_first_release_is_unknown():
    sdk = "@modelcontextprotocol/sdk"
    assert choose(cand("pypi", "0.1.6", sdk="mcp"), cand("npm", "4.1.7", sdk=sdk), "x")[0] == "npm"
    assert choose(cand("pypi", "2025.4.25", sdk="mcp"), cand("npm", "0.0.2", sdk=sdk), "x")[0] == "pypi"


def test_still_ambiguous_shows_both_candidates_and_the_explicit_spec():
    with pytest.raises(DetectError) as info:
        choose(cand("pypi", "1.2.0", sdk="mcp"), cand("npm", "2.0.0", sdk="@modelcontextprotocol/sdk"), "twin-mcp")
    message = str(info.value)
    assert "pypi x-mcp 1.2.0 (depends on mcp)" in message
    assert "npm x-mcp 2.0.0 (depends on @modelcontextprotocol/sdk)" in message
    assert "twin-mcp' is ambiguous" in message
    assert "pypi:twin-mcp or npm:twin-mcp" in message


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        (
            {"name": "@modelcontextprotocol/server-memory", "bin": {"mcp-server-memory": "dist/index.js"}},
            "mcp-server-memory",
        ),
        ({"name": "@scope/tool", "bin": "cli.js"}, "tool"),
        ({"name": "@playwright/mcp", "bin": {"playwright-mcp": "cli.js"}}, "playwright-mcp"),
        ({"name": "multi", "bin": {"multi": "a.js", "other": "b.js"}}, "multi"),
        ({"name": "alias", "bin": {"a": "same.js", "b": "same.js"}}, "a"),
        ({"name": "nx-mcp", "bin": "main.js"}, "nx-mcp"),
        (
            {"name": "@wonderwhy-er/desktop-commander", "bin": {"desktop-commander": "a.js", "setup": "b.js"}},
            "desktop-commander",
        ),
    ],
)
def test_npm_bin_is_chosen_as_npx_does(manifest, expected):
    assert npm_bin(manifest) == expected


def test_npm_bin_refuses_what_npx_cannot_run():
    with pytest.raises(DetectError, match="has no 'bin'"):
        npm_bin({"name": "lib", "version": "1.0.0"})
    with pytest.raises(DetectError, match="several executables"):
        npm_bin({"name": "pkg", "bin": {"a": "a.js", "b": "b.js"}})


@pytest.mark.parametrize(
    ("project", "scripts", "modules", "expected"),
    [
        ("mcp-server-git", {"mcp-server-git": "mcp_server_git:main"}, [], ["mcp-server-git"]),
        ("office-word-mcp-server", {"word_mcp_server": "word_document_server.main:run"}, [], ["word_mcp_server"]),
        (
            "Awslabs.AWS-Documentation-MCP-Server",
            {"awslabs.aws-documentation-mcp-server": "m:main"},
            [],
            ["awslabs.aws-documentation-mcp-server"],
        ),
        ("tool", {"tool-cli": "a:b", "tool-mcp": "c:d"}, [], ["tool-mcp"]),
        ("mcp_thing", {"mcp-thing": "a:b", "helper": "c:d"}, [], ["mcp-thing"]),
        ("plain-server", {}, ["plain_server"], ["python", "-m", "plain_server"]),
    ],
)
def test_python_launch_prefers_the_matching_console_script(project, scripts, modules, expected):
    assert python_launch(project, scripts, modules)[0] == expected


def test_python_launch_refuses_a_project_with_nothing_to_run():
    with pytest.raises(DetectError, match="no console script and has no __main__"):
        python_launch("library-only", {}, [])


def test_npm_sdk_packages_include_the_whole_official_scope():
    from components.detect.rules import npm_sdk

    assert npm_sdk({"@modelcontextprotocol/node": "^1"}) == "@modelcontextprotocol/node"
    assert npm_sdk({"@modelcontextprotocol/inspector": "^1"}) is None
    assert npm_sdk({"left-pad": "1"}) is None


def test_sdk_dependency_ignores_optional_extras():
    assert python_sdk(["mcp[cli]>=1.6.0"]) == "mcp"
    assert python_sdk(["FastMCP>=2"]) == "fastmcp"
    assert python_sdk(['mcp>=1; extra == "server"', "httpx"]) is None


def test_python_support_against_the_image_python():
    assert python_supported(">=3.10")
    assert not python_supported("<3.15,>=3.13")
    assert python_supported(None)
    assert python_supported("garbage")  # the installer judges constraints we cannot parse


def test_mcp_mentions_in_names_keywords_and_descriptions():
    assert mentions_mcp("mcp-server-git")
    assert mentions_mcp("@playwright/mcp")
    assert mentions_mcp(None, "A Model Context Protocol server")
    assert mentions_mcp("fastmcp-tool")
    assert not mentions_mcp("left-pad", "pads strings")


def test_resolved_at_rounds_up_to_the_second():
    assert iso_utc(day("2026-10-19T06:48:46.774624")) == "2026-10-19T06:48:47Z"
    assert iso_utc(day("2026-10-19T06:48:46")) == "2026-10-19T06:48:46Z"


def test_env_of_a_custom_runtime_has_a_command_and_no_package():
    spec = RuntimeSpec(spec="srv", runtime="custom", command="srv --flag", args=["a b"])
    assert spec.env() == {"MCP_RUNTIME": "custom", "MCP_COMMAND": "srv --flag", "MCP_ARGS": '["a b"]'}
