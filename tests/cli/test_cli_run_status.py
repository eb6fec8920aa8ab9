"""`infra.cli run` serves a server locally behind a fresh token; `infra.cli status` reports health."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from components.mcpcheck import check
from tests.tools.entrypoint_env import TINY_SERVER, free_port

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "infra.cli", *args],
        cwd=ROOT,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kwargs,
    )


def test_run_serves_a_custom_server_locally_behind_a_fresh_token(tmp_path):
    server = tmp_path / "tiny.py"
    server.write_text(TINY_SERVER)
    port = free_port()
    process = cli(
        "run",
        "--command",
        f"{sys.executable} {server}",
        "--port",
        str(port),
        "--home",
        str(tmp_path),
        "--timeout",
        "60",
    )
    try:
        lines = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and len(lines) < 3:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line.strip())
        assert lines[0] == f"MCP server ready at http://127.0.0.1:{port}/mcp (1 tools: echo)", lines
        token = lines[1].removeprefix("token: ")
        assert len(token) >= 40
        assert lines[2].startswith("claude mcp add --transport http local")
        assert check(f"http://127.0.0.1:{port}/mcp", token=token, timeout=20).tools == ["echo"]
        assert httpx.post(f"http://127.0.0.1:{port}/mcp", json={}, timeout=10).status_code == 401
    finally:
        process.send_signal(signal.SIGTERM)
        status = process.wait(20)
    assert status is not None
    time.sleep(0.5)
    try:
        httpx.get(f"http://127.0.0.1:{port}/status", timeout=2)
        raise AssertionError("the server still answers after the CLI was stopped")
    except httpx.ConnectError:
        pass


def test_run_refuses_an_unsafe_command_before_starting_anything(tmp_path):
    process = cli("run", "--command", "node a.js; curl evil", "--home", str(tmp_path))
    _out, err = process.communicate(timeout=60)
    assert process.returncode == 1
    assert "without a shell" in err and not list(tmp_path.iterdir())


class StatusOnly(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/status" else 404)
        self.end_headers()
        self.wfile.write(b'{"status":"ok"}')

    def log_message(self, *args):
        pass


def test_status_tables_each_server_with_its_health(tmp_path):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), StatusOnly)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        up = f"http://127.0.0.1:{httpd.server_address[1]}/mcp"
        down = f"http://127.0.0.1:{free_port()}/mcp"
        outputs = {
            "git": {
                "url": up,
                "badge": "🐍 python",
                "package": "mcp-server-git",
                "version": "2025.1.14",
                "regions": ["iad"],
                "token": "[secret]",
                "auth": "both",
            },
            "memory": {
                "url": down,
                "badge": "📦 npm",
                "package": "@modelcontextprotocol/server-memory",
                "version": "2025.4.25",
                "regions": ["ams"],
            },
            "note": "not a server",
        }
        path = tmp_path / "outputs.json"
        path.write_text(json.dumps(outputs))
        process = cli("status", str(path), env={"COLUMNS": "250", "PATH": "/usr/bin:/bin"})
        out, _err = process.communicate(timeout=60)
    finally:
        httpd.shutdown()
    assert process.returncode == 1, "a server that is down makes status fail"
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") > 5}
    assert set(rows) == {"git", "memory"}
    assert "✓ up" in rows["git"] and "2025.1.14" in rows["git"] and "🐍 python" in rows["git"]
    assert "✗ unreachable" in rows["memory"]
    assert rows["git"].split("│")[6].strip() == "both"
    assert rows["memory"].split("│")[6].strip() == "bearer", "outputs without a mode: the bearer token"


def status_without_health(outputs: str) -> subprocess.CompletedProcess[str]:
    """`status - --no-health` given the stack outputs ``outputs`` (JSON) on stdin, in a 200-column terminal."""
    return subprocess.run(
        [sys.executable, "-m", "infra.cli", "status", "-", "--no-health"],
        input=outputs,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        env={"COLUMNS": "200"},
    )


@pytest.mark.parametrize(("auth", "shown"), [("oauth", "oauth"), (False, "open"), (True, "bearer")])
def test_status_shows_each_servers_auth_mode(auth, shown):
    outputs = json.dumps({"git": {"url": "https://acme-git.fly.dev/mcp", "auth": auth}})
    done = status_without_health(outputs)
    assert done.returncode == 0, done.stderr
    [row] = [line for line in done.stdout.splitlines() if "acme-git" in line]
    assert row.split("│")[6].strip() == shown


def test_status_reads_outputs_from_stdin_without_health_checks():
    outputs = json.dumps({"git": {"url": "https://acme-git.fly.dev/mcp", "badge": "🐍 python"}})
    done = status_without_health(outputs)
    assert done.returncode == 0, done.stderr
    assert "https://acme-git.fly.dev/mcp" in done.stdout and "1 MCP server(s)" in done.stdout


def test_run_keeps_deploy_credentials_away_from_the_server(monkeypatch, tmp_path):
    from components.detect.models import custom_spec
    from infra.cli.run import server_env

    for name, value in {
        "FLY_API_TOKEN": "fo1_x",
        "PULUMI_CONFIG_PASSPHRASE": "pp",
        "AWS_SECRET_ACCESS_KEY": "a",
        "MY_SERVICE_TOKEN": "t",
        "MCP_AUTH_TOKEN": "stale",
        "HTTPS_PROXY": "http://127.0.0.1:3128",
        "SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt",
    }.items():
        monkeypatch.setenv(name, value)
    env = server_env(custom_spec("node s.js"), port=8123, home=tmp_path, token="fresh")
    assert not {"FLY_API_TOKEN", "PULUMI_CONFIG_PASSPHRASE", "AWS_SECRET_ACCESS_KEY", "MY_SERVICE_TOKEN"} & set(env)
    assert env["MCP_AUTH_TOKEN"] == "fresh" and env["PORT"] == "8123" and env["MCP_COMMAND"] == "node s.js"
    assert env["HTTPS_PROXY"] == "http://127.0.0.1:3128" and env["SSL_CERT_FILE"].endswith(".crt")


def test_run_hands_the_server_only_allowlisted_shell_variables(monkeypatch, tmp_path):
    # Credentials under names no denylist foresees stay in the shell; locale, proxy and CA settings pass.
    from components.detect.models import custom_spec
    from infra.cli.run import server_env

    leaks = {
        "DATABASE_URL": "postgres://app:hunter2@db/app",
        "GH_PAT": "ghp_x",
        "SSH_AUTH_SOCK": "/tmp/ssh-agent.sock",
        "OPENAI_KEY": "sk-x",
        "KUBECONFIG": "/home/me/.kube/config",
        "NPM_CONFIG_REGISTRY": "https://user:pw@registry.example/",
        "LD_PRELOAD": "/tmp/x.so",
    }
    for name, value in {**leaks, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "no_proxy": "localhost"}.items():
        monkeypatch.setenv(name, value)
    env = server_env(custom_spec("node s.js"), port=8123, home=tmp_path, token="fresh")
    assert not set(leaks) & set(env), sorted(set(leaks) & set(env))
    assert "hunter2" not in repr(env)
    assert env["LANG"] == "C.UTF-8" and env["LC_ALL"] == "C.UTF-8" and env["no_proxy"] == "localhost"


def test_run_passes_a_variable_named_with_env_and_refuses_one_that_would_steer_installs(monkeypatch, tmp_path):
    from infra.cli.run import UsageError, passed_env

    monkeypatch.setenv("GITHUB_TOKEN", "ghp_mine")
    assert passed_env(["GITHUB_TOKEN", "LOG_LEVEL=debug"]) == {"GITHUB_TOKEN": "ghp_mine", "LOG_LEVEL": "debug"}
    for item, fragment in [
        ("HTTPS_PROXY=http://evil:3128", "redirect"),
        ("MCP_AUTH_TOKEN=x", "reserved"),
        ("NOT_SET_ANYWHERE_42", "not set in this shell"),
        ("GREETING=a\nb", "control character"),
    ]:
        monkeypatch.delenv("NOT_SET_ANYWHERE_42", raising=False)
        with pytest.raises(UsageError, match=fragment) as caught:
            passed_env([item])
        assert str(caught.value).startswith(f"--env {item.partition('=')[0]}:")


def test_run_without_auth_says_so_to_the_gateway_and_with_a_token_does_not(tmp_path):
    from components.detect.models import custom_spec
    from infra.cli.run import server_env

    assert server_env(custom_spec("node s.js"), port=8123, home=tmp_path, token=None)["MCP_AUTH"] == "off"
    assert "MCP_AUTH" not in server_env(custom_spec("node s.js"), port=8123, home=tmp_path, token="fresh")


BROWSER_SPEC = {
    "spec": "fetcher-mcp",
    "runtime": "npm",
    "registry": "npm",
    "package": "fetcher-mcp",
    "version": "0.3.6",
    "pinned": "fetcher-mcp@0.3.6",
    "launch": ["fetcher-mcp"],
    "browser": "chromium",
}


def fake_chromium(directory: Path) -> Path:
    directory.mkdir()
    browser = directory / "chromium"
    browser.write_text("#!/bin/sh\nexit 0\n")
    browser.chmod(0o755)
    return browser


def test_run_hands_a_browser_server_the_chromium_on_path(monkeypatch, tmp_path):
    from components.detect.models import RuntimeSpec
    from infra.cli.run import server_env

    browser = fake_chromium(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{browser.parent}:/usr/bin:/bin")
    monkeypatch.delenv("MCP_BROWSER", raising=False)
    env = server_env(RuntimeSpec(**BROWSER_SPEC), port=8123, home=tmp_path, token=None)
    assert env["MCP_BROWSER"] == str(browser) and env["MCP_NEEDS_BROWSER"] == "chromium"


def test_run_prefers_the_callers_mcp_browser_and_gives_it_only_to_browser_servers(monkeypatch, tmp_path):
    from components.detect.models import RuntimeSpec, custom_spec
    from infra.cli.run import server_env

    fake_chromium(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    monkeypatch.setenv("MCP_BROWSER", "/opt/chromium/chrome")
    env = server_env(RuntimeSpec(**BROWSER_SPEC), port=8123, home=tmp_path, token=None)
    assert env["MCP_BROWSER"] == "/opt/chromium/chrome"
    assert "MCP_BROWSER" not in server_env(custom_spec("node s.js"), port=8123, home=tmp_path, token=None)


def test_run_of_a_browser_server_without_chromium_says_how_to_get_one_and_starts_nothing(monkeypatch, tmp_path, capsys):
    import argparse

    from components.detect.models import RuntimeSpec
    from infra.cli import run

    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("MCP_BROWSER", raising=False)
    monkeypatch.setattr(run, "detect", lambda *a, **k: RuntimeSpec(**BROWSER_SPEC))
    monkeypatch.setattr(run.subprocess, "Popen", lambda *a, **k: pytest.fail("the server was started"))
    monkeypatch.setattr(run.signal, "signal", lambda *a: None)
    home = tmp_path / "home"
    args = argparse.Namespace(
        command=False,
        spec="fetcher-mcp",
        version=None,
        runtime=None,
        arg=[],
        no_auth=False,
        env=[],
        home=str(home),
        port=8123,
        timeout=5.0,
    )
    assert run.handle(args) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "fetcher-mcp@0.3.6 drives a browser and no Chromium was found" in err
    assert "apt-get install chromium" in err and "set MCP_BROWSER" in err
    assert not home.exists()
