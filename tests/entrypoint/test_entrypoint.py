"""deploy/entrypoint.sh run locally as in the image, checked with a real MCP client.

Installs share one MCP_HOME per module (each server installs once); servers listen on free ports; every
wait is bounded. Tests that download are marked ``network``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from components.mcpcheck import check
from tests.tools.entrypoint_env import (
    ROOT,
    TINY_SERVER,
    base_env,
    can_unshare_network,
    pid_alive,
    run_entrypoint,
    serving,
    wait_for_file,
)

# Pinned servers and the upload time of each pinned version (what detection puts in MCP_RESOLVED_AT).
GIT = ("mcp-server-git==2026.10.19", "2026-10-19T06:48:45Z", "git_status")
TIME = ("mcp-server-time==2026.10.19", "2026-10-19T06:48:51Z", "get_current_time")
SQLITE = ("mcp-server-sqlite==2025.4.25", "2025-04-25T08:27:27Z", "read_query")
MEMORY = ("@modelcontextprotocol/server-memory@2026.8.31", "2026-09-01T22:46:36.382Z", "read_graph")
FILESYSTEM = ("@modelcontextprotocol/server-filesystem@2026.8.31", "2026-09-01T01:08:17.648Z", "list_directory")
# Its dependency better-sqlite3 is a native module: no prebuilt binary reachable here, so it compiles.
SQLITE_NPM = ("mcp-server-sqlite@0.0.2", "2025-11-10T16:01:08.195Z", "list-tables")
# engines.node ">=22" (it imports `glob` from node:fs/promises): a Node 20 (as on a machine running the tests)
# cannot run it, so the entrypoint gives it its own Node 22.
KUBB = ("@kubb/mcp@5.2.0", "2026-09-10T07:29:15.763Z")
# Resolves nothing as of its release + 1 h: it needs certifi 2026.10.19.post1, uploaded 4 h after it.
MARKITDOWN = ("markitdown-mcp==0.0.1a8", "2026-10-21T19:41:57Z", "convert_to_markdown")

START_TIMEOUT = 180  # install on first use + start; a bound, not a speed target (see bench/)
TOKEN = "test-token-7f3c9a"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mcp-home")


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    server = tmp_path / "tiny_server.py"
    server.write_text(TINY_SERVER)
    return server


def custom_env(home: Path, tiny: Path, *extra_args: str, **env: str) -> dict[str, str]:
    args = json.dumps(list(extra_args))
    return base_env(home, MCP_RUNTIME="custom", MCP_COMMAND=f"{sys.executable} {tiny}", MCP_ARGS=args, **env)


def http_status(url: str, token: str | None = None, method: str = "GET") -> tuple[int, str]:
    request = urllib.request.Request(url, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def assert_answers(served, *, token: str | None = None, tool: str, timeout: float = START_TIMEOUT) -> None:
    """initialize + tools/list on 127.0.0.1 and [::1] (streamable HTTP), and once over SSE."""
    first = check(served.url("127.0.0.1"), token=token, timeout=timeout, wait_until_up=True)
    assert first.ok, f"{first.error}\n--- entrypoint output ---\n{served.output()[-4000:]}"
    assert tool in first.tools
    for url in (served.url("::1"), served.url("::1", "/sse")):
        again = check(url, token=token, timeout=20)
        assert again.ok and tool in again.tools, again.error


# --- refusals: no download, nothing installed ----------------------------------------------------------


@pytest.mark.parametrize("runtime", ["java", "", "NPM", "python; id"])
def test_invalid_runtime_exits_1_with_contract_message(home: Path, runtime: str) -> None:
    result = run_entrypoint(base_env(home, MCP_RUNTIME=runtime), timeout=20)
    assert result.returncode == 1
    assert result.stderr.splitlines()[0] == f"Error: Invalid MCP_RUNTIME={runtime}"


def test_unset_runtime_is_invalid(home: Path) -> None:
    result = run_entrypoint(base_env(home), timeout=20)
    assert result.returncode == 1
    assert "Error: Invalid MCP_RUNTIME=" in result.stderr


@pytest.mark.parametrize("runtime", ["python", "npm"])
def test_missing_package_is_refused_naming_the_field(home: Path, runtime: str) -> None:
    result = run_entrypoint(base_env(home, MCP_RUNTIME=runtime), timeout=20)
    assert result.returncode == 1
    assert f"MCP_PACKAGE is required when MCP_RUNTIME={runtime}" in result.stderr


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ({"MCP_RUNTIME": "python", "MCP_PACKAGE": "mcp-server-git; touch {pwned}"}, "MCP_PACKAGE"),
        ({"MCP_RUNTIME": "python", "MCP_PACKAGE": "--index-url=http://127.0.0.1:9/simple"}, "MCP_PACKAGE"),
        ({"MCP_RUNTIME": "python", "MCP_PACKAGE": "$(touch {pwned})"}, "MCP_PACKAGE"),
        ({"MCP_RUNTIME": "python", "MCP_PACKAGE": "mcp-server-git\ntouch {pwned}"}, "MCP_PACKAGE"),
        ({"MCP_RUNTIME": "npm", "MCP_PACKAGE": "@scope/x@1 --registry=http://127.0.0.1:9"}, "MCP_PACKAGE"),
        ({"MCP_RUNTIME": "npm", "MCP_PACKAGE": "../../etc/passwd"}, "MCP_PACKAGE"),
        ({"MCP_RUNTIME": "custom", "MCP_COMMAND": "sh -c 'touch {pwned}'"}, "MCP_COMMAND"),
        ({"MCP_RUNTIME": "custom", "MCP_COMMAND": "true && touch {pwned}"}, "MCP_COMMAND"),
        ({"MCP_RUNTIME": "custom", "MCP_COMMAND": "echo `touch {pwned}`"}, "MCP_COMMAND"),
        ({"MCP_RUNTIME": "custom", "MCP_COMMAND": "-c touch"}, "MCP_COMMAND"),
        ({"MCP_RUNTIME": "custom", "MCP_COMMAND": "touch\n{pwned}"}, "MCP_COMMAND"),
        ({"MCP_RUNTIME": "custom", "MCP_COMMAND": "touch {pwned}", "MCP_ARGS": '["a\\nb"]'}, "MCP_ARGS"),
        ({"MCP_RUNTIME": "custom", "MCP_COMMAND": "touch {pwned}", "MCP_ARGS": "not json"}, "MCP_ARGS"),
        ({"MCP_RUNTIME": "custom", "MCP_COMMAND": "touch {pwned}", "MCP_ARGS": '{"a": 1}'}, "MCP_ARGS"),
    ],
)
def test_injection_attempts_are_refused_before_anything_runs(
    home: Path, tmp_path: Path, env: dict[str, str], field: str
) -> None:
    pwned = tmp_path / "pwned"
    values = {k: v.replace("{pwned}", str(pwned)) for k, v in env.items()}
    result = run_entrypoint(base_env(tmp_path / "home", **values), timeout=30)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.startswith("Error: ") and field in result.stderr
    assert "Starting" not in result.stdout
    assert not pwned.exists()
    assert not (tmp_path / "home").exists() or not any((tmp_path / "home").iterdir())


def test_launch_must_be_a_name_inside_the_server_env(home: Path, tmp_path: Path) -> None:
    env = base_env(tmp_path, MCP_RUNTIME="python", MCP_PACKAGE="mcp-server-time", MCP_LAUNCH='["/bin/sh","-c","id"]')
    env_dir = tmp_path / "python" / "mcp-server-time"
    (env_dir / "bin").mkdir(parents=True)
    (env_dir / ".catwalk-installed").write_text("spec=mcp-server-time\ncutoff=\n")
    result = run_entrypoint(env, "serve", timeout=30)
    assert result.returncode == 1
    assert "MCP_LAUNCH[0] must be a bare executable name" in result.stderr


def test_serve_without_install_says_to_install_first(home: Path, tmp_path: Path) -> None:
    result = run_entrypoint(base_env(tmp_path, MCP_RUNTIME="npm", MCP_PACKAGE="left-pad@1.3.0"), "serve")
    assert result.returncode == 1
    assert "left-pad@1.3.0 is not installed" in result.stderr and "entrypoint.sh install" in result.stderr


def test_unknown_action_is_refused(home: Path) -> None:
    result = run_entrypoint(base_env(home, MCP_RUNTIME="python", MCP_PACKAGE="x"), "deploy", timeout=20)
    assert result.returncode == 1 and "unknown action 'deploy'" in result.stderr


# --- custom command: lifecycle and auth (no download) --------------------------------------------------


def test_custom_command_serves_mcp_on_ipv4_and_ipv6(home: Path, tiny: Path) -> None:
    with serving(custom_env(home, tiny)) as served:
        assert_answers(served, tool="echo", timeout=30)
        assert f"Starting custom command: {sys.executable} {tiny}" in served.output()


def test_custom_command_install_is_a_no_op_that_checks_the_command(home: Path, tiny: Path) -> None:
    assert run_entrypoint(custom_env(home, tiny), "install", timeout=30).returncode == 0
    missing = run_entrypoint(base_env(home, MCP_RUNTIME="custom", MCP_COMMAND="no-such-mcp-cmd"), "install")
    assert missing.returncode == 1 and "'no-such-mcp-cmd' was not found" in missing.stderr


def test_auth_401_without_bearer_token_and_status_stays_open(home: Path, tiny: Path, tmp_path: Path) -> None:
    envfile = tmp_path / "env.txt"
    env = custom_env(home, tiny, "--envfile", str(envfile), MCP_AUTH_TOKEN=TOKEN, CATWALK_PASSED_THROUGH="yes")
    with serving(env) as served:
        ok = check(served.url(), token=TOKEN, timeout=30, wait_until_up=True)
        assert ok.ok, ok.error
        for path, method in [("/mcp", "POST"), ("/mcp", "GET"), ("/sse", "GET"), ("/messages/", "POST")]:
            for token in (None, "wrong-token", TOKEN + "x"):
                status, body = http_status(served.url("127.0.0.1", path), token, method)
                assert status == 401, (path, method, token, status)
        denied = check(served.url("::1", "/sse"), token="wrong-token", timeout=10)
        assert not denied.ok and "401" in (denied.error or "")
        assert check(served.url("::1", "/sse"), token=TOKEN, timeout=10).ok
        status, body = http_status(served.url("::1", "/status"))
        assert status == 200 and TOKEN not in body and json.loads(body) == {"status": "ok"}
        names = set(wait_for_file(envfile, 10).split())
        assert "MCP_AUTH_TOKEN" not in names, "the gateway's token must not reach the MCP server"
        assert "CATWALK_PASSED_THROUGH" in names  # the rest of the environment is passed through
        assert TOKEN not in served.output()


def test_sigterm_stops_a_stubborn_server_and_exits_within_2s(home: Path, tiny: Path, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    with serving(custom_env(home, tiny, "--stubborn", "--pidfile", str(pidfile))) as served:
        assert check(served.url(), timeout=30, wait_until_up=True).ok
        child = int(wait_for_file(pidfile, 10))
        start = time.monotonic()
        served.process.terminate()
        served.wait(5)
        elapsed = time.monotonic() - start
        assert elapsed < 2.0, f"took {elapsed:.2f} s"
        deadline = time.monotonic() + 1
        while pid_alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not pid_alive(child), "the MCP server outlived the gateway"


def test_server_death_exits_non_zero(home: Path, tiny: Path) -> None:
    with serving(custom_env(home, tiny, "--exit-after", "1.5")) as served:
        assert check(served.url(), timeout=30, wait_until_up=True).ok
        code = served.wait(15)
        assert code == 3, served.output()
        assert "MCP server process exited with code 3" in served.output()


def test_server_that_dies_at_start_exits_non_zero_without_hanging(home: Path, tmp_path: Path) -> None:
    env = base_env(home, MCP_RUNTIME="custom", MCP_COMMAND="false")
    with serving(env) as served:
        code = served.wait(20)
    assert code != 0


def test_a_non_mcp_command_times_out_instead_of_hanging(home: Path) -> None:
    env = base_env(home, MCP_RUNTIME="custom", MCP_COMMAND="sleep 60", MCP_START_TIMEOUT="2")
    with serving(env) as served:
        assert served.wait(15) == 1
        assert "did not answer initialize within 2 s" in served.output()


# --- real servers from the registries -------------------------------------------------------------------


@pytest.mark.network
@pytest.mark.parametrize("server", [GIT, TIME, SQLITE], ids=["git", "time", "sqlite"])
def test_python_server_installs_and_answers_on_ipv4_and_ipv6(home: Path, tmp_path: Path, server) -> None:
    spec, resolved_at, tool = server
    extra = {"MCP_ARGS": json.dumps(["--db-path", str(tmp_path / "test.db")])} if spec == SQLITE[0] else {}
    env = base_env(home, MCP_RUNTIME="python", MCP_PACKAGE=spec, MCP_RESOLVED_AT=resolved_at, **extra)
    with serving(env) as served:
        assert_answers(served, tool=tool)
        assert f"Starting Python module: {spec}" in served.output()


@pytest.mark.network
def test_no_resolution_as_of_the_release_retries_a_day_later_and_serves(tmp_path: Path) -> None:
    spec, resolved_at, tool = MARKITDOWN
    env = base_env(tmp_path / "home", MCP_RUNTIME="python", MCP_PACKAGE=spec, MCP_RESOLVED_AT=resolved_at)
    installed = run_entrypoint(env, "install", timeout=300)
    assert installed.returncode == 0, installed.stderr[-3000:]
    assert "No solution found" in installed.stderr
    assert (
        f"No resolution of {spec} as of 2026-10-21T20:41:57Z; retrying with dependencies as of 2026-10-22T19:41:57Z"
        in installed.stderr.splitlines()
    )
    marker = tmp_path / "home" / "python" / spec / ".catwalk-installed"
    assert marker.read_text() == f"spec={spec}\ncutoff=2026-10-22T19:41:57Z\n"
    with serving(env, "serve") as served:
        result = check(served.url(), timeout=120, wait_until_up=True)
        assert result.ok, f"{result.error}\n--- entrypoint output ---\n{served.output()[-4000:]}"
        assert tool in result.tools


@pytest.mark.network
def test_python_launch_override_runs_a_module(home: Path) -> None:
    spec, resolved_at, tool = TIME
    env = base_env(
        home,
        MCP_RUNTIME="python",
        MCP_PACKAGE=spec,
        MCP_RESOLVED_AT=resolved_at,
        MCP_LAUNCH='["python","-m","mcp_server_time"]',
    )
    with serving(env) as served:
        result = check(served.url(), timeout=START_TIMEOUT, wait_until_up=True)
        assert result.ok and tool in result.tools, result.error


@pytest.mark.network
def test_sqlite_needs_dependencies_as_of_its_release(home: Path, tmp_path: Path) -> None:
    """Today's dependencies (mcp 2.x) break mcp-server-sqlite 2025.4.25 at start; the cutoff fixes it."""
    spec = SQLITE[0]
    env = base_env(
        tmp_path / "home",
        MCP_RUNTIME="python",
        MCP_PACKAGE=spec,
        MCP_EXCLUDE_NEWER="none",
        MCP_ARGS=json.dumps(["--db-path", str(tmp_path / "t.db")]),
    )
    with serving(env) as served:
        code = served.wait(START_TIMEOUT)
        assert code != 0, "expected the unpinned resolution to fail; has upstream changed?"
        assert "MCP server process exited" in served.output()


