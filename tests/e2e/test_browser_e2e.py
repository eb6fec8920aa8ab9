"""Real browser MCP servers, run locally: detect → `entrypoint.sh install` → `serve` → a tool opens a page.

Debian's chromium is the browser (installed here if missing, as the baked image does; skipped with the
reason when that is impossible). Each server comes from the registries at a pinned version, installs with
no browser download, and one of its tools opens a page that this test serves on 127.0.0.1; the page's text
(or, for mcp-mermaid, the rendered diagram) must come back. Only loopback addresses are ever opened.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import subprocess
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import anyio
import httpx
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from components.detect import detect
from components.mcpcheck import check
from tests.tools.entrypoint_env import base_env, run_entrypoint, serving

pytestmark = pytest.mark.network

CHROME_CHANNEL = Path("/opt/google/chrome/chrome")
TOKEN = "browser-test-token-41c2"
START_TIMEOUT = 120
CALL_TIMEOUT = 90


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's Chromium: as found, else installed with apt-get (root only), else the test is skipped."""
    found = shutil.which("chromium")
    if found:
        return found  # Debian's /usr/bin/chromium: its launcher adds the distribution's flags
    if os.geteuid() != 0:
        pytest.skip("Debian's chromium is not installed and this is not root: run `apt-get install chromium`")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    packages = ["chromium", "fonts-liberation"]
    done = subprocess.run(
        ["apt-get", "install", "-y", "--no-install-recommends", *packages],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode != 0:  # stale package lists: refresh once
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, text=True, timeout=300)
        done = subprocess.run(
            ["apt-get", "install", "-y", "--no-install-recommends", *packages],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
    if done.returncode != 0 or not shutil.which("chromium"):
        pytest.skip(f"Debian's chromium could not be installed with apt-get: {(done.stderr or done.stdout)[-400:]}")
    return "/usr/bin/chromium"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("browser-home")


@pytest.fixture(scope="module")
def chrome_channel(home: Path) -> Iterator[None]:
    """Google Chrome's path (the "chrome" channel) leading to the entrypoint's wrapper, as the baked image has it.

    Made for this module when missing (root only) and removed afterwards.
    """
    if CHROME_CHANNEL.exists() or CHROME_CHANNEL.is_symlink():
        yield
        return
    if os.geteuid() != 0:
        pytest.skip(f"{CHROME_CHANNEL} is missing and only root can link it")
    made = [p for p in (CHROME_CHANNEL.parent.parent, CHROME_CHANNEL.parent) if not p.exists()]
    CHROME_CHANNEL.parent.mkdir(parents=True, exist_ok=True)
    CHROME_CHANNEL.symlink_to(home / ".browser" / "chromium")
    try:
        yield
    finally:
        CHROME_CHANNEL.unlink()
        for directory in reversed(made):
            directory.rmdir()


class Page:
    """One HTML page on 127.0.0.1 whose text is unique to this run."""

    def __init__(self) -> None:
        self.marker = f"catwalk-{secrets.token_hex(6)}"
        self.title = f"Page {self.marker}"
        self.sentence = f"The browser read this sentence: {self.marker}."
        body = (
            f"<!doctype html><html><head><title>{self.title}</title></head><body><article>"
            f"<h1>Catwalk browser test</h1><p>{self.sentence}</p></article></body></html>"
        ).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, content = (200, body) if self.path in ("/", "/index.html") else (404, b"not found")
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def page() -> Iterator[Page]:
    served = Page()
    yield served
    served.close()


def installed_env(home: Path, chromium: str, spec: str) -> dict[str, str]:
    """Detect the pinned server (it must need a browser), then `entrypoint.sh install` it with the system one."""
    result = detect(spec)
    assert result.browser == "chromium", result.evidence
    env = base_env(home, **result.env(), MCP_BROWSER=chromium, MCP_AUTH_TOKEN=TOKEN, MCP_HOST="loopback")
    done = run_entrypoint(env, "install", timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "Downloading" not in done.stderr  # no browser came from a CDN
    return env


def serve_env(env: dict[str, str], work: Path) -> dict[str, str]:
    """The server's temporary files (mcp-mermaid writes /tmp/mermaid-tmp-css.css) go to the test's directory."""
    return {**env, "TMPDIR": str(work)}


async def _call(url: str, calls: list[tuple[str, dict]]) -> list[list]:
    results = []
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with anyio.fail_after(CALL_TIMEOUT * len(calls) + 30):
        async with (
            httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(CALL_TIMEOUT)) as client,
            streamable_http_client(url, http_client=client) as (read, write, _),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            for tool, arguments in calls:
                timeout = timedelta(seconds=CALL_TIMEOUT)
                result = await session.call_tool(tool, arguments, read_timeout_seconds=timeout)
                assert not result.isError, f"{tool}: {result.content}"
                results.append(result.content)
    return results


def call_tools(served, *calls: tuple[str, dict]) -> list[list]:
    """Wait for the server, then call the tools in one session; each result's content list, in order."""
    up = check(served.url(), token=TOKEN, timeout=START_TIMEOUT, wait_until_up=True)
    assert up.ok, f"{up.error}\n--- entrypoint output ---\n{served.output()[-4000:]}"
    try:
        return anyio.run(_call, served.url(), list(calls))
    except Exception as exc:  # show what the server said about it
        raise AssertionError(f"{exc!r}\n--- entrypoint output ---\n{served.output()[-4000:]}") from exc


def text_of(content: list) -> str:
    return "\n".join(getattr(item, "text", "") or "" for item in content)


def test_fetcher_mcp_reads_a_loopback_page_with_debian_chromium(home, chromium, page, tmp_path, monkeypatch):
    env = installed_env(home, chromium, "fetcher-mcp@0.3.9")
    monkeypatch.chdir(tmp_path)
    with serving(serve_env(env, tmp_path), "serve") as served:
        (content,) = call_tools(served, ("fetch_url", {"url": page.url}))
    text = text_of(content)
    assert page.sentence in text and page.title in text


def test_mcp_mermaid_installs_despite_its_with_deps_postinstall_and_renders_a_diagram(
    home, chromium, tmp_path, monkeypatch
):
    env = installed_env(home, chromium, "mcp-mermaid@0.4.1")
    monkeypatch.chdir(tmp_path)
    diagram = "graph TD;\n  Catwalk-->Chromium;"
    with serving(serve_env(env, tmp_path), "serve") as served:
        svg, png = call_tools(
            served,
            ("generate_mermaid_diagram", {"mermaid": diagram, "outputType": "svg"}),
            ("generate_mermaid_diagram", {"mermaid": diagram, "outputType": "base64"}),
        )
    text = text_of(svg)
    assert text.lstrip().startswith("<svg") and "Catwalk" in text and "Chromium" in text
    images = [item for item in png if getattr(item, "type", "") == "image"]
    assert images, png
    assert base64.b64decode(images[0].data).startswith(b"\x89PNG\r\n\x1a\n")  # a screenshot taken by Chromium


def test_puppeteer_server_launches_the_system_browser_headless(home, chromium, page, tmp_path, monkeypatch):
    env = installed_env(home, chromium, "@modelcontextprotocol/server-puppeteer@2025.5.12")
    monkeypatch.chdir(tmp_path)
    with serving(serve_env(env, tmp_path), "serve") as served:
        navigated, evaluated = call_tools(
            served,
            ("puppeteer_navigate", {"url": page.url}),
            ("puppeteer_evaluate", {"script": "document.querySelector('p').textContent"}),
        )
    assert page.url in text_of(navigated)
    assert page.sentence in text_of(evaluated)


def test_playwright_mcp_default_chrome_channel_opens_the_page(
    home, chromium, chrome_channel, page, tmp_path, monkeypatch
):
    env = installed_env(home, chromium, "@playwright/mcp@0.0.83")
    monkeypatch.chdir(tmp_path)  # it writes snapshots into its working directory
    with serving(serve_env(env, tmp_path), "serve") as served:
        navigated, evaluated = call_tools(
            served,
            ("browser_navigate", {"url": page.url}),
            ("browser_evaluate", {"function": "() => document.body.innerText"}),
        )
    assert page.title in text_of(navigated)
    assert page.sentence in text_of(evaluated)


def test_chrome_devtools_mcp_bundled_puppeteer_opens_the_page_in_chrome_channel(
    home, chromium, chrome_channel, page, tmp_path, monkeypatch
):
    # No dependency names its driver (bundled) and it launches headed by default: the wrapper makes it headless.
    env = installed_env(home, chromium, "chrome-devtools-mcp@1.11.0")
    monkeypatch.chdir(tmp_path)
    env["HOME"] = str(tmp_path)  # its browser profile goes under ~/.cache
    with serving(serve_env(env, tmp_path), "serve") as served:
        (opened,) = call_tools(served, ("new_page", {"url": page.url}))
    assert f"{page.title} ({page.url}) [selected]" in text_of(opened)


def test_executeautomation_playwright_server_with_two_playwright_cores_reads_the_page(
    home, chromium, page, tmp_path, monkeypatch
):
    env = installed_env(home, chromium, "@executeautomation/playwright-mcp-server@1.0.12")
    monkeypatch.chdir(tmp_path)
    with serving(serve_env(env, tmp_path), "serve") as served:
        navigated, visible = call_tools(
            served, ("playwright_navigate", {"url": page.url}), ("playwright_get_visible_text", {})
        )
    assert page.url in text_of(navigated)
    assert page.sentence in text_of(visible)
