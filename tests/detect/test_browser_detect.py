"""Which servers need a browser: the detection rule, the stack config override, and how it is shown."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from components.config import ConfigError, parse_stack
from components.detect import RuntimeSpec, detect
from components.detect.browser import SHOWN, decide, npm_driver, python_driver
from tests.tools.registry_fakes import RecordedSession

pytestmark = pytest.mark.usefixtures("default_indexes")  # fixtures: tests/conftest.py


# --------------------------------------------------------------------------------------------- the rule


@pytest.mark.parametrize(
    ("manifest", "reason"),
    [
        ({"dependencies": {"playwright": "^1.52.0", "zod": "^3"}}, "depends on playwright ^1.52.0"),
        ({"dependencies": {"puppeteer": "^23.4.0"}}, "depends on puppeteer ^23.4.0"),
        ({"dependencies": {"puppeteer-core": "24.1.0"}}, "depends on puppeteer-core 24.1.0"),
        ({"optionalDependencies": {"playwright-core": "1.57.0"}}, "optionally depends on playwright-core 1.57.0"),
        ({"peerDependencies": {"playwright": "*"}}, "has the peer dependency playwright *"),
    ],
)
def test_a_direct_browser_driver_dependency_means_a_browser(manifest, reason):
    assert npm_driver("some-server", manifest) == reason


@pytest.mark.parametrize(
    "manifest",
    [
        {"dependencies": {"@modelcontextprotocol/sdk": "^1", "zod": "^3"}},
        {"devDependencies": {"playwright": "^1.52.0", "puppeteer": "^24"}},  # test tooling, not the server's
        {"dependencies": {"playwright-mcp-helpers": "1.0.0"}},  # a name that merely contains one
        {"dependencies": "not a map"},
        {},
    ],
)
def test_no_driver_among_runtime_dependencies_means_no_browser(manifest):
    assert npm_driver("some-server", manifest) is None


def test_a_server_that_bundles_its_driver_is_known_by_name():
    assert "puppeteer" in (npm_driver("chrome-devtools-mcp", {"dependencies": {}}) or "")


@pytest.mark.parametrize(
    ("requires", "reason"),
    [
        (["mcp>=1.2", "playwright>=1.40"], "depends on playwright>=1.40"),
        (["Patchright==1.50.0"], "depends on Patchright==1.50.0"),
        (["pyppeteer>=1.0.2"], "depends on pyppeteer>=1.0.2"),
        (["mcp", "playwright>=1.40; extra == 'browser'"], None),  # an optional extra is not the server's need
        (["mcp", "not a requirement !!"], None),
    ],
)
def test_python_browser_need_comes_from_unconditional_requirements(requires, reason):
    assert python_driver(requires) == reason


@pytest.mark.parametrize(
    ("detected", "override", "browser", "says"),
    [
        ("depends on playwright ^1", None, "chromium", "needs a browser: chromium (Debian) (depends on playwright ^1)"),
        (None, None, None, None),
        (None, True, "chromium", "needs a browser: chromium (Debian) (browser: true in the stack config)"),
        ("depends on puppeteer 23", False, None, "no browser: browser: false in the stack config"),
        (None, False, None, None),
    ],
)
def test_the_stack_config_overrides_detection_either_way(detected, override, browser, says):
    got, evidence = decide(detected, override)
    assert got == browser
    assert (evidence is None) == (says is None)
    assert says is None or evidence.startswith(says)


def test_a_browser_server_tells_the_entrypoint_it_needs_a_browser():
    spec = RuntimeSpec(spec="x", runtime="npm", package="x", pinned="x@1.0.0", launch=["x"], browser="chromium")
    assert spec.env()["MCP_NEEDS_BROWSER"] == "chromium"
    assert spec.summary()["browser"] == SHOWN == "chromium (Debian)"
    plain = spec.model_copy(update={"browser": None})
    assert "MCP_NEEDS_BROWSER" not in plain.env() and "browser" not in plain.summary()


# ---------------------------------------------------------------------------- detection, recorded registry


def test_playwright_mcp_needs_a_browser_from_its_recorded_release(cache):
    result = detect("@playwright/mcp", session=RecordedSession(), cache=cache)
    assert result.browser == "chromium"
    assert any(e.startswith("needs a browser: chromium (Debian) (depends on playwright") for e in result.evidence)
    assert result.env()["MCP_NEEDS_BROWSER"] == "chromium"


def test_browser_false_in_config_turns_a_detected_need_off(cache):
    result = detect("@playwright/mcp", session=RecordedSession(), cache=cache, browser=False)
    assert result.browser is None and "MCP_NEEDS_BROWSER" not in result.env()
    assert any("browser: false in the stack config" in e for e in result.evidence)


def test_a_server_without_a_driver_needs_no_browser_unless_configured(cache):
    session = RecordedSession()
    plain = detect("mcp-server-time", session=session, cache=cache)
    assert plain.browser is None
    forced = detect("mcp-server-time", session=session, cache=cache, browser=True)
    assert forced.browser == "chromium" and forced.env()["MCP_NEEDS_BROWSER"] == "chromium"


# ------------------------------------------------------------------------------------------- stack config


@pytest.mark.parametrize("value", ["yes", 1, "chromium", [True]])
def test_browser_must_be_a_boolean_naming_the_field(value):
    with pytest.raises(ConfigError) as info:
        parse_stack({"servers": [{"name": "web", "package": "fetcher-mcp", "browser": value}]})
    (problem,) = info.value.problems
    assert (problem.server, problem.field) == ("web", "browser")
    assert "must be true or false" in problem.error


def test_browser_true_is_refused_for_a_custom_command():
    with pytest.raises(ConfigError) as info:
        parse_stack({"servers": [{"name": "web", "command": "my-server --stdio", "browser": True}]})
    (problem,) = info.value.problems
    assert problem.field == "browser" and "unified image, which has no browser" in problem.error


@pytest.mark.parametrize(
    ("stack", "why"),
    [({"bake": False}, "catwalk:bake is false"), ({"image": "registry.fly.io/own:1"}, "catwalk:image is set")],
)
def test_browser_true_needs_a_baked_image(stack, why):
    servers = [{"name": "web", "package": "fetcher-mcp", "browser": True}, {"name": "time", "package": "x"}]
    with pytest.raises(ConfigError) as info:
        parse_stack({**stack, "servers": servers})
    (problem,) = info.value.problems
    assert problem.field == "servers"
    assert problem.error == (
        f"browser: true (web) needs the server's baked image, which gets Chromium, but {why}: the unified image "
        "has no browser"
    )
    assert parse_stack({**stack, "servers": [{**servers[0], "browser": False}]}).servers[0].browser is False


def test_browser_is_optional_and_kept_when_given():
    stack = parse_stack(
        {"servers": [{"name": "a", "package": "fetcher-mcp"}, {"name": "b", "package": "x", "browser": False}]}
    )
    assert [s.browser for s in stack.servers] == [None, False]


# ---------------------------------------------------------------------------------- shown by `infra.cli`


@pytest.mark.network
@pytest.mark.timeout(120)
def test_cli_detect_shows_which_real_servers_need_a_browser():
    specs = [
        "mcp-mermaid@0.4.1",
        "fetcher-mcp@0.3.9",
        "@playwright/mcp@0.0.83",
        "chrome-devtools-mcp@1.11.0",
        "@modelcontextprotocol/server-puppeteer@2025.5.12",
        "@executeautomation/playwright-mcp-server@1.0.12",
        "@modelcontextprotocol/server-memory@2026.8.31",
        "mcp-server-time==2026.10.19",
    ]
    done = subprocess.run(
        [sys.executable, "-m", "infra.cli", "detect", "--json", *specs], capture_output=True, text=True, timeout=110
    )
    assert done.returncode == 0, done.stderr
    shown = {row["spec"]: row.get("browser") for row in json.loads(done.stdout)}
    assert shown == {**{s: "chromium (Debian)" for s in specs[:6]}, specs[6]: None, specs[7]: None}
    table = subprocess.run(
        [sys.executable, "-m", "infra.cli", "detect", "fetcher-mcp@0.3.9"], capture_output=True, text=True, timeout=60
    )
    assert "needs a browser" in table.stdout and "chromium (Debian)" in table.stdout