@pytest.mark.network
def test_npm_memory_server_answers_on_ipv4_and_ipv6(home: Path) -> None:
    spec, resolved_at, tool = MEMORY
    env = base_env(home, MCP_RUNTIME="npm", MCP_PACKAGE=spec, MCP_RESOLVED_AT=resolved_at)
    with serving(env) as served:
        assert_answers(served, tool=tool)
        assert f"Starting npm package: {spec}" in served.output()


@pytest.mark.network
def test_npm_filesystem_server_gets_its_directory_arg(home: Path, tmp_path: Path) -> None:
    spec, resolved_at, tool = FILESYSTEM
    shared = tmp_path / "shared"
    shared.mkdir()
    env = base_env(
        home, MCP_RUNTIME="npm", MCP_PACKAGE=spec, MCP_RESOLVED_AT=resolved_at, MCP_ARGS=json.dumps([str(shared)])
    )
    with serving(env) as served:
        assert_answers(served, tool=tool)
        assert str(shared) in served.output()  # the server announces its allowed directory


@pytest.mark.network
@pytest.mark.timeout(900)
def test_npm_native_module_builds_against_local_node_headers_and_serves(tmp_path: Path) -> None:
    """better-sqlite3's prebuilt binary (GitHub) is unreachable here; node-gyp builds it with no header download."""
    spec, resolved_at, tool = SQLITE_NPM
    db = tmp_path / "test.db"
    # No user npmrc, as for the image's app user: a developer's `nodedir=` there would hide the entrypoint's.
    npmrc = tmp_path / "npmrc"
    npmrc.write_text("")
    env = base_env(
        tmp_path / "home",
        MCP_RUNTIME="npm",
        MCP_PACKAGE=spec,
        MCP_RESOLVED_AT=resolved_at,
        MCP_ARGS=json.dumps(["--db", str(db)]),
        npm_config_userconfig=str(npmrc),
    )
    env = {k: v for k, v in env.items() if k.lower() != "npm_config_nodedir"}
    installed = run_entrypoint(env, "install", timeout=600)
    assert installed.returncode == 0, installed.stderr[-3000:]
    assert "Native modules build against the Node.js headers in" in installed.stderr
    addon = tmp_path / "home" / "npm" / spec / "node_modules" / "better-sqlite3" / "build" / "Release"
    assert (addon / "better_sqlite3.node").is_file()
    with serving(env, "serve") as served:
        result = check(served.url(), timeout=120, wait_until_up=True)
        assert result.ok, f"{result.error}\n--- entrypoint output ---\n{served.output()[-4000:]}"
        assert tool in result.tools and "query" in result.tools


