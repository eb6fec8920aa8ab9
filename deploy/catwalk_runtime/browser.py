"""The system browser for a server that drives one (MCP_BROWSER): found where each library looks, never
downloaded.

Every expected path leads to one wrapper (<MCP_HOME>/.browser/chromium) that starts the system Chromium
headless when there is no display and without its sandbox as root. Playwright's paths are asked of each
playwright-core in the environment (js/playwright_paths.js), pyppeteer's is fixed by the variables
``entrypoint.sh serve`` sets, and an npm server's install scripts run with browser downloads skipped.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from . import node
from .errors import InstallFailed, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .install import Install

JS = Path(__file__).resolve().parent / "js"
# Google Chrome's path: Playwright's and Puppeteer's "chrome" channel (the default of @playwright/mcp and
# chrome-devtools-mcp); only root can link it (the baked image does).
CHROME_CHANNEL = Path("/opt/google/chrome/chrome")


def require_browser(job: Install) -> None:
    """A server that needs a browser and has none configured is refused before anything is installed."""
    if job.needs_browser and not job.browser:
        raise UsageError(
            f"{job.package} drives a browser (Chromium) and none is configured: set MCP_BROWSER to a Chromium "
            "executable (catwalk's baked image installs Debian's chromium and sets MCP_BROWSER=/usr/bin/chromium; "
            "on Debian: apt-get install chromium)"
        )


def write_wrapper(wrapper: Path, browser: str) -> None:
    """What every expected browser path leads to: the system Chromium, headless without a display (a server has
    none, and a headed launch would fail) and without its sandbox as root (Chromium refuses to start otherwise)."""
    wrapper.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        "#!/bin/sh",
        "# Written by catwalk entrypoint.sh install: the system Chromium for MCP servers that drive a browser.",
        "headless=--headless",
        '[ -z "${DISPLAY-}${WAYLAND_DISPLAY-}" ] || headless=',
        "for arg; do case $arg in --headless | --headless=*) headless= ;; esac; done",
        "sandbox=",
        '[ "$(id -u)" != 0 ] || sandbox=--no-sandbox',
        f'exec {browser} $headless $sandbox "$@"',
    ]
    new = wrapper.with_name(wrapper.name + ".new")
    new.write_text("\n".join(lines) + "\n")
    new.chmod(0o755)
    os.replace(new, wrapper)


def _link(target: Path, link: Path) -> None:
    """``ln -sfn target link``."""
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(target)


def _playwright_cores(job: Install) -> list[Path]:
    if job.runtime == "npm":
        names = {"playwright-core", "patchright-core"}
        found = job.env_dir.glob("**/node_modules/*-core/package.json")
        return sorted(p.parent for p in found if p.parent.name in names and p.parent.parent.name == "node_modules")
    return sorted(p.parent for p in job.env_dir.glob("**/site-packages/*/driver/package/package.json"))


def link_playwright(job: Install) -> None:
    """Playwright's expected executables (of every playwright-core in the environment: npm's, or the Python
    package's bundled driver) lead to the wrapper, marked installed so `playwright install` skips them."""
    for core in _playwright_cores(job):
        env = {**job.environ, "PLAYWRIGHT_BROWSERS_PATH": str(job.browsers_dir)}
        listed = subprocess.run(
            ["node", str(JS / "playwright_paths.js"), str(core)], stdout=subprocess.PIPE, text=True, env=env
        )
        if listed.returncode != 0:
            raise InstallFailed(f"Playwright's browser paths could not be read from {core} (see above)")
        for line in listed.stdout.splitlines():
            if not line:
                continue
            kind, directory, exe = line.split("\t", 2)
            if kind == "link":
                (job.browsers_dir / ".links").mkdir(parents=True, exist_ok=True)
                (job.browsers_dir / ".links" / directory).write_text(exe)
                continue
            Path(exe).parent.mkdir(parents=True, exist_ok=True)
            _link(job.wrapper, Path(exe))
            (Path(directory) / "INSTALLATION_COMPLETE").touch()
            (Path(directory) / "DEPENDENCIES_VALIDATED").touch()  # the system package brought Chromium's libraries
            job.say(f"Playwright {kind} of {core.relative_to(job.env_dir)} -> {job.browser}")


def link_pyppeteer(job: Install) -> None:
    """pyppeteer runs <PYPPETEER_HOME>/local-chromium/<PYPPETEER_CHROMIUM_REVISION>/chrome-linux/chrome; serve
    sets both so that path is this link, whatever pyppeteer's version."""
    if any(p.is_file() for p in job.env_dir.glob("lib/python*/site-packages/pyppeteer/__init__.py")):
        chrome_dir = job.browsers_dir / "pyppeteer" / "local-chromium" / "system" / "chrome-linux"
        chrome_dir.mkdir(parents=True, exist_ok=True)
        _link(job.wrapper, chrome_dir / "chrome")
        job.say(f"pyppeteer chromium -> {job.browser}")


def run_install_scripts(job: Install) -> None:
    """An npm server that needs a browser installs with --ignore-scripts (its own postinstall would download
    one, and `--with-deps` would run apt-get as root): the dependencies' install scripts (native modules…)
    run here, with browser downloads skipped, and so does the server's own unless it installs a browser."""
    listed = subprocess.run(
        ["node", str(JS / "install_scripts.js"), str(job.env_dir), job.npm_name], stdout=subprocess.PIPE, text=True
    )
    if listed.returncode != 0:
        raise InstallFailed("the packages with install scripts could not be listed (see above)")
    names = []
    for line in listed.stdout.splitlines():
        if line.startswith("skip\t"):
            script = line[len("skip\t") :]
            job.say(f"Skipping {job.package}'s own browser install ({script}): it uses the system Chromium")
        elif line:
            names.append(line)
    if not names:
        return
    job.say(f"Running the install scripts of {' '.join(names)}")
    argv = [job.npm, "rebuild", "--prefix", str(job.env_dir), "--no-audit", "--no-fund", "--no-update-notifier"]
    env = job.env()
    # Native modules build for the Node that runs the server (its own, from engines.node, if it has one),
    # against that Node's headers: no download from nodejs.org.
    own_node = job.node_dir / "bin" / "node"
    if own_node.is_file() and os.access(own_node, os.X_OK):
        env["PATH"] = f"{job.node_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        if (job.node_dir / "include" / "node" / "common.gypi").is_file():
            env["npm_config_nodedir"] = str(job.node_dir)
    elif nodedir := node.headers_prefix(job.environ):
        env["npm_config_nodedir"] = nodedir
    job.run("npm rebuild", [*argv, *names], job.without_browser_download(env), widen=False)


def install_browser(job: Install) -> None:
    if not job.browser:
        return
    if not os.access(job.browser, os.X_OK):
        job.say(f"Warning: MCP_BROWSER={job.browser} is not executable here; it must be where the server runs")
    write_wrapper(job.wrapper, job.browser)
    link_playwright(job)
    if job.runtime == "python":
        link_pyppeteer(job)
    if job.runtime == "npm" and job.needs_browser:
        run_install_scripts(job)
    if job.needs_browser and not CHROME_CHANNEL.exists():
        job.say(
            f'Note: {CHROME_CHANNEL} (the "chrome" channel) is missing: servers that launch that channel need it '
            f"linked to {job.wrapper}"
        )
