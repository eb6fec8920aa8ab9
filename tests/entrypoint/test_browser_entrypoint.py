"""entrypoint.sh and browsers, offline: refusals, the links to the system browser, the wrapper, the scripts run.

A fake npm (via NPM) installs a fake server whose postinstall is a browser install, a dependency with an
install script, and a playwright-core whose registry has the shape of the real one (``findExecutable(name)``
with ``directory`` and ``executablePath()``); the real packages are in ``test_browser_e2e.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tools.entrypoint_env import base_env, run_entrypoint

PACKAGE = "shot-mcp@1.2.3"

FAKE_NPM = f"""#!{sys.executable}
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps({{"argv": args, "env": {{k: v for k, v in os.environ.items()
                          if k.startswith(("PLAYWRIGHT_", "PUPPETEER_", "npm_config_nodedir"))}}}}) + "\\n")
prefix = args[args.index("--prefix") + 1]
if args[0] != "install":
    sys.exit(0)
modules = os.path.join(prefix, "node_modules")
def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, "w").write(text)
scripts = json.loads(os.environ.get("FAKE_SCRIPTS", "{{}}"))
write(os.path.join(modules, "shot-mcp", "package.json"),
      json.dumps({{"name": "shot-mcp", "version": "1.2.3", "bin": {{"shot-mcp": "index.js"}}, "scripts": scripts}}))
write(os.path.join(modules, "shot-mcp", "index.js"), "#!/usr/bin/env node\\n")
os.makedirs(os.path.join(modules, ".bin"), exist_ok=True)
os.symlink("../shot-mcp/index.js", os.path.join(modules, ".bin", "shot-mcp"))
os.chmod(os.path.join(modules, "shot-mcp", "index.js"), 0o755)
core = os.path.join(modules, "playwright-core")
write(os.path.join(core, "package.json"), json.dumps({{"name": "playwright-core", "version": "9.9.9"}}))
write(os.path.join(core, "lib", "server", "registry", "index.js"), '''
const path = require("path");
const root = process.env.PLAYWRIGHT_BROWSERS_PATH;
const dirs = {{ "chromium": ["chromium-4242", "chrome-linux64", "chrome"],
               "chromium-headless-shell": ["chromium_headless_shell-4242", "chrome-headless-shell-linux64",
                                           "chrome-headless-shell"] }};
exports.registry = {{ findExecutable(name) {{
    const d = dirs[name];
    if (!d) return undefined;
    return {{ directory: path.join(root, d[0]), executablePath: () => path.join(root, ...d) }};
}} }};
''')
write(os.path.join(modules, "native-dep", "package.json"), json.dumps({{"name": "native-dep", "version": "1.0.0"}}))
lock = {{"packages": {{"": {{}}, "node_modules/shot-mcp": {{"version": "1.2.3", "hasInstallScript": bool(scripts)}},
                     "node_modules/native-dep": {{"version": "1.0.0", "hasInstallScript": True}},
                     "node_modules/playwright-core": {{"version": "9.9.9"}}}}}}