@pytest.mark.network
@pytest.mark.timeout(600)
def test_npm_server_needing_node_22_gets_node_22_and_answers(tmp_path: Path) -> None:
    """@kubb/mcp declares engines.node >=22; on an older Node the entrypoint installs Node 22 for it alone."""
    spec, resolved_at = KUBB
    env = base_env(tmp_path / "home", MCP_RUNTIME="npm", MCP_PACKAGE=spec, MCP_RESOLVED_AT=resolved_at)
    image_node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=True).stdout
    installed = run_entrypoint(env, "install", timeout=480)
    assert installed.returncode == 0, installed.stderr[-3000:]
    env_dir = tmp_path / "home" / "npm" / spec.replace("/", "+")
    marker = (env_dir / ".catwalk-installed").read_text().splitlines()
    assert marker[0] == f"spec={spec}"
    if int(image_node.lstrip("v").split(".")[0]) >= 22:
        assert not (env_dir / ".node").exists()
    else:
        chosen = next(line.removeprefix("node=") for line in marker if line.startswith("node="))
        assert chosen.startswith("22.")
        assert f"{spec} needs Node >=22; installing Node {chosen} for it" in installed.stderr
        run = subprocess.run([env_dir / ".node" / "bin" / "node", "--version"], capture_output=True, text=True)
        assert run.stdout == f"v{chosen}\n"
    with serving(env, "serve") as served:
        result = check(served.url(), timeout=120, wait_until_up=True)
        assert result.ok, f"{result.error}\n--- entrypoint output ---\n{served.output()[-4000:]}"
        assert result.tools, "tools/list answered no tools"


