"""Sources, configuration and transport: local directories, GitHub through a fake, .npmrc, retries, CLI."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from components.detect import DetectError, DiskCache, detect, make_session
from components.detect.npm import registry_url
from components.detect.pypi import index_url
from infra.cli.__main__ import main as cli
from tests.tools.registry_fakes import NoNetworkSession, RecordedSession

SHA = "0123456789abcdef0123456789abcdef01234567"


def test_local_python_directory_uses_its_console_script(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "weather-mcp"\nversion = "0.3.0"\ndependencies = ["mcp>=1.2"]\n'
        '[project.scripts]\nweather = "weather_mcp:main"\n'
    )
    result = detect(str(tmp_path), session=NoNetworkSession())
    assert (result.runtime, result.launch, result.version) == ("python", ["weather"], "0.3.0")
    assert result.env()["MCP_PACKAGE"] == str(tmp_path)


def test_local_python_directory_without_scripts_runs_its_main_module(tmp_path):
    (tmp_path / "setup.py").write_text("from setuptools import setup\nsetup(name='tiny')\n")
    (tmp_path / "src" / "tiny_server").mkdir(parents=True)
    (tmp_path / "src" / "tiny_server" / "__main__.py").write_text("")
    result = detect(str(tmp_path), session=NoNetworkSession())
    assert result.launch == ["python", "-m", "tiny_server"]


def test_local_npm_directory_uses_its_bin(tmp_path):
    (tmp_path / "package.json").write_text(
        json.dumps({"name": "@me/notes-mcp", "version": "1.0.0", "bin": {"notes-mcp": "dist/index.js"}})
    )
    result = detect(str(tmp_path), session=NoNetworkSession())
    assert (result.runtime, result.launch) == ("npm", ["notes-mcp"])


def test_local_directory_with_both_build_files_chooses_by_sdk_or_asks(tmp_path):
    (tmp_path / "package.json").write_text(
        json.dumps({"name": "both", "bin": "cli.js", "dependencies": {"@modelcontextprotocol/sdk": "^1"}})
    )
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "both"\ndependencies = ["httpx"]\n')
    assert detect(str(tmp_path), session=NoNetworkSession()).runtime == "npm"
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "both"\ndependencies = ["mcp"]\n[project.scripts]\nboth = "both:main"\n'
    )
    with pytest.raises(DetectError, match="set runtime: npm or python"):
        detect(str(tmp_path), session=NoNetworkSession())
    assert detect(str(tmp_path), session=NoNetworkSession(), runtime="python").runtime == "python"


def test_local_path_that_is_not_a_directory(tmp_path):
    with pytest.raises(DetectError, match="is not a directory"):
        detect(str(tmp_path / "missing"), session=NoNetworkSession())


def github_session(files: dict[str, str]) -> RecordedSession:
    session = RecordedSession(fixtures=Path("/nonexistent"))
    session.add(
        "https://api.github.com/repos/acme/srv/commits/v2",
        200,
        {"sha": SHA, "commit": {"committer": {"date": "2026-03-01T10:00:00Z"}}},
    )
    for name in ("package.json", "pyproject.toml", "setup.cfg", "setup.py"):
        url = f"https://raw.githubusercontent.com/acme/srv/{SHA}/{name}"
        session.add(url, 200 if name in files else 404, files.get(name, "404: Not Found"))
    return session


def test_github_python_source_is_pinned_to_the_commit():
    session = github_session({"setup.cfg": "[options.entry_points]\nconsole_scripts =\n    srv-mcp = srv:main\n"})
    result = detect("github:acme/srv@v2", session=session)
    assert result.runtime == "python" and result.launch == ["srv-mcp"]
    assert result.env()["MCP_PACKAGE"] == f"git+https://github.com/acme/srv@{SHA}"
    assert result.env()["MCP_RESOLVED_AT"] == "2026-03-01T10:00:00Z"


def test_github_npm_source_is_pinned_to_the_commit():
    session = github_session({"package.json": json.dumps({"name": "srv", "bin": {"srv": "index.js"}})})
    result = detect("github:acme/srv@v2", session=session)
    assert (result.runtime, result.pinned, result.launch) == ("npm", f"github:acme/srv#{SHA}", ["srv"])


def test_github_unknown_ref_is_a_clear_error():
    session = RecordedSession(fixtures=Path("/nonexistent"))
    session.add("https://api.github.com/repos/acme/srv/commits/nope", 404, {"message": "No commit found"})
    with pytest.raises(DetectError, match="has no ref 'nope'"):
        detect("github:acme/srv@nope", session=session)


def test_npm_registry_comes_from_env_then_npmrc(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / ".npmrc").write_text("registry=https://npm.corp.example/\n@corp:registry=https://corp.example/npm/\n")
    env = {"HOME": str(home)}
    assert registry_url("x", env, cwd=str(tmp_path)) == "https://npm.corp.example/"
    assert registry_url("@corp/tool", env, cwd=str(tmp_path)) == "https://corp.example/npm/"
    assert registry_url("x", {**env, "NPM_CONFIG_REGISTRY": "https://env.example/r"}) == "https://env.example/r/"
    assert registry_url("x", {"HOME": str(tmp_path / "none")}, cwd=str(tmp_path)) == "https://registry.npmjs.org/"


def test_python_index_comes_from_pip_then_uv_env():
    assert index_url({}) == "https://pypi.org/simple/"
    assert index_url({"UV_INDEX_URL": "https://uv.example/simple"}) == "https://uv.example/simple/"
    both = {"PIP_INDEX_URL": "https://pip.example/simple/", "UV_INDEX_URL": "x"}
    assert index_url(both) == "https://pip.example/simple/"


class Flaky(BaseHTTPRequestHandler):
    """Answers 503 twice, then a tiny npm document: the session must retry with backoff."""

    hits = 0

    def do_GET(self):
        type(self).hits += 1
        if type(self).hits <= 2:
            self.send_response(503)
            self.send_header("Retry-After", "0")
            self.end_headers()
            return
        body = json.dumps(
            {
                "name": "flaky-mcp",
                "dist-tags": {"latest": "1.0.0"},
                "versions": {
                    "1.0.0": {
                        "name": "flaky-mcp",
                        "version": "1.0.0",
                        "bin": "cli.js",
                        "dependencies": {"@modelcontextprotocol/sdk": "^1"},
                    }
                },
                "time": {"1.0.0": "2026-01-01T00:00:00.000Z"},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_transient_registry_errors_are_retried(monkeypatch, tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("NPM_CONFIG_REGISTRY", f"http://127.0.0.1:{server.server_port}/")
        result = detect("npm:flaky-mcp", session=make_session(), cache=DiskCache(tmp_path))
    finally:
        server.shutdown()
        server.server_close()
    assert result.pinned == "flaky-mcp@1.0.0" and Flaky.hits == 3


def test_cli_json_for_specs_and_errors(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("CATWALK_CACHE_DIR", str(tmp_path))
    session = RecordedSession()
    monkeypatch.setattr("components.detect.core.make_session", lambda: session)
    status = cli(["detect", "mcp-server-time", "bad;spec", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert status == 1
    assert out[0]["runtime"] == "python" and out[0]["launch"] == ["mcp-server-time"]
    assert set(out[0]) == {"spec", "runtime", "package", "version", "launch", "env", "evidence"}
    assert out[1]["spec"] == "bad;spec" and "';'" in out[1]["error"]


def test_cli_table_shows_runtime_badges(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("CATWALK_CACHE_DIR", str(tmp_path))
    session = RecordedSession()
    monkeypatch.setattr("components.detect.core.make_session", lambda: session)
    assert cli(["detect", "mcp-server-git", "@modelcontextprotocol/server-memory"]) == 0
    out = capsys.readouterr().out
    assert "🐍 python" in out and "📦 npm" in out and "mcp-server-memory" in out
    assert cli(["detect", "--runtime", "custom", "node server.js"]) == 0
    assert "⚙️ custom" in capsys.readouterr().out


def test_cli_refuses_invalid_specs_without_network(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("CATWALK_CACHE_DIR", str(tmp_path))
    session = NoNetworkSession()
    monkeypatch.setattr("components.detect.core.make_session", lambda: session)
    assert cli(["detect", "--json", "--", "-e", "x|y", "--index-url=https://evil.example"]) == 1
    assert all("error" in item for item in json.loads(capsys.readouterr().out))
    assert session.calls == []


def test_cli_acceptance_command_gives_python_npm_python(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("CATWALK_CACHE_DIR", str(tmp_path))
    session = RecordedSession()
    monkeypatch.setattr("components.detect.core.make_session", lambda: session)
    specs = ["mcp-server-git", "@modelcontextprotocol/server-memory", "mcp-server-time"]
    assert cli(["detect", *specs, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [(o["spec"], o["runtime"], o["launch"]) for o in out] == [
        ("mcp-server-git", "python", ["mcp-server-git"]),
        ("@modelcontextprotocol/server-memory", "npm", ["mcp-server-memory"]),
        ("mcp-server-time", "python", ["mcp-server-time"]),
    ]
    assert [o["env"]["MCP_PACKAGE"] for o in out] == [
        "mcp-server-git==2026.10.19",
        "@modelcontextprotocol/server-memory@2026.8.31",
        "mcp-server-time==2026.10.19",
    ]