write(os.path.join(modules, ".package-lock.json"), json.dumps(lock))
"""

# Stands in for Chromium: prints the argv it was started with, one per line.
FAKE_BROWSER = "#!/bin/sh\nprintf '%s\\n' \"$@\"\n"


@pytest.fixture
def tools(tmp_path: Path) -> dict[str, Path]:
    npm = tmp_path / "npm"
    npm.write_text(FAKE_NPM)
    npm.chmod(0o755)
    browser = tmp_path / "bin" / "chromium"
    browser.parent.mkdir()
    browser.write_text(FAKE_BROWSER)
    browser.chmod(0o755)
    return {"npm": npm, "browser": browser, "log": tmp_path / "npm.log"}


def browser_env(tmp_path: Path, tools: dict[str, Path], **extra: str) -> dict[str, str]:
    extra = {
        "MCP_RUNTIME": "npm",
        "MCP_PACKAGE": PACKAGE,
        "MCP_LAUNCH": '["shot-mcp"]',
        "MCP_EXCLUDE_NEWER": "none",
        "NPM": str(tools["npm"]),
        "FAKE_LOG": str(tools["log"]),
        **extra,
    }
    return base_env(tmp_path / "home", **extra)


def npm_calls(tools: dict[str, Path]) -> list[dict]:
    if not tools["log"].exists():
        return []
    return [json.loads(line) for line in tools["log"].read_text().splitlines()]


def env_dir(tmp_path: Path) -> Path:
    return tmp_path / "home" / "npm" / PACKAGE


# --- refusals ----------------------------------------------------------------------------------------------


def test_a_server_that_needs_a_browser_is_refused_without_one_before_anything_is_installed(tmp_path, tools):
    result = run_entrypoint(browser_env(tmp_path, tools, MCP_NEEDS_BROWSER="chromium"), "install", timeout=60)
    assert result.returncode == 1
    assert result.stderr.startswith(f"Error: {PACKAGE} drives a browser (Chromium) and none is configured")
    assert "MCP_BROWSER" in result.stderr
    assert npm_calls(tools) == [] and not env_dir(tmp_path).exists()


@pytest.mark.parametrize("value", ["chromium", "usr/bin/chromium", "/usr/bin/chromium --x", "/a/../b", "/x;id"])
def test_mcp_browser_must_be_a_plain_absolute_path(tmp_path, tools, value):
    result = run_entrypoint(browser_env(tmp_path, tools, MCP_BROWSER=value), "install", timeout=60)
    assert result.returncode == 1
    assert "MCP_BROWSER must be the absolute path of a Chromium executable" in result.stderr
    assert npm_calls(tools) == []


def test_only_chromium_can_be_needed(tmp_path, tools):
    result = run_entrypoint(browser_env(tmp_path, tools, MCP_NEEDS_BROWSER="firefox"), "install", timeout=60)
    assert result.returncode == 1 and "MCP_NEEDS_BROWSER must be 'chromium' or empty" in result.stderr


# --- install with a system browser ----------------------------------------------------------------------


def installed(tmp_path, tools, scripts: dict[str, str] | None = None, **extra: str) -> subprocess.CompletedProcess:
    env = browser_env(
        tmp_path,
        tools,
        MCP_BROWSER=str(tools["browser"]),
        MCP_NEEDS_BROWSER="chromium",
        FAKE_SCRIPTS=json.dumps(scripts or {"postinstall": "playwright install --with-deps chromium"}),
        **extra,
    )
    result = run_entrypoint(env, "install", timeout=120)
    assert result.returncode == 0, result.stderr
    return result


def test_install_downloads_no_browser_and_runs_the_scripts_later_without_the_servers_browser_install(tmp_path, tools):
    result = installed(tmp_path, tools)
    install, rebuild = npm_calls(tools)
    assert install["argv"][0] == "install" and "--ignore-scripts" in install["argv"]
    for call in (install, rebuild):
        assert call["env"]["PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD"] == "1" and call["env"]["PUPPETEER_SKIP_DOWNLOAD"] == "1"
        assert call["env"]["PLAYWRIGHT_BROWSERS_PATH"] == str(env_dir(tmp_path) / ".browsers")
    # The dependency's install script runs; the server's own `playwright install --with-deps` does not.
    assert rebuild["argv"][0] == "rebuild" and rebuild["argv"][-1] == "native-dep" and "shot-mcp" not in rebuild["argv"]
    assert "Skipping shot-mcp@1.2.3's own browser install (playwright install --with-deps chromium)" in result.stderr
    # Native modules of the later scripts build against the same local Node headers as the install's would.
    node_prefix = Path(shutil.which("node") or "/usr/bin/node").resolve().parent.parent
    headers = str(node_prefix) if (node_prefix / "include" / "node" / "common.gypi").is_file() else None
    assert rebuild["env"].get("npm_config_nodedir") == install["env"].get("npm_config_nodedir") == headers


def test_a_servers_own_script_that_installs_no_browser_still_runs(tmp_path, tools):
    installed(tmp_path, tools, scripts={"postinstall": "node build-cache.js"})
    rebuild = npm_calls(tools)[1]
    assert sorted(rebuild["argv"][-2:]) == ["native-dep", "shot-mcp"]


def test_playwrights_expected_executables_lead_to_the_system_browser_and_count_as_installed(tmp_path, tools):
    installed(tmp_path, tools)
    browsers = env_dir(tmp_path) / ".browsers"
    wrapper = tmp_path / "home" / ".browser" / "chromium"
    for directory, exe in [
        ("chromium-4242", "chrome-linux64/chrome"),
        ("chromium_headless_shell-4242", "chrome-headless-shell-linux64/chrome-headless-shell"),
    ]:
        assert os.readlink(browsers / directory / exe) == str(wrapper)
        assert (browsers / directory / "INSTALLATION_COMPLETE").exists()
    (link,) = (browsers / ".links").iterdir()
    assert link.read_text() == str(env_dir(tmp_path) / "node_modules" / "playwright-core")
    assert f"exec {tools['browser']} " in wrapper.read_text()


def run_wrapper(wrapper: Path, *args: str, **env: str) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    done = subprocess.run([str(wrapper), *args], env={**clean, **env}, capture_output=True, text=True, timeout=20)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_the_browser_runs_headless_without_a_display_and_keeps_the_servers_arguments(tmp_path, tools):
    installed(tmp_path, tools)
    wrapper = tmp_path / "home" / ".browser" / "chromium"
    root = ["--no-sandbox"] if os.geteuid() == 0 else []
    assert run_wrapper(wrapper, "--remote-debugging-pipe", "about:blank") == [
        "--headless",
        *root,
        "--remote-debugging-pipe",
        "about:blank",
    ]
    assert run_wrapper(wrapper, "--headless=new", "x") == [*root, "--headless=new", "x"]
    assert run_wrapper(wrapper, "x", DISPLAY=":0") == [*root, "x"]


def test_serve_gives_the_server_the_browser_and_refuses_when_it_is_gone(tmp_path, tools):
    installed(tmp_path, tools)
    env = browser_env(tmp_path, tools, MCP_NEEDS_BROWSER="chromium", MCP_BROWSER=str(tmp_path / "gone" / "chromium"))
    result = run_entrypoint(env, "serve", timeout=60)
    assert result.returncode == 1
    assert f"{PACKAGE} drives a browser and MCP_BROWSER={tmp_path}/gone/chromium is not executable" in result.stderr
    unset = run_entrypoint(browser_env(tmp_path, tools, MCP_NEEDS_BROWSER="chromium"), "serve", timeout=60)
    assert unset.returncode == 1 and "none is configured" in unset.stderr


def test_without_a_browser_need_the_install_runs_scripts_normally_with_downloads_skipped(tmp_path, tools):
    env = browser_env(tmp_path, tools, MCP_BROWSER=str(tools["browser"]), FAKE_SCRIPTS="{}")
    result = run_entrypoint(env, "install", timeout=120)
    assert result.returncode == 0, result.stderr
    (install,) = npm_calls(tools)
    assert "--ignore-scripts" not in install["argv"]
    assert install["env"]["PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD"] == "1"


# --- Python servers: the playwright package's bundled driver --------------------------------------------

FAKE_UV = f"""#!{sys.executable}
import json, os, sys
args = sys.argv[1:]
if args[0] == "venv":
    os.makedirs(os.path.join(args[-1], "bin"))
    sys.exit(0)