@pytest.mark.network
@pytest.mark.parametrize(
    ("runtime", "package", "message"),
    [
        ("npm", "@alexarevalo.ai/mcp-server-ticktick", "was not found on the npm registry (404)"),
        ("npm", "catwalk-no-such-package-4f2a9e@1.0.0", "was not found on the npm registry (404)"),
        ("python", "catwalk-no-such-package-4f2a9e==1.0.0", "was not found on the Python package index"),
    ],
)
def test_nonexistent_package_fails_fast_with_not_found(
    tmp_path: Path, runtime: str, package: str, message: str
) -> None:
    start = time.monotonic()
    result = run_entrypoint(base_env(tmp_path, MCP_RUNTIME=runtime, MCP_PACKAGE=package), timeout=90)
    assert result.returncode != 0
    assert f"Error: install of {package} failed: {package} {message}" in result.stderr
    assert "Starting" not in result.stdout
    assert time.monotonic() - start < 90
    assert not (tmp_path / runtime).exists() or not any((tmp_path / runtime).iterdir())


OFFLINE_CHECK = """
import json, sys
from components.mcpcheck import check
from tests.tools.entrypoint_env import serving
env = json.loads(sys.argv[1])
with serving(env, "serve") as served:
    result = check(served.url(sys.argv[2]), timeout=60, wait_until_up=True)
print(result.model_dump_json())
"""


@pytest.mark.network
@pytest.mark.parametrize("server", [("python", *TIME), ("npm", *MEMORY)], ids=["python", "npm"])
def test_after_install_serving_needs_no_network(home: Path, server) -> None:
    runtime, spec, resolved_at, tool = server
    env = base_env(home, MCP_RUNTIME=runtime, MCP_PACKAGE=spec, MCP_RESOLVED_AT=resolved_at)
    installed = run_entrypoint(env, "install")
    assert installed.returncode == 0, installed.stderr[-3000:]
    # Registries and proxies point at a closed loopback port; with a network namespace, there is no
    # network at all but loopback.
    closed = "http://127.0.0.1:9"
    env |= {
        "npm_config_registry": f"{closed}/",
        "UV_INDEX_URL": f"{closed}/simple",
        "UV_DEFAULT_INDEX": f"{closed}/simple",
        "PIP_INDEX_URL": f"{closed}/simple",
        "HTTP_PROXY": closed,
        "HTTPS_PROXY": closed,
        "NO_PROXY": "127.0.0.1,::1,localhost",
    }
    host = "::1" if runtime == "npm" else "127.0.0.1"
    command = [sys.executable, "-c", OFFLINE_CHECK, json.dumps(env), host]
    if can_unshare_network():
        command = ["unshare", "-rn", "sh", "-c", 'ip link set lo up && exec "$@"', "offline", *command]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["ok"], result["error"]
    assert tool in result["tools"]


def listening_addresses(port: int) -> set[str]:
    """The local addresses with a listening TCP socket on `port`, read from /proc/net/tcp{,6}."""
    import ipaddress

    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].split(":")
            if fields[3] == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(address)
                # The kernel prints each 32-bit word in host (little-endian) order.
                packed = b"".join(raw[i : i + 4][::-1] for i in range(0, width // 2, 4))
                found.add(str(ipaddress.ip_address(packed)))
    return found


def test_loopback_host_keeps_the_server_off_other_interfaces(home: Path, tiny: Path) -> None:
    with serving({**custom_env(home, tiny), "MCP_HOST": "loopback"}) as served:
        assert_answers(served, tool="echo", timeout=30)
        assert listening_addresses(served.port) == {"127.0.0.1", "::1"}


def test_default_host_listens_on_all_interfaces_as_fly_needs(home: Path, tiny: Path) -> None:
    with serving(custom_env(home, tiny)) as served:
        assert_answers(served, tool="echo", timeout=30)
        assert listening_addresses(served.port) == {"0.0.0.0", "::"}