env = os.path.dirname(os.path.dirname(args[args.index("--python") + 1]))
exe = os.path.join(env, "bin", "shot-mcp")
open(exe, "w").write('#!/bin/sh\\nenv > "$FAKE_ENV_OUT"\\n')  # the server's environment, then exit
os.makedirs(os.path.join(env, "lib", "python3.12", "site-packages", "pyppeteer"))
open(os.path.join(env, "lib", "python3.12", "site-packages", "pyppeteer", "__init__.py"), "w").write("")
os.chmod(exe, 0o755)
driver = os.path.join(env, "lib", "python3.12", "site-packages", "playwright", "driver", "package")
os.makedirs(os.path.join(driver, "lib", "server", "registry"))
open(os.path.join(driver, "package.json"), "w").write(json.dumps({{"name": "playwright-core"}}))
open(os.path.join(driver, "lib", "server", "registry", "index.js"), "w").write('''
const path = require("path");
exports.registry = {{ findExecutable(name) {{
    if (name !== "chromium") return undefined;
    const dir = path.join(process.env.PLAYWRIGHT_BROWSERS_PATH, "chromium-77");
    return {{ directory: dir, executablePath: () => path.join(dir, "chrome-linux64", "chrome") }};
}} }};
''')
"""


def test_a_python_servers_playwright_driver_and_pyppeteer_find_the_system_browser(tmp_path, tools):
    uv = tmp_path / "uv"
    uv.write_text(FAKE_UV)
    uv.chmod(0o755)
    env = base_env(
        tmp_path / "home",
        MCP_RUNTIME="python",
        MCP_PACKAGE="shot-mcp==1.2.3",
        MCP_LAUNCH='["shot-mcp"]',
        MCP_EXCLUDE_NEWER="none",
        UV=str(uv),
        MCP_BROWSER=str(tools["browser"]),
        MCP_NEEDS_BROWSER="chromium",
        FAKE_ENV_OUT=str(tmp_path / "server.env"),
    )
    result = run_entrypoint(env, "install", timeout=120)
    assert result.returncode == 0, result.stderr
    browsers = tmp_path / "home" / "python" / "shot-mcp==1.2.3" / ".browsers"
    chrome = browsers / "chromium-77" / "chrome-linux64" / "chrome"
    assert os.readlink(chrome) == str(tmp_path / "home" / ".browser" / "chromium")
    assert "Playwright chromium of lib/python3.12/site-packages/playwright/driver/package" in result.stderr
    wrapper = str(tmp_path / "home" / ".browser" / "chromium")
    assert os.readlink(browsers / "pyppeteer" / "local-chromium" / "system" / "chrome-linux" / "chrome") == wrapper
    # serve: the server starts with the variables that lead its drivers to those links (then exits here).
    run_entrypoint(env, "serve", timeout=60)
    seen = dict(line.split("=", 1) for line in (tmp_path / "server.env").read_text().splitlines() if "=" in line)
    assert seen["PLAYWRIGHT_BROWSERS_PATH"] == str(browsers)
    assert seen["PUPPETEER_EXECUTABLE_PATH"] == seen["CHROME_PATH"] == wrapper
    assert (seen["PYPPETEER_HOME"], seen["PYPPETEER_CHROMIUM_REVISION"]) == (str(browsers / "pyppeteer"), "system")
    assert seen["PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD"] == seen["PUPPETEER_SKIP_DOWNLOAD"] == "1"
